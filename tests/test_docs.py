"""The README stays true: every setting is documented, and the quick start is what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

from pgpager.settings import documented_settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [env for env, _, _ in documented_settings() if f"`{env}`" not in readme]
    assert missing == []


def test_readme_quick_start_has_two_commands_and_ci_uses_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", readme, re.S)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    assert "pgpager serve" in commands[0]
    assert "pytest" in commands[1]
    assert "grep -A1 '^# 2\\. Run the tests' README.md" in (ROOT / ".ci/run").read_text()
