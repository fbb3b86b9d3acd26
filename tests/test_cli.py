"""The admin CLI against a real database: handles on a running server, sweeps, collections,
status, JSON output, exit codes and confirmations."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
from click.testing import CliRunner, Result
from psycopg.types.json import Jsonb

from pgpager import migrations
from pgpager.bench.server import free_port
from pgpager.cli import cli
from tests.conftest import ServerProcess, create_database, db_name, drop_database
from tests.helpers import eventually_sync, load


def pgpager(url: str, *args: str, input: str | None = None) -> Result:
    """Run the CLI in-process with the same environment a server would have."""
    return CliRunner().invoke(cli, list(args), env={"PGPAGER_DATABASE_URL": url}, input=input)


def ok(url: str, *args: str) -> Result:
    r = pgpager(url, *args)
    assert r.exit_code == 0, (r.exit_code, r.stdout, r.stderr, r.exception)
    return r


def as_json(url: str, *args: str) -> Any:
    """Run with --json: stdout must be one JSON document and nothing else."""
    return json.loads(ok(url, *args, "--json").stdout)


def one_error_line(r: Result) -> str:
    assert r.exit_code == 1, (r.exit_code, r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pgpager: error: "), r.stderr
    return lines[0]


def backend_xmin(url: str, pid: int) -> tuple[bool, str | None]:
    """(backend alive, its backend_xmin): an open cursor holds a snapshot, hence an xmin."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT backend_xmin::text FROM pg_stat_activity WHERE pid = %s", [pid]
        ).fetchone()
    return (row is not None, row[0] if row else None)


def insert_handle(url: str, collection: str, handle: str, *, idle_s: int, max_idle_s: int) -> None:
    """A handle row as a server writes it, last used ``idle_s`` seconds ago."""
    with psycopg.connect(url) as conn:
        conn.execute(
            """
            INSERT INTO pgpager.query_sessions
                (id, collection, namespace, query, phase, max_idle_s, max_lifetime_s,
                 owner_instance, created_at, last_used_at)
            VALUES (%s, %s, '', %s, 'index', %s, 86400, 'gone-instance',
                    now() - make_interval(secs => %s), now() - make_interval(secs => %s))
            """,
            [
                handle,
                collection,
                Jsonb({"vector": [1.0, 0.0, 0.0], "top_k": 5}),
                max_idle_s,
                idle_s,
                idle_s,
            ],
        )


def session_row(url: str, handle: str) -> tuple[Any, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT state, state_reason, last_used_at, closed_at, position "
            "FROM pgpager.query_sessions WHERE id = %s",
            [handle],
        ).fetchone()
    assert row is not None
    return tuple(row)


# --- on a running server ---------------------------------------------------------------------
@dataclass
class Running:
    url: str
    server: ServerProcess
    http: httpx.Client


@pytest.fixture(scope="module")
def running(admin_url: str, template_url: str) -> Iterator[Running]:
    """One server for the tests that need one, on a database of their own. Its sweeper never
    ticks: whatever closes a cursor in these tests is the NOTIFY from the CLI."""
    name = "pgpager_cli_" + secrets.token_hex(4)
    url = create_database(admin_url, name, template=db_name(template_url))
    server = ServerProcess(url, {"PGPAGER_SWEEP_INTERVAL_S": "3600"})
    server.start()
    http = httpx.Client(base_url=server.url, timeout=30)
    try:
        yield Running(url, server, http)
    finally:
        http.close()
        server.stop()
        drop_database(admin_url, name)


