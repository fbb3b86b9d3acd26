"""Group commit of delivery records (services/deliveries.py): nexts served at the same moment
share one statement and one commit, and each still gets exactly its own answer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from pgpager import metrics
from pgpager.services.deliveries import Deliveries
from pgpager.store import sessions
from pgpager.store.database import configure_connection
from pgpager.store.queries import query

Client = AsyncTestClient[Any]


def pages_recorded() -> tuple[float, float]:
    """(records, pages) so far, from the ``pgpager_delivery_record_pages`` histogram."""
    count = total = 0.0
    for family in metrics.delivery_record_pages.collect():
        for s in family.samples:
            if s.name.endswith("_count"):
                count = s.value
            elif s.name.endswith("_sum"):
                total = s.value
    return count, total


async def handles(client: Client, collection: str, n: int) -> list[str]:
    vectors = [{"id": str(i), "vector": [1.0, i / 100, 0.5]} for i in range(200)]
    r = await client.post(f"/v1/collections/{collection}/vectors", json={"vectors": vectors})
    assert r.status_code == 200, r.text
    out = []
    for i in range(n):
        r = await client.post(
            f"/v1/collections/{collection}/resumable-queries",
            json={"vector": [1.0, i / 10, 0.5], "top_k": 5},
        )
        assert r.status_code == 201, r.text
        out.append(r.json()["handle"])
    return out


def delivered(url: str, handle: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT row_id FROM pgpager.query_session_rows WHERE session_id = %s", (handle,)
        ).fetchall()
    return {r[0] for r in rows}


async def test_nexts_served_at_once_share_a_commit(client: Client, collection: str) -> None:
    """Eight handles' nexts at once: the first page is recorded alone, at once (nothing to wait
    for), the seven that come while it runs together in one more statement; every page is whole,
    in order and new for its handle."""
    hs = await handles(client, collection, 8)
    service = client.app.state.runtime.resumable
    before = pages_recorded()
    pages = await asyncio.gather(*(service.next(h, 10, None) for h in hs))
    records, total = (a - b for a, b in zip(pages_recorded(), before, strict=True))
    assert total == 8
    assert records == 2
    for page in pages:
        assert page.state == "active" and len(page.results) == 10
        distances = [h.distance for h in page.results]
        assert distances == sorted(distances)
    # Each page carries its own handle's rows, recorded for that handle only.
    url = client.app.state.runtime.database_url
    for h, page in zip(hs, pages, strict=True):
        assert {x.id for x in page.results} <= delivered(url, h)
        assert len(delivered(url, h)) == 15


async def test_a_shared_record_answers_each_handle_for_itself(
    client: Client, collection: str
) -> None:
    """One statement for three pages: an active handle gets its ids, one that had delivered
    some of them gets only the new ones, a stopped one gets nothing and records nothing."""
    a, b, c = await handles(client, collection, 3)
    r = await client.delete(f"/v1/resumable-queries/{c}")
    assert r.status_code == 200, r.text
    runtime = client.app.state.runtime
    deliveries = Deliveries(runtime.db, sync_commit=True)
    already = sorted(delivered(runtime.database_url, b))[:2]
    before = pages_recorded()
    results = await asyncio.gather(
        deliveries.record(a, ["x1", "x2"]),
        deliveries.record(b, [*already, "y1"]),
        deliveries.record(c, ["z1"]),
        deliveries.record("no-such-handle", ["w1"]),
    )
    assert results == [
        (True, {"x1", "x2"}),
        (True, {"y1"}),
        (False, set()),
        (False, set()),
    ]
    records, _ = (x - y for x, y in zip(pages_recorded(), before, strict=True))
    assert records == 2
    assert {"x1", "x2"} <= delivered(runtime.database_url, a)
    assert "z1" not in delivered(runtime.database_url, c)


async def test_a_deadlocked_shared_record_records_each_page_alone(
    client: Client, collection: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A psql session holds one handle's row and then asks for another's, which the shared
    record holds while waiting for the first: PostgreSQL cancels the record (the deadlock
    check runs first where the wait began first). Nothing is lost: each page is recorded alone
    once the psql session is done."""
    c, *ab = await handles(client, collection, 3)
    a, b = sorted(ab)
    runtime = client.app.state.runtime
    url = runtime.database_url
    with psycopg.connect(url, autocommit=True) as setup:
        # last_used_at a minute old: the record touches (locks) both session rows.
        setup.execute(
            "UPDATE pgpager.query_sessions SET last_used_at = now() - interval '1 minute' "
            "WHERE id = ANY(%s)",
            ([a, b],),
        )
    deliveries = Deliveries(runtime.db, sync_commit=True)
    async with await psycopg.AsyncConnection.connect(url) as psql:
        await psql.execute("SET deadlock_timeout = '30s'")
        await psql.execute(
            "UPDATE pgpager.query_sessions SET state_reason = state_reason WHERE id = %s", (b,)
        )
        caplog.set_level(logging.INFO, logger="pgpager.services.deliveries")
        # A third page first, recorded alone, so that a and b wait and are recorded together.
        shared = asyncio.gather(
            deliveries.record(c, ["o1"]), deliveries.record(a, ["p1"]), deliveries.record(b, ["q1"])
        )
        await asyncio.sleep(0.3)  # the record holds a's row and waits for b's
        await psql.execute(
            "UPDATE pgpager.query_sessions SET state_reason = state_reason WHERE id = %s", (a,)
        )
        await psql.commit()
        results = await asyncio.wait_for(shared, 30)
    assert results == [(True, {"o1"}), (True, {"p1"}), (True, {"q1"})]
    assert "p1" in delivered(url, a) and "q1" in delivered(url, b)
    assert any("hit a deadlock" in r.getMessage() for r in caplog.records)


