"""The wheel carries what an installed pgpager needs: migrations, the named SQL files, the web
console and the Swagger UI files its docs pages load."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("pgpager-*.whl")
    return built


def test_wheel_contains_migrations_and_sql(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "pgpager/alembic/env.py" in names
    for migration in (ROOT / "alembic" / "versions").glob("*.py"):
        assert f"pgpager/alembic/versions/{migration.name}" in names
    for sql_file in (ROOT / "src" / "pgpager" / "store" / "sql").glob("*.sql"):
        assert f"pgpager/store/sql/{sql_file.name}" in names
    assert "pgpager/py.typed" in names


def test_wheel_contains_the_console_and_the_docs_assets(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    http = ROOT / "src" / "pgpager" / "http"
    assets = [*(http / "console").iterdir(), *(http / "vendor" / "swagger-ui").iterdir()]
    assert {p.name for p in assets} >= {
        "index.html",
        "console.js",
        "console.css",
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "LICENSE",
    }
    missing = [p for p in assets if f"pgpager/{p.relative_to(http.parent)}" not in names]
    assert missing == []


def test_installed_layout_finds_packaged_migrations(wheel: Path, tmp_path: Path) -> None:
    """Unpacked like site-packages, script_location() must pick pgpager/alembic."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pgpager import migrations; print(migrations.script_location())",
        ],
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == str(site / "pgpager" / "alembic")