def test_handles_list_show_stop_on_a_running_server(running: Running) -> None:
    url, http, server = running.url, running.http, running.server
    assert http.post("/v1/collections", json={"name": "docs", "dimension": 3}).status_code == 201
    vectors = [
        {"id": f"v{i}", "vector": [1.0, i / 10, 0.5], "metadata": {"n": i}} for i in range(20)
    ]
    assert http.post("/v1/collections/docs/vectors", json={"vectors": vectors}).status_code == 200
    r = http.post(
        "/v1/collections/docs/resumable-queries",
        json={
            "vector": [1, 0, 0.5],
            "top_k": 3,
            "filter": "n >= 0",
            "include_metadata": True,
        },
    )
    assert r.status_code == 201, r.text
    handle = r.json()["handle"]
    # list: filters, JSON and the human table
    listed = as_json(url, "handles", "list")
    assert [h["id"] for h in listed] == [handle]
    owner = listed[0]["owner_instance"]
    assert listed[0]["state"] == "active" and listed[0]["position"] == 3 and owner
    assert as_json(url, "handles", "list", "--collection", "other") == []
    assert as_json(url, "handles", "list", "--state", "stopped") == []
    assert as_json(url, "handles", "list", "--idle-over", "1h") == []
    assert len(as_json(url, "handles", "list", "--owner", owner, "--state", "active")) == 1
    table = ok(url, "handles", "list").stdout
    assert handle in table and "HANDLE" in table and "active" in table

    # show: the query, progress, owner, and the cursor alive in the owner's cursor host
    shown = as_json(url, "handles", "show", handle)
    assert shown["collection"] == "docs" and shown["top_k"] == 3 and shown["filter"] == "n >= 0"
    assert shown["include"] == {"vectors": False, "metadata": True, "data": False}
    assert shown["vector_dimension"] == 3 and shown["position"] == 3
    assert shown["expires_at"] is not None and shown["idle_s"] >= 0
    assert shown["backend"]["pid"] == shown["owner_pid"]
    assert shown["backend"]["application_name"] == f"pgpager:{owner}"
    assert shown["cursor"]["status"] == "open", shown["cursor"]
    human = ok(url, "handles", "show", handle).stdout
    assert "n >= 0" in human and "open:" in human and "3 rows delivered" in human
    pid = shown["owner_pid"]
    assert backend_xmin(url, pid)[1] is not None, "an open cursor holds a snapshot"

    # status sees the running server and its handle
    st = as_json(url, "status", "--exact")
    assert st["database"]["reachable"] and st["schema"]["up_to_date"]
    assert st["collections"] >= 1 and st["vectors"] >= 20 and st["vectors_counted"] == "exact"
    assert st["handles"]["active"] >= 1
    assert [s["instance"] for s in st["servers"]] == [owner]
    assert st["orphaned_owners"] == []

    # stop: refused without a terminal or --yes, nothing changed
    r = pgpager(url, "handles", "stop", handle)
    assert "--yes" in one_error_line(r)
    assert session_row(url, handle)[0] == "active"

    r = ok(url, "handles", "stop", handle, "--yes")
    assert f"stopped {handle}" in r.stdout
    # The server heard the NOTIFY and closed the cursor: its host backend lets go of the
    # snapshot (and so of the VACUUM horizon) at once.
    eventually_sync(
        lambda: backend_xmin(url, pid),
        until=lambda alive_xmin: alive_xmin == (True, None),
        what="the cursor host's backend lets go of its snapshot",
        timeout_s=5,
    )
    eventually_sync(
        server.output,
        until=lambda log: "was closed elsewhere; closed its cursor" in log,
        what="the server logs that it closed the cursor",
        timeout_s=5,
    )

    r = http.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": 2})
    assert r.status_code == 410, r.text
    assert "stopped by an operator (CLI)" in r.json()["error"]["message"]
    shown = as_json(url, "handles", "show", handle)
    assert shown["state"] == "stopped" and shown["cursor"]["status"] == "closed"
    assert shown["state_reason"] == "stopped by an operator (CLI)"

    # stopping again is harmless and says so
    again = as_json(url, "handles", "stop", handle, "--yes")
    assert again == [{"id": handle, "stopped": False, "state": "stopped", "owner_instance": owner}]


def test_handles_stop_ends_an_exhausted_handle(running: Running) -> None:
    """An exhausted handle is still open (its next answers []); the CLI stops it like an active
    one, after asking, and its next then fails as after any stop."""
    url, http = running.url, running.http
    assert http.post("/v1/collections", json={"name": "few", "dimension": 2}).status_code == 201
    vectors = [{"id": f"f{i}", "vector": [1.0, i / 10]} for i in range(3)]
    assert http.post("/v1/collections/few/vectors", json={"vectors": vectors}).status_code == 200
    r = http.post("/v1/collections/few/resumable-queries", json={"vector": [1, 0], "top_k": 5})
    handle = r.json()["handle"]
    r = http.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": 1})
    assert r.json() == {"handle": handle, "results": [], "state": "exhausted", "position": 3}

    assert "--yes" in one_error_line(pgpager(url, "handles", "stop", handle))
    assert session_row(url, handle)[0] == "exhausted"
    outcome = as_json(url, "handles", "stop", handle, "--yes")
    assert [(o["stopped"], o["state"]) for o in outcome] == [(True, "stopped")]
    state, reason, _, _, position = session_row(url, handle)
    assert (state, reason, position) == ("stopped", "stopped by an operator (CLI)", 3)
    r = http.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": 1})
    assert r.status_code == 410 and "stopped by an operator (CLI)" in r.json()["error"]["message"]