AWKWARD_IDS = [
    'a"b',
    "back\\slash",
    '\\"',
    "with,comma",
    "{braces}",
    " spaced ",
    "NULL",
    "ünïcødé ☃",
    "tab\there",
    "new\nline",
    "x" * 200,
]


async def test_every_id_a_string_can_be_is_recorded_as_itself(
    client: Client, collection_name: str
) -> None:
    """The delivery record sends ids as one text[] parameter it writes itself: ids with quotes,
    backslashes, commas, braces, spaces, the word NULL or nothing at all come back through a
    handle exactly once, and are recorded as themselves."""
    r = await client.post(
        "/v1/collections", json={"name": collection_name, "dimension": 2, "metric": "euclidean"}
    )
    assert r.status_code == 201, r.text
    vectors = [{"id": x, "vector": [float(i), 0.0]} for i, x in enumerate(AWKWARD_IDS)]
    r = await client.post(f"/v1/collections/{collection_name}/vectors", json={"vectors": vectors})
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/collections/{collection_name}/resumable-queries",
        json={"vector": [0.0, 0.0], "top_k": 3},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    got = [x["id"] for x in body["results"]]
    url = client.app.state.runtime.database_url
    while body["state"] == "active":
        assert delivered(url, body["handle"]) == set(got)
        r = await client.post(
            f"/v1/resumable-queries/{body['handle']}/next", json={"additional_k": 4}
        )
        assert r.status_code == 200, r.text
        body = {**r.json(), "handle": body["handle"]}
        got += [x["id"] for x in body["results"]]
    assert got == AWKWARD_IDS


async def test_the_record_is_planned_once_per_connection(client: Client, collection: str) -> None:
    """The delivery record's plan is made once per connection (a generic plan), not again on
    every `next`: planning its statement cost about as much as the commit after it. auto_explain
    shows the plan each call ran: a custom plan carries the call's own values (the handle's
    id), a generic one only its parameters."""
    [handle] = await handles(client, collection, 1)
    url = client.app.state.runtime.database_url
    plans: list[str] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await configure_connection(conn)
        await conn.execute("LOAD 'auto_explain'")
        await conn.execute("SET auto_explain.log_min_duration = 0")
        await conn.execute("SET auto_explain.log_nested_statements = on")
        await conn.execute("SET client_min_messages = log")
        conn.add_notice_handler(lambda d: plans.append(d.message_primary or ""))
        for call in range(12):
            plans.clear()
            recorded = await sessions._record(conn, [(handle, [f"x{call}"])], sync_commit=True)
            assert recorded == {handle: {f"x{call}"}}
    [record] = [p for p in plans if "Insert on query_session_rows" in p]
    assert handle not in record
    assert "$1" in record


