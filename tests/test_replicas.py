"""Read replicas and several instances, end to end (DESIGN 10): real ``pgpager serve`` processes
on a primary and a streaming hot standby built from the embedded PostgreSQL's binaries.

Every iteration is checked against an exact reference: each row that existed when the handle
started comes out exactly once, and nothing else but rows upserted meanwhile."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from .conftest import ServerProcess
from .helpers import eventually_sync
from .replication import ReplicatedPostgres

ROWS = 400


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicatedPostgres]:
    pg = ReplicatedPostgres()
    try:
        yield pg
    finally:
        pg.close()


def replica_server(
    server_factory: Callable[..., ServerProcess], pair: ReplicatedPostgres, **env: str
) -> ServerProcess:
    server = server_factory(
        pair.primary_url,
        PGPAGER_READ_DATABASE_URLS=pair.standby_url,
        PGPAGER_REPLICA_CHECK_S="0.2",
        PGPAGER_REPLICA_MAX_LAG_S="1",
        PGPAGER_DB_UNAVAILABLE_WAIT_S="0.5",
        PGPAGER_CURSOR_HOSTS="2",
        # Small: filtered handles start in the exact phase (which skips delivered rows).
        PGPAGER_FLAT_SEARCH_CUTOFF="150",
        **env,
    )
    server.start()
    return server


def make_collection(http: httpx.Client, name: str, rows: int = ROWS) -> list[str]:
    assert http.post("/v1/collections", json={"name": name, "dimension": 3}).status_code == 201
    ids = [f"r{n}" for n in range(rows)]
    vectors = [
        {
            "id": i,
            "vector": [1.0, float(n % 17) + 0.1, float(n % 5) + 0.1],
            "metadata": {"group": "few" if n % 4 == 0 else "many"},
        }
        for n, i in enumerate(ids)
    ]
    for start in range(0, rows, 200):
        r = http.post(
            f"/v1/collections/{name}/vectors", json={"vectors": vectors[start : start + 200]}
        )
        assert r.status_code == 200, r.text
    return ids


def upsert(http: httpx.Client, name: str, ids: list[str]) -> None:
    vectors = [{"id": i, "vector": [1.0, 2.0, 3.0], "metadata": {"group": "few"}} for i in ids]
    r = http.post(f"/v1/collections/{name}/vectors", json={"vectors": vectors})
    assert r.status_code == 200, r.text


def start(http: httpx.Client, name: str, **body: Any) -> tuple[str, list[str]]:
    r = http.post(f"/v1/collections/{name}/resumable-queries", json={"vector": [1, 0, 0], **body})
    assert r.status_code == 201, r.text
    return r.json()["handle"], [h["id"] for h in r.json()["results"]]


def next_page(http: httpx.Client, handle: str, k: int = 25) -> tuple[list[str], str]:
    r = http.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": k})
    assert r.status_code == 200, r.text
    return [h["id"] for h in r.json()["results"]], r.json()["state"]


def drain(http: httpx.Client, handle: str, seen: list[str]) -> list[str]:
    while True:
        batch, state = next_page(http, handle, 50)
        seen += batch
        if state == "exhausted":
            return seen


def check_complete(seen: list[str], reference: set[str], extra: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    assert len(seen) == len(set(seen)), "no row twice"
    assert reference <= set(seen), f"missing: {sorted(reference - set(seen))[:10]}"
    assert set(seen) <= reference | extra, "only rows that exist"


def standby_cursor_backends(pair: ReplicatedPostgres, instance: str = "%") -> int:
    """pgpager backends on the standby inside a transaction: cursor hosts holding cursors."""
    with psycopg.connect(pair.standby_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s "
            "AND xact_start IS NOT NULL AND pid <> pg_backend_pid()",
            ["pgpager:" + instance],
        ).fetchone()
    return int(row[0]) if row else 0


def test_handles_iterate_on_the_standby_while_upserts_continue(
    pair: ReplicatedPostgres, server_factory: Callable[..., ServerProcess]
) -> None:
    server = replica_server(server_factory, pair)
    http = httpx.Client(base_url=server.url, timeout=30)
    ids = make_collection(http, "iterate")
    everything = set(ids)
    few = {i for n, i in enumerate(ids) if n % 4 == 0}
    # Every row upserted before the start is seen: the standby replays up to it first.
    h_all, seen_all = start(http, "iterate", top_k=20)
    h_few, seen_few = start(http, "iterate", top_k=20, filter="group = 'few'")
    assert standby_cursor_backends(pair) >= 1, "the cursors are on the standby"
    added: set[str] = set()
    state_all = state_few = "active"
    round_ = 0
    while state_all != "exhausted" or state_few != "exhausted":
        new = [f"n{round_}-{k}" for k in range(3)]
        upsert(http, "iterate", [*new, ids[round_ % len(ids)]])  # new rows and an update
        added |= set(new)
        round_ += 1
        if state_all != "exhausted":
            batch, state_all = next_page(http, h_all)
            seen_all += batch
        if state_few != "exhausted":
            batch, state_few = next_page(http, h_few)
            seen_few += batch
    check_complete(seen_all, everything, added)
    check_complete(seen_few, few, added)
    assert "this is a bug" not in server.output(tail=1_000_000)


def test_standby_stopped_mid_iteration(
    pair: ReplicatedPostgres, server_factory: Callable[..., ServerProcess]
) -> None:
    server = replica_server(server_factory, pair)
    http = httpx.Client(base_url=server.url, timeout=30)
    ids = make_collection(http, "stopped")
    few = {i for n, i in enumerate(ids) if n % 4 == 0}
    h_all, seen_all = start(http, "stopped", top_k=30)
    h_few, seen_few = start(http, "stopped", top_k=10, filter="group = 'few'")
    for _ in range(2):
        seen_all += next_page(http, h_all)[0]
        seen_few += next_page(http, h_few)[0]
    assert standby_cursor_backends(pair) >= 1
    pair.stop_standby()
    try:
        # Both handles go on elsewhere (the primary) at once: no 503, no duplicate, no gap.
        check_complete(drain(http, h_all, seen_all), set(ids))
        check_complete(drain(http, h_few, seen_few), few)
        r = http.post("/v1/collections/stopped/search", json={"vector": [1, 0, 0], "limit": 5})
        assert r.status_code == 200, r.text
        h_new, first = start(http, "stopped", top_k=50)
        check_complete(drain(http, h_new, first), set(ids))
    finally:
        pair.start_standby()
    # Back in rotation once it answers: new cursors go to the standby again.
    eventually_sync(
        lambda: start(http, "stopped", top_k=5) and standby_cursor_backends(pair) >= 1,
        what="the standby serving cursors again",
        timeout_s=30,
        interval_s=0.5,
    )
    assert "this is a bug" not in server.output(tail=1_000_000)


def test_lagging_standby_is_guarded_and_leaves_the_rotation(
    pair: ReplicatedPostgres, server_factory: Callable[..., ServerProcess]
) -> None:
    server = replica_server(server_factory, pair)
    http = httpx.Client(base_url=server.url, timeout=30)
    ids = make_collection(http, "lagging")
    eventually_sync(pair.replayed_all, what="the standby catching up")
    h_old, seen_old = start(http, "lagging", top_k=20, filter="group = 'few'")
    pair.pause_replay()
    try:
        upsert(http, "lagging", ["late-1", "late-2"])
        # Started after the upsert: sees it although the standby has not replayed it.
        h, seen = start(http, "lagging", top_k=20)
        check_complete(drain(http, h, seen), set(ids) | {"late-1", "late-2"})
        # A filtered handle whose cursor is lost now rehydrates with its delivered rows known.
        seen_old += next_page(http, h_old)[0]
        check_complete(
            drain(http, h_old, seen_old),
            {i for n, i in enumerate(ids) if n % 4 == 0},
            {"late-1", "late-2"},
        )
        health = eventually_sync(
            lambda: http.get("/health").json(),
            until=lambda body: "lags" in str(body.get("replicas")),
            what="the lagging standby reported out of rotation",
        )
        assert pair.standby_url.split("@")[1].split("/")[0] in str(health["replicas"])
    finally:
        pair.resume_replay()
    eventually_sync(
        lambda: http.get("/health").json().get("replicas"),
        until=lambda replicas: all(v == "in rotation" for v in replicas.values()),
        what="the standby back in rotation",
    )
    assert "this is a bug" not in server.output(tail=1_000_000)


def test_hot_standby_feedback_off_is_refused(
    pair: ReplicatedPostgres, server_factory: Callable[..., ServerProcess]
) -> None:
    with psycopg.connect(pair.standby_url, autocommit=True) as conn:
        assert conn.execute("SHOW hot_standby_feedback").fetchone() == ("on",)
    pair.standby_execute("ALTER SYSTEM SET hot_standby_feedback = off")
    pair.standby_execute("SELECT pg_reload_conf()")
    try:
        eventually_sync(
            lambda: (
                psycopg.connect(pair.standby_url).execute("SHOW hot_standby_feedback").fetchone()
            ),
            until=lambda row: row == ("off",),
            what="the reload",
        )
        server = server_factory(pair.primary_url, PGPAGER_READ_DATABASE_URLS=pair.standby_url)
        with pytest.raises(Exception, match="exited at start-up"):
            server.start()
        assert "hot_standby_feedback = on" in server.output()
    finally:
        pair.standby_execute("ALTER SYSTEM RESET hot_standby_feedback")
        pair.standby_execute("SELECT pg_reload_conf()")


def test_two_instances_alternate_and_one_is_killed(
    pair: ReplicatedPostgres, server_factory: Callable[..., ServerProcess]
) -> None:
    servers = [
        replica_server(server_factory, pair, PGPAGER_INSTANCE_ID=name) for name in ("alpha", "beta")
    ]
    a, b = (httpx.Client(base_url=s.url, timeout=30) for s in servers)
    ids = make_collection(a, "two")
    few = {i for n, i in enumerate(ids) if n % 4 == 0}
    h_all, seen_all = start(a, "two", top_k=10)
    h_few, seen_few = start(b, "two", top_k=5, filter="group = 'few'")
    # Every call on the other instance: each one rehydrates the handle there.
    for turn in range(6):
        http, name = (a, "alpha") if turn % 2 else (b, "beta")
        for handle, seen in ((h_all, seen_all), (h_few, seen_few)):
            r = http.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": 10})
            assert r.status_code == 200, r.text
            assert r.headers["x-pgpager-instance"] == name
            seen += [h["id"] for h in r.json()["results"]]
            # The instance that declared the handle's latest cursor (a cursor left behind on
            # the other one goes on serving correctly: deliveries are recorded once).
            status = a.get(f"/v1/resumable-queries/{handle}").json()
            assert status["owner_instance"] in ("alpha", "beta")
    h_new, _ = start(b, "two", top_k=5)
    status = a.get(f"/v1/resumable-queries/{h_new}")
    assert status.headers["x-pgpager-instance"] == "alpha"
    assert status.json()["owner_instance"] == "beta", "the status names the cursor's instance"
    # alpha dies mid-iteration without a word; beta finishes every handle.
    servers[0].kill()
    check_complete(drain(b, h_all, seen_all), set(ids))
    check_complete(drain(b, h_few, seen_few), few)
    assert b.get(f"/v1/resumable-queries/{h_all}").json()["state"] == "exhausted"
    assert "this is a bug" not in servers[1].output(tail=1_000_000)


def test_handles_on_primary(
    pair: ReplicatedPostgres, server_factory: Callable[..., ServerProcess]
) -> None:
    server = replica_server(
        server_factory, pair, PGPAGER_HANDLES_ON_PRIMARY="true", PGPAGER_INSTANCE_ID="prim"
    )
    http = httpx.Client(base_url=server.url, timeout=30)
    ids = make_collection(http, "onprimary", rows=50)
    handle, seen = start(http, "onprimary", top_k=10)
    with psycopg.connect(pair.primary_url, autocommit=True) as conn:
        # A cursor on the primary names its host's backend (one on a standby names none).
        on_primary = conn.execute(
            "SELECT a.application_name FROM pgpager.query_sessions s "
            "JOIN pg_stat_activity a ON a.pid = s.owner_pid WHERE s.id = %s",
            [handle],
        ).fetchone()
    assert on_primary == ("pgpager:prim",), "the cursor host is on the primary"
    assert standby_cursor_backends(pair, "prim") == 0
    check_complete(drain(http, handle, seen), set(ids))


def test_stored_query_pages_are_read_on_the_standby(
    pair: ReplicatedPostgres, server_factory: Callable[..., ServerProcess]
) -> None:
    server = replica_server(server_factory, pair)
    http = httpx.Client(base_url=server.url, timeout=30)

    def run(sql: str) -> str:
        r = http.post("/v1/queries", json={"sql": {"query": sql}, "max_initial_results": 0})
        assert r.status_code == 200, r.text
        return str(r.json()["query_id"])

    def page(qid: str, **params: Any) -> list[Any]:
        r = http.get(f"/v1/queries/{qid}/pages", params=params)
        assert r.status_code == 200, r.text
        return [row for x in r.json()["results"] for row in x.values()]

    first = run("SELECT g AS n FROM generate_series(1, 30) g ORDER BY g")
    eventually_sync(pair.replayed_all, what="the standby replays the completed query")
    # A query completed while the standby does not replay: its pages come from the primary,
    # whole (the standby does not show it COMPLETED, so it is not asked for the rows).
    pair.pause_replay()
    try:
        late = run("SELECT g AS m FROM generate_series(1, 5) g ORDER BY g")
        assert page(late) == [1, 2, 3, 4, 5]
    finally:
        pair.resume_replay()
    eventually_sync(pair.replayed_all, what="the standby catches up")
    # The pages of a completed query are read on the standby: they are served with the
    # primary down.
    pair.stop_primary()
    try:
        assert page(first, offset=5, docs=10) == list(range(6, 16))
    finally:
        pair.start_primary()
    assert page(late, docs=2) == [1, 2]
    assert "this is a bug" not in server.output(tail=1_000_000)