def test_stored_queries_list_show_delete(running: Running) -> None:
    url, http = running.url, running.http
    assert http.post("/v1/collections", json={"name": "kept", "dimension": 2}).status_code == 201
    vectors = [{"id": f"k{i}", "vector": [1.0, i / 10]} for i in range(12)]
    assert http.post("/v1/collections/kept/vectors", json={"vectors": vectors}).status_code == 200
    r = http.post(
        "/v1/queries",
        json={
            "vector_search": {"collection": "kept", "vector": [1, 0], "limit": 12},
            "max_initial_results": 5,
        },
    )
    assert r.status_code == 200, r.text
    query_id = r.json()["query_id"]

    listed = as_json(url, "queries", "list")
    mine = [q for q in listed if q["query_id"] == query_id]
    assert len(mine) == 1 and mine[0]["state"] == "COMPLETED" and mine[0]["doc_count"] == 12
    assert query_id in ok(url, "queries", "list").stdout
    shown = as_json(url, "queries", "show", query_id)
    assert shown["results_total_doc_count"] == 12 and shown["expired"] is False
    assert "COMPLETED" in ok(url, "queries", "show", query_id).stdout
    assert as_json(url, "status")["stored_queries"].get("COMPLETED", 0) >= 1

    assert "--yes" in one_error_line(pgpager(url, "queries", "delete", query_id))
    assert http.get(f"/v1/queries/{query_id}").status_code == 200, "not deleted unconfirmed"
    assert as_json(url, "queries", "delete", query_id, "--yes") == [
        {"query_id": query_id, "deleted": True}
    ]
    assert http.get(f"/v1/queries/{query_id}").status_code == 404
    assert "no stored query" in one_error_line(pgpager(url, "queries", "show", query_id))
    assert "no stored query" in one_error_line(pgpager(url, "queries", "show", "not-a-uuid"))


def test_sweep_dry_run_changes_nothing(fresh_db_url: str) -> None:
    ok(fresh_db_url, "collections", "create", "swept", "-d", "3")
    insert_handle(fresh_db_url, "swept", "idle-handle", idle_s=7200, max_idle_s=60)
    insert_handle(fresh_db_url, "swept", "busy-handle", idle_s=5, max_idle_s=3600)
    before = session_row(fresh_db_url, "idle-handle")

    idle = as_json(fresh_db_url, "handles", "list", "--idle-over", "1h30m")
    assert [h["id"] for h in idle] == ["idle-handle"]
    assert as_json(fresh_db_url, "handles", "list", "--idle-over", "3h") == []

    report = as_json(fresh_db_url, "handles", "sweep", "--dry-run")
    assert report["dry_run"] is True
    assert [c["id"] for c in report["expired"]] == ["idle-handle"]
    assert "idle for more than 60 s" in report["expired"][0]["reason"]
    assert session_row(fresh_db_url, "idle-handle") == before, "a dry run changes nothing"
    human = ok(fresh_db_url, "handles", "sweep", "--dry-run").stdout
    assert "would expire idle-handle" in human and "nothing was changed" in human

    report = as_json(fresh_db_url, "handles", "sweep")
    assert [c["id"] for c in report["expired"]] == ["idle-handle"]
    state, reason, *_ = session_row(fresh_db_url, "idle-handle")
    assert state == "expired" and reason == "idle for more than 60 s"
    assert session_row(fresh_db_url, "busy-handle")[0] == "active"
    assert as_json(fresh_db_url, "handles", "list", "--state", "expired")[0]["id"] == "idle-handle"