def active_since_the_statistics(conn: psycopg.Connection[Any], n: int) -> None:
    """``n`` active handles ('h1'...) in the sessions table of a database whose statistics
    were taken when none were (and autovacuum is kept from taking them again)."""
    conn.execute("ALTER TABLE pgpager.query_sessions SET (autovacuum_enabled = false)")
    conn.execute(
        "INSERT INTO pgpager.collections (name, dimension, metric, table_name) "
        "VALUES ('c', 3, 'cosine', 'c')"
    )
    conn.execute("VACUUM ANALYZE pgpager.query_sessions")
    conn.execute(
        "INSERT INTO pgpager.query_sessions (id, collection, namespace, query, phase, "
        "max_idle_s, max_lifetime_s, owner_instance) "
        "SELECT 'h' || g, 'c', '', '{}', 'index', 600, 600, 'one' "
        "FROM generate_series(1, %s) AS g",
        [n],
    )


def test_the_record_finds_its_handles_by_primary_key(fresh_db_url: str) -> None:
    """The record looks a handle up by its id, whatever the statistics say: with 300 handles
    active and the statistics of a time when none were (autovacuum off), the plan made for the
    function read all 300 for each call, through the active handles' index (before migration
    0012) or the whole table (a lookup by id alone, believed to be of an empty table).
    auto_explain shows how the lookup ran and how many rows it threw away."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        active_since_the_statistics(conn, 300)
        conn.execute("LOAD 'auto_explain'")
        conn.execute("SET auto_explain.log_min_duration = 0")
        conn.execute("SET auto_explain.log_nested_statements = on")
        conn.execute("SET auto_explain.log_analyze = on")
        conn.execute("SET client_min_messages = log")
        plans: list[str] = []
        conn.add_notice_handler(lambda d: plans.append(d.message_primary or ""))
        for call in range(3):
            plans.clear()
            fresh = conn.execute(
                "SELECT fresh FROM pgpager.record_deliveries(%s, %s, %s)",
                [["h7"], ["h7"], [f"x{call}"]],
            ).fetchall()
            assert fresh == [([f"x{call}"],)]
    [record] = [p for p in plans if "Insert on query_session_rows" in p]
    assert "query_sessions_active_idx" not in record
    assert "Seq Scan on query_sessions" not in record
    assert "Rows Removed by Filter: 299" not in record
    assert "query_sessions_pkey" in record


@pytest.mark.parametrize(
    ("statement", "params"),
    [
        (
            "set_owner",
            {
                "id": "h7",
                "phase": "exact",
                "owner_instance": "two",
                "owner_pid": 1,
                "cursor_name": "c",
            },
        ),
        (
            "close_session",
            {"id": "h7", "state": "stopped", "reason": "test", "from_states": ["active"]},
        ),
    ],
)
def test_a_statement_on_one_handle_reads_one_index_entry(
    fresh_db_url: str, statement: str, params: dict[str, Any]
) -> None:
    """The statements that look handles up by id and state read them by id, whatever the
    statistics say: with 300 handles active and the statistics of a time when none were, the
    planner took the partial index of active handles (keyed by owner before migration 0013) for
    empty and read all 300 to find one."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        active_since_the_statistics(conn, 300)
        text = query("sessions", statement).as_string(conn)
        plan = "\n".join(r[0] for r in conn.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {text}", params))
    assert "Rows Removed by Filter: 29" not in plan, plan
    assert "Seq Scan on query_sessions" not in plan, plan
