"""``pgpager serve`` as a user runs it: embedded database, locking, refusal without keys."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pgpager.bench.server import free_port
from tests.helpers import eventually_sync

PGPAGER = [sys.executable, "-m", "pgpager"]


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("PGPAGER_")}
    return {**e, **extra}


def wait_health(port: int, proc: subprocess.Popen[Any], timeout: float = 90) -> None:
    def healthy() -> bool:
        assert proc.poll() is None, "server exited early"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    eventually_sync(healthy, what="the server answers /health", timeout_s=timeout, interval_s=0.2)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory of this test's own with a short path: Unix socket paths are limited to ~100
    bytes, and the embedded server puts its socket in its data directory."""
    path = Path(tempfile.mkdtemp(prefix="pgps-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_serve_embedded_lock_and_clean_stop(tmp_path: Path, short_dir: Path) -> None:
    data_dir = short_dir / "pg"
    port = free_port()
    e = env(PGPAGER_DATA_DIR=str(data_dir), PGPAGER_PORT=str(port))
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([*PGPAGER, "serve"], env=e, stdout=log, stderr=log)
    try:
        wait_health(port, proc)
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/collections", json={"name": "smoke", "dimension": 2}
        )
        assert r.status_code == 201

        second = subprocess.run(
            [*PGPAGER, "serve"],
            env={**e, "PGPAGER_PORT": str(free_port())},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "already serving" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        proc.terminate()
        code = proc.wait(60)
    assert code == 0
    # SIGTERM stopped the embedded server too: no postmaster left.
    assert not (data_dir / "postmaster.pid").exists()

    # ... and it starts again on the same data, which survived.
    proc = subprocess.Popen([*PGPAGER, "serve"], env=e, stdout=log, stderr=log)
    try:
        wait_health(port, proc)
        r = httpx.get(f"http://127.0.0.1:{port}/v1/collections/smoke")
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(60)


def test_non_loopback_without_keys_is_refused(tmp_path: Path) -> None:
    r = subprocess.run(
        [*PGPAGER, "serve", "--host", "0.0.0.0"],
        # A data directory of its own, should it ever get as far as starting a database.
        env=env(PGPAGER_DATA_DIR=str(tmp_path / "pg")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert "PGPAGER_API_KEYS" in r.stderr
    assert r.stderr.count("\n") == 1


@pytest.mark.parametrize("url", ["postgresql://nobody@127.0.0.1:1/none"])
def test_unreachable_database_is_one_line(url: str) -> None:
    r = subprocess.run(
        [*PGPAGER, "serve"],
        env=env(PGPAGER_DATABASE_URL=url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert r.stderr.startswith("pgpager: error: cannot connect to PostgreSQL")
    assert "Traceback" not in r.stderr