# --- collections, status, db -----------------------------------------------------------------
def test_collections_create_info_drop(fresh_db_url: str) -> None:
    url = fresh_db_url
    r = ok(
        url,
        "collections",
        "create",
        "books",
        "-d",
        "4",
        "--metric",
        "euclidean",
        "--m",
        "8",
        "--ef-construction",
        "32",
    )
    assert "created collection books" in r.stdout
    assert "already exists" in one_error_line(
        pgpager(url, "collections", "create", "books", "-d", "4")
    )
    load(url, "books", np.eye(4, dtype=np.float32), namespace="ns1")

    listed = as_json(url, "collections", "list")
    assert [(c["name"], c["dimension"], c["metric"], c["hnsw_m"]) for c in listed] == [
        ("books", 4, "euclidean", 8)
    ]
    info = as_json(url, "collections", "info", "books")
    assert info["vector_count"] == 4 and info["namespaces"] == {"ns1": 4}
    assert info["embedding_model"] is None and info["table"] == '"pgpager_data"."books"'
    assert any(ix["method"] == "hnsw" for ix in info["indexes"])
    human = ok(url, "collections", "info", "books").stdout
    assert "ns1: 4" in human and "hnsw" in human

    assert "--yes" in one_error_line(pgpager(url, "collections", "drop", "books"))
    assert as_json(url, "collections", "list") != []
    ok(url, "collections", "drop", "books", "--yes")
    assert as_json(url, "collections", "list") == []
    assert "does not exist" in one_error_line(pgpager(url, "collections", "info", "books"))
    assert "does not exist" in one_error_line(pgpager(url, "collections", "drop", "nope", "-y"))


def test_status_and_db_current(fresh_db_url: str) -> None:
    st = as_json(fresh_db_url, "status")
    assert st["schema"] == {
        "current": migrations.head(),
        "head": migrations.head(),
        "up_to_date": True,
    }
    assert st["collections"] == 0 and st["vectors"] == 0 and st["vectors_counted"] == "estimate"
    assert st["servers"] == [] and st["handles"]["active"] == 0
    assert st["database"]["pgvector_version"]
    human = ok(fresh_db_url, "status").stdout
    assert "reachable" in human and "up to date" in human and "0 connected" in human

    assert as_json(fresh_db_url, "db", "current") == {
        "current": migrations.head(),
        "head": migrations.head(),
        "up_to_date": True,
    }
    assert f"current: {migrations.head()}" in ok(fresh_db_url, "db", "current").stdout


def test_downgraded_schema_is_reported(fresh_db_url: str) -> None:
    assert "--yes" in one_error_line(pgpager(fresh_db_url, "db", "downgrade", "base"))
    ok(fresh_db_url, "db", "downgrade", "base", "--yes")
    st = as_json(fresh_db_url, "status")
    assert st["schema"]["current"] is None and st["collections"] is None
    line = one_error_line(pgpager(fresh_db_url, "handles", "list"))
    assert "pgpager db upgrade" in line
    ok(fresh_db_url, "db", "upgrade")
    assert as_json(fresh_db_url, "handles", "list") == []


# --- errors, usage, help ---------------------------------------------------------------------
def test_unknown_handle_is_one_line_and_exit_1(pg_url: str) -> None:
    line = one_error_line(pgpager(pg_url, "handles", "show", "no-such-handle"))
    assert line == "pgpager: error: no resumable query with handle 'no-such-handle'"
    line = one_error_line(pgpager(pg_url, "handles", "stop", "no-such-handle", "--yes"))
    assert "no-such-handle" in line
    one_error_line(pgpager(pg_url, "handles", "show", "no-such-handle", "--json"))


def test_verbose_shows_the_traceback(pg_url: str) -> None:
    env = {**os.environ, "PGPAGER_DATABASE_URL": pg_url}
    p = subprocess.run(
        [sys.executable, "-m", "pgpager", "-v", "handles", "show", "nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1
    assert "Traceback" in p.stderr and "HandleNotFound" in p.stderr


def test_unreachable_database_is_one_line_and_exit_1() -> None:
    url = f"postgresql://pgpager@127.0.0.1:{free_port()}/pgpager?connect_timeout=3"
    for args in (["status"], ["handles", "list", "--json"], ["db", "current"]):
        line = one_error_line(pgpager(url, *args))
        assert "cannot connect to PostgreSQL" in line or "connection" in line, line


@pytest.mark.parametrize(
    "args",
    [
        ["handles", "list", "--idle-over", "10x"],
        ["handles", "list", "--state", "bogus"],
        ["handles", "stop"],
        ["handles", "show"],
        ["collections", "create", "x"],
        ["collections", "create", "x", "-d", "3", "--metric", "manhattan"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_2(pg_url: str, args: list[str]) -> None:
    r = pgpager(pg_url, *args)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert r.stdout == "" and "Usage:" in r.stderr


def test_help_shows_environment_variables(pg_url: str) -> None:
    assert "PGPAGER_DATABASE_URL" in ok(pg_url, "--help").stdout
    assert "PGPAGER_DATA_DIR" in ok(pg_url, "--help").stdout
    serve = ok(pg_url, "serve", "--help").stdout
    assert all(v in serve for v in ("PGPAGER_HOST", "PGPAGER_PORT", "PGPAGER_LOG_LEVEL"))
    assert "PGPAGER_SWEEP_BATCH_SIZE" in ok(pg_url, "handles", "sweep", "--help").stdout
    root = ok(pg_url, "--help").stdout
    for group in ("serve", "load", "handles", "queries", "collections", "db", "status"):
        assert group in root


def test_help_documents_the_exit_codes(pg_url: str) -> None:
    root = " ".join(ok(pg_url, "--help").stdout.split())
    assert "Exit codes: 0 ok 1 operational failure" in root
    assert "2 usage error 130 interrupted" in root


def test_confirmation_on_a_terminal(fresh_db_url: str) -> None:
    """With a terminal, the question is asked: 'n' changes nothing, 'y' stops the handle."""
    ok(fresh_db_url, "collections", "create", "asked", "-d", "3")
    insert_handle(fresh_db_url, "asked", "tty-handle", idle_s=1, max_idle_s=3600)
    env = {**os.environ, "PGPAGER_DATABASE_URL": fresh_db_url}
    for answer, code, state in ((b"n\n", 1, "active"), (b"y\n", 0, "stopped")):
        master, slave = os.openpty()
        p = subprocess.Popen(
            [sys.executable, "-m", "pgpager", "handles", "stop", "tty-handle"],
            env=env,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.close(slave)
        os.write(master, answer)  # the terminal keeps the line until the question reads it
        out, err = p.communicate(timeout=60)
        os.close(master)
        assert p.returncode == code, (out, err)
        assert b"stop handle tty-handle?" in err
        assert session_row(fresh_db_url, "tty-handle")[0] == state


def test_load_refuses_oversized_metadata_and_data(pg_url: str, tmp_path: Path) -> None:
    """pgpager load holds lines to the same limits as the API: exactly the limit loads, a byte
    more fails the whole file in one line naming the line, the size, the limit and the setting."""
    env = {
        "PGPAGER_DATABASE_URL": pg_url,
        "PGPAGER_MAX_METADATA_BYTES": "100",
        "PGPAGER_MAX_DATA_BYTES": "40",
    }

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env)

    name = "load_" + secrets.token_hex(4)
    assert run("collections", "create", name, "-d", "2").exit_code == 0

    def jsonl(file: str, *lines: dict[str, Any]) -> str:
        path = tmp_path / file
        path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
        return str(path)

    fits = jsonl(
        "fits.jsonl",
        {"id": "m", "vector": [1, 0], "metadata": {"k": "x" * 92}},
        {"id": "d", "vector": [0, 1], "data": "é" * 20},
    )
    r = run("load", name, fits)
    assert r.exit_code == 0, (r.stdout, r.stderr)
    for file, line, needle in (
        (
            "meta.jsonl",
            {"id": "big", "vector": [1, 1], "metadata": {"k": "x" * 93}},
            "metadata is 101 bytes as JSON; the limit is 100 bytes (PGPAGER_MAX_METADATA_BYTES)",
        ),
        (
            "data.jsonl",
            {"id": "big", "vector": [1, 1], "data": "é" * 21},
            "data is 42 bytes as UTF-8; the limit is 40 bytes (PGPAGER_MAX_DATA_BYTES)",
        ),
    ):
        path = jsonl(file, {"id": f"ok-{file}", "vector": [1, 1]}, line)
        assert f"{file}:2: {needle}" in one_error_line(run("load", name, path))
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            f'SELECT id, metadata, data FROM pgpager_data."{name}" ORDER BY id'
        ).fetchall()
    assert rows == [("d", None, "é" * 20), ("m", {"k": "x" * 92}, None)], (
        "refused files load nothing"
    )
