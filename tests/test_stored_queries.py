"""Stored queries (Rockset style): run once, keep the rows in PostgreSQL, page by cursor or
offset; SQL runs as a read-only reader role (a member of pgpager_reader) and cannot change
anything. Keys against each other: test_sandbox.py."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from litestar.testing import AsyncTestClient

from pgpager.store import stored
from tests.helpers import eventually, eventually_sync

SERIES_25 = "SELECT g AS n FROM generate_series(1, 25) g ORDER BY g"


async def run_sql(client: AsyncTestClient[Any], query: str, **body: Any) -> httpx.Response:
    return await client.post("/v1/queries", json={"sql": {"query": query}, **body})


async def completed(client: AsyncTestClient[Any], query: str, **body: Any) -> dict[str, Any]:
    r = await run_sql(client, query, **body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


# --- the happy path ---------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["/v1/queries"])
async def test_sql_query_pages_status_list_delete(
    client: AsyncTestClient[Any], prefix: str
) -> None:
    r = await client.post(prefix, json={"sql": {"query": SERIES_25}, "max_initial_results": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    qid = body["query_id"]
    assert body["state"] == "COMPLETED"
    assert body["results"] == [{"n": i} for i in range(1, 11)]
    assert body["results_total_doc_count"] == 25
    assert body["pagination"]["current_page_doc_count"] == 10
    assert body["pagination"]["start_cursor"] is None
    assert body["stats"]["doc_count"] == 25 and body["stats"]["size_bytes"] > 0

    # Cursor pages.
    r = await client.get(
        f"{prefix}/{qid}/pages", params={"cursor": body["pagination"]["next_cursor"], "docs": 10}
    )
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["results"] == [{"n": i} for i in range(11, 21)]
    assert page["results_total_doc_count"] == 25
    assert page["pagination"]["current_page_doc_count"] == 10
    assert page["pagination"]["next_cursor_offset"] == 20
    r = await client.get(
        f"{prefix}/{qid}/pages", params={"cursor": page["pagination"]["next_cursor"], "docs": 10}
    )
    last = r.json()
    assert last["results"] == [{"n": i} for i in range(21, 26)]
    assert last["pagination"] == {
        "current_page_doc_count": 5,
        "next_cursor_offset": 25,
        "next_cursor": None,
    }

    # No cursor: from the first row; offset without and with a cursor.
    r = await client.get(f"{prefix}/{qid}/pages")
    assert [x["n"] for x in r.json()["results"]] == list(range(1, 26))
    r = await client.get(f"{prefix}/{qid}/pages", params={"offset": 20, "docs": 3})
    assert [x["n"] for x in r.json()["results"]] == [21, 22, 23]
    r = await client.get(
        f"{prefix}/{qid}/pages",
        params={"cursor": body["pagination"]["next_cursor"], "offset": 5, "docs": 2},
    )
    assert [x["n"] for x in r.json()["results"]] == [16, 17]
    assert r.json()["pagination"]["next_cursor_offset"] == 17
    r = await client.get(f"{prefix}/{qid}/pages", params={"offset": 1000})
    assert r.json()["results"] == [] and r.json()["pagination"]["next_cursor"] is None

    # Status and list.
    r = await client.get(f"{prefix}/{qid}")
    assert r.status_code == 200
    info = r.json()["data"]
    assert info["query_id"] == qid and info["state"] == "COMPLETED" and info["error"] is None
    assert info["kind"] == "sql"
    assert info["results_total_doc_count"] == 25
    assert set(info["stats"]) == {"elapsed_time_ms", "doc_count", "size_bytes"}
    assert info["expires_at"] > info["created_at"]
    r = await client.get(prefix)
    assert qid in [q["query_id"] for q in r.json()["data"]]

    # Delete: gone everywhere.
    r = await client.delete(f"{prefix}/{qid}")
    assert r.status_code == 200 and r.json()["data"]["query_id"] == qid
    assert (await client.get(f"{prefix}/{qid}")).status_code == 404
    assert (await client.get(f"{prefix}/{qid}/pages")).status_code == 404
    assert qid not in [q["query_id"] for q in (await client.get(prefix)).json()["data"]]


async def test_query_id_from_one_path_is_served_on_the_other(client: AsyncTestClient[Any]) -> None:
    qid = (await completed(client, SERIES_25, max_initial_results=0))["query_id"]
    r = await client.get(f"/v1/orgs/self/queries/{qid}/pages", params={"docs": 2})
    assert r.json()["results"] == [{"n": 1}, {"n": 2}]
    assert (await client.get(f"/v1/queries/{qid}")).json()["data"]["state"] == "COMPLETED"


async def test_max_initial_results_zero_and_all(client: AsyncTestClient[Any]) -> None:
    body = await completed(client, SERIES_25, max_initial_results=0)
    assert body["results"] == [] and body["results_total_doc_count"] == 25
    assert body["pagination"]["current_page_doc_count"] == 0
    assert body["pagination"]["next_cursor"] is not None
    qid = body["query_id"]
    r = await client.get(
        f"/v1/queries/{qid}/pages", params={"cursor": body["pagination"]["next_cursor"], "docs": 1}
    )
    assert r.json()["results"] == [{"n": 1}]
    body = await completed(client, SERIES_25, max_initial_results=25)
    assert len(body["results"]) == 25 and body["pagination"]["next_cursor"] is None
    body = await completed(client, "SELECT 1 AS a WHERE false")
    assert body["results"] == [] and body["results_total_doc_count"] == 0
    assert body["pagination"]["next_cursor"] is None


async def test_sql_values_parameters_and_json(client: AsyncTestClient[Any]) -> None:
    r = await client.post(
        "/v1/queries",
        json={
            "sql": {
                "query": "SELECT $1::int + 1 AS a, $2 AS b, $3::text[] AS c, "
                "$4::jsonb -> 'k' AS d, '50%' AS pct, NULL AS z, 1.5::numeric AS x; ",
                "parameters": [41, "it's", ["x", "y"], {"k": [1, {"m": None}]}],
            }
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["results"] == [
        {
            "a": 42,
            "b": "it's",
            "c": ["x", "y"],
            "d": [1, {"m": None}],
            "pct": "50%",
            "z": None,
            "x": 1.5,
        }
    ]
    # Text that needs escaping on its way through COPY comes back unchanged.
    tricky = 'tab\there\nnew line \\ back\\slash \r "quoted" é 🦆'
    r = await client.post(
        "/v1/queries", json={"sql": {"query": "SELECT $1::text AS s", "parameters": [tricky]}}
    )
    assert r.json()["results"] == [{"s": tricky}]


async def test_sql_error_is_422_with_position(client: AsyncTestClient[Any]) -> None:
    r = await run_sql(client, "SELECT 1 AS a,\n  nope FROM generate_series(1, 2)")
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "query_failed"
    assert "nope" in err["message"]
    assert err["detail"]["position"] == len("SELECT 1 AS a,\n  ") + 1
    qid = err["detail"]["query_id"]
    info = (await client.get(f"/v1/queries/{qid}")).json()["data"]
    assert info["state"] == "FAILED" and "nope" in info["error"]
    r = await client.get(f"/v1/queries/{qid}/pages")
    assert r.status_code == 422 and "failed" in r.json()["error"]["message"]


async def test_sync_timeout_is_408_and_failed(client: AsyncTestClient[Any]) -> None:
    r = await run_sql(client, "SELECT pg_sleep(10) AS s", timeout_ms=300)
    assert r.status_code == 408, r.text
    qid = r.json()["error"]["detail"]["query_id"]
    info = (await client.get(f"/v1/queries/{qid}")).json()["data"]
    assert info["state"] == "FAILED" and "time limit" in info["error"]


async def test_result_bigger_than_max_rows_fails(make_client: Any) -> None:
    async with make_client(stored_query_max_rows=100) as client:
        r = await run_sql(client, "SELECT g FROM generate_series(1, 101) g")
        assert r.status_code == 422 and "PGPAGER_STORED_QUERY_MAX_ROWS" in r.text
        assert (await run_sql(client, "SELECT g FROM generate_series(1, 100) g")).status_code == 200


# --- limits and cursors -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [
        {"docs": 0},
        {"docs": 100_001},
        {"offset": -1},
        {"offset": 1_000_000_001},
        {"docs": "many"},
    ],
)
async def test_docs_and_offset_limits_are_422(
    client: AsyncTestClient[Any], params: dict[str, Any]
) -> None:
    qid = (await completed(client, SERIES_25))["query_id"]
    r = await client.get(f"/v1/queries/{qid}/pages", params=params)
    assert r.status_code == 422, r.text


async def test_largest_docs_and_offset_are_accepted(client: AsyncTestClient[Any]) -> None:
    qid = (await completed(client, SERIES_25))["query_id"]
    r = await client.get(
        f"/v1/queries/{qid}/pages", params={"docs": 100_000, "offset": 1_000_000_000}
    )
    assert r.status_code == 200 and r.json()["results"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"sql": {"query": "SELECT 1"}, "max_initial_results": 100_001},
        {"sql": {"query": "SELECT 1"}, "max_initial_results": -1},
        {"sql": {"query": "SELECT 1"}, "timeout_ms": 10_000_000},
        {"sql": {"query": "SELECT 1"}, "async": True, "timeout_ms": 100_000_000},
        {"sql": {"query": "SELECT 1"}, "vector_search": {"collection": "x", "vector": [1]}},
        {"max_initial_results": 5},
        {"sql": {"query": "  "}},
        {"sql": {"query": "SELECT 1"}, "unknown": 1},
    ],
)
async def test_bad_requests_are_422(client: AsyncTestClient[Any], body: dict[str, Any]) -> None:
    r = await client.post("/v1/queries", json=body)
    assert r.status_code == 422, r.text


async def test_tampered_cursor_is_400(client: AsyncTestClient[Any]) -> None:
    body = await completed(client, SERIES_25, max_initial_results=5)
    qid, cursor = body["query_id"], body["pagination"]["next_cursor"]
    # Flip one character of the ordinal part, then of the MAC, then garbage.
    raw = list(cursor)
    raw[25] = "A" if raw[25] != "A" else "B"
    for bad in ["".join(raw), cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB"), "xyz", "!!"]:
        r = await client.get(f"/v1/queries/{qid}/pages", params={"cursor": bad})
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["code"] == "invalid_cursor"


async def test_cursor_from_another_query_is_400(client: AsyncTestClient[Any]) -> None:
    a = await completed(client, SERIES_25, max_initial_results=5)
    b = await completed(client, SERIES_25, max_initial_results=5)
    r = await client.get(
        f"/v1/queries/{a['query_id']}/pages", params={"cursor": b["pagination"]["next_cursor"]}
    )
    assert r.status_code == 400 and "another query" in r.json()["error"]["message"]


async def test_cursor_survives_a_restart(make_client: Any) -> None:
    """The HMAC key lives in the database: a cursor minted before a restart still works."""
    async with make_client() as client:
        body = await completed(client, SERIES_25, max_initial_results=5)
    async with make_client() as client:
        r = await client.get(
            f"/v1/queries/{body['query_id']}/pages",
            params={"cursor": body["pagination"]["next_cursor"], "docs": 1},
        )
        assert r.status_code == 200 and r.json()["results"] == [{"n": 6}]


async def test_unknown_query_is_404(client: AsyncTestClient[Any]) -> None:
    for qid in [str(uuid.uuid4()), "not-a-uuid"]:
        assert (await client.get(f"/v1/queries/{qid}")).status_code == 404
        assert (await client.get(f"/v1/queries/{qid}/pages")).status_code == 404
        assert (await client.delete(f"/v1/queries/{qid}")).status_code == 404


@pytest.mark.slow
async def test_million_rows_stored_and_paged_at_the_end(client: AsyncTestClient[Any]) -> None:
    body = await completed(
        client,
        "SELECT g AS n FROM generate_series(1, 1000000) g",
        max_initial_results=3,
    )
    assert body["results"] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert body["results_total_doc_count"] == 1_000_000
    assert body["stats"]["size_bytes"] > 1_000_000
    qid = body["query_id"]
    r = await client.get(f"/v1/queries/{qid}/pages", params={"offset": 999_990, "docs": 100})
    page = r.json()
    assert [x["n"] for x in page["results"]] == list(range(999_991, 1_000_001))
    assert page["pagination"]["next_cursor"] is None
    assert page["pagination"]["next_cursor_offset"] == 1_000_000
    r = await client.get(f"/v1/queries/{qid}/pages", params={"offset": 500_000, "docs": 100_000})
    assert len(r.json()["results"]) == 100_000
    assert r.json()["results"][0] == {"n": 500_001}
    assert (await client.delete(f"/v1/queries/{qid}")).status_code == 200


# --- async, expiry, orphans -------------------------------------------------------------------
async def test_async_query_runs_to_completed(client: AsyncTestClient[Any]) -> None:
    r = await run_sql(
        client,
        "WITH s AS MATERIALIZED (SELECT pg_sleep(1)) "
        "SELECT g AS n FROM s, generate_series(1, 100) g",
        **{"async": True, "max_initial_results": 5},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    qid = body["query_id"]
    assert body["state"] in ("QUEUED", "RUNNING")
    assert body["results"] == [] and body["pagination"]["next_cursor"] is None
    r = await client.get(f"/v1/queries/{qid}/pages")
    assert r.status_code == 409 and r.json()["error"]["code"] == "query_not_ready"

    async def state() -> str:
        return str((await client.get(f"/v1/queries/{qid}")).json()["data"]["state"])

    finished = await eventually(
        state,
        until=lambda s: s in ("COMPLETED", "FAILED"),
        what="the async query finishes",
        timeout_s=20,
    )
    assert finished == "COMPLETED"
    r = await client.get(f"/v1/queries/{qid}/pages", params={"docs": 1000})
    assert [x["n"] for x in r.json()["results"]] == list(range(1, 101))


async def test_delete_stops_a_running_async_query(make_client: Any, fresh_db_url: str) -> None:
    # A database of its own: reader backends are counted by role, per database.
    async with make_client(url=fresh_db_url) as client:
        r = await run_sql(client, "SELECT pg_sleep(30)", **{"async": True})
        qid = r.json()["query_id"]

        async def state() -> str:
            return str((await client.get(f"/v1/queries/{qid}")).json()["data"]["state"])

        await eventually(
            state, until=lambda s: s == "RUNNING", what="the async query runs", timeout_s=20
        )
        await eventually(
            lambda: reader_backends(fresh_db_url),
            until=lambda n: n == 1,
            what="the query's SQL runs on a reader backend",
        )
        assert (await client.delete(f"/v1/queries/{qid}")).status_code == 200
        assert (await client.get(f"/v1/queries/{qid}")).status_code == 404
        await eventually(
            lambda: reader_backends(fresh_db_url),
            until=lambda n: n == 0,
            what="the deleted query's SQL stops running",
        )


def reader_backends(url: str) -> int:
    """Reader backends running SQL in this database. Their query text is the cursor's FETCH,
    not the user's SQL: tell them by role."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND usename LIKE 'pgpager\\_reader\\_%' "
            "AND state = 'active'"
        ).fetchone()
    return int(row[0]) if row else 0


async def test_results_expire(make_client: Any, pg_url: str) -> None:
    async with make_client(stored_query_ttl_s=1) as client:
        body = await completed(client, SERIES_25, max_initial_results=5)
        qid = body["query_id"]
        cursor = body["pagination"]["next_cursor"]
        assert (await client.get(f"/v1/queries/{qid}/pages")).status_code == 200

        async def status_code() -> int:
            return (await client.get(f"/v1/queries/{qid}")).status_code

        gone = await eventually(
            status_code, until=lambda s: s != 200, what="the stored query expires"
        )
        assert gone == 410
        r = await client.get(f"/v1/queries/{qid}/pages", params={"cursor": cursor})
        assert r.status_code == 410 and r.json()["error"]["code"] == "query_expired"

        pool = client.app.state.runtime.db

        async def expire() -> int:
            await stored.expire_stored_queries(pool, 1000)
            return await status_code()

        await eventually(expire, until=lambda s: s == 404, what="expiry deletes the stored query")
        with psycopg.connect(pg_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pgpager.stored_query_rows WHERE query_id = %s", [qid]
            ).fetchone()
        assert row == (0,)


async def test_expiry_deletes_big_results_in_bounded_batches(
    make_client: Any, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stored, "EXPIRE_ROW_BUDGET", 400)
    monkeypatch.setattr(stored, "DELETE_BATCH", 150)
    async with make_client(stored_query_ttl_s=1) as client:
        qid = (await completed(client, "SELECT g FROM generate_series(1, 1000) g"))["query_id"]
        pool = client.app.state.runtime.db

        async def expired() -> bool:
            q = await stored.get(pool, qid)
            return q is not None and q.expired

        await eventually(expired, what="the stored query expires")

        def rows() -> int:
            with psycopg.connect(pg_url) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pgpager.stored_query_rows WHERE query_id = %s", [qid]
                ).fetchone()
            return int(row[0]) if row else -1

        counts = []
        for _ in range(4):
            await stored.expire_stored_queries(pool, 10)
            counts.append(rows())
        assert counts == [600, 200, 0, 0]
        assert await stored.get(pool, qid) is None


async def test_fail_orphaned_queries_spares_live_instances(
    client: AsyncTestClient[Any], pg_url: str
) -> None:
    rt = client.app.state.runtime
    dead, alive = str(uuid.uuid4()), str(uuid.uuid4())
    with psycopg.connect(pg_url) as conn:
        for qid, owner in [(dead, "ghost-instance"), (alive, rt.settings.instance_id)]:
            conn.execute(
                "INSERT INTO pgpager.stored_queries (query_id, kind, request, state, "
                "owner_instance, expires_at) VALUES (%s, 'sql', '{}', 'RUNNING', %s, "
                "now() + interval '1 hour')",
                [qid, owner],
            )
    # Called as another instance would call it: our instance holds its lock, the ghost none.
    # (Other servers on this database may get to the ghost's query first, and this call then
    # skips the row they hold: the state counts, once their transaction has committed.)
    await stored.fail_orphaned_queries(rt.db, "some-other-instance")

    async def ghost_failed() -> bool:
        gone = await stored.get(rt.db, dead)
        assert gone is not None
        return gone.state == "FAILED" and "server stopped" in (gone.error or "")

    await eventually(ghost_failed, what="the ghost instance's query is marked failed")
    live = await stored.get(rt.db, alive)
    assert live is not None and live.state == "RUNNING"
    with psycopg.connect(pg_url) as conn:
        conn.execute("DELETE FROM pgpager.stored_queries WHERE query_id = %s", [alive])


async def test_liveness_lock_is_taken_again_after_its_connection_drops(
    make_client: Any, pg_url: str
) -> None:
    def holder(instance_id: str) -> int | None:
        with psycopg.connect(pg_url) as conn:
            row = conn.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = hashtext('pgpager.instance')::oid "
                "AND objid = hashtext(%s)::oid AND objsubid = 2",
                [instance_id],
            ).fetchone()
        return None if row is None else int(row[0])

    async with make_client(liveness_check_s=0.05) as client:
        instance_id = client.app.state.runtime.settings.instance_id
        pid = holder(instance_id)
        assert pid is not None
        with psycopg.connect(pg_url) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", [pid])

        async def new_holder() -> int | None:
            return holder(instance_id)

        await eventually(
            new_holder,
            until=lambda p: p is not None and p != pid,
            what="a new connection takes the liveness lock again",
        )
    assert holder(instance_id) is None


def test_restart_during_an_async_query_fails_it(
    server_factory: Callable[..., Any], fresh_db_url: str
) -> None:
    tag = f"pgpager-test-{uuid.uuid4().hex[:8]}"
    first = server_factory(fresh_db_url)
    first.start()
    r = httpx.post(
        first.url + "/v1/queries",
        json={"sql": {"query": f'SELECT pg_sleep(30) AS "{tag}"'}, "async": True},
    )
    assert r.status_code == 200, r.text
    qid = r.json()["query_id"]
    eventually_sync(
        lambda: httpx.get(f"{first.url}/v1/queries/{qid}").json()["data"]["state"],
        until=lambda s: s == "RUNNING",
        what="the async query runs",
        timeout_s=20,
    )
    first.kill()

    second = server_factory(fresh_db_url)
    second.start()
    info = httpx.get(f"{second.url}/v1/queries/{qid}").json()["data"]
    assert info["state"] == "FAILED"
    assert "server stopped while the query ran" in info["error"]
    # The killed server's reader backend notices its client is gone and stops.
    eventually_sync(
        lambda: reader_backends(fresh_db_url),
        until=lambda n: n == 0,
        what="the orphaned SQL stops running",
        timeout_s=15,
    )

    # A clean stop fails what runs, too.
    r = httpx.post(
        second.url + "/v1/queries",
        json={"sql": {"query": "SELECT pg_sleep(30)"}, "async": True},
    )
    qid2 = r.json()["query_id"]
    eventually_sync(
        lambda: httpx.get(f"{second.url}/v1/queries/{qid2}").json()["data"]["state"],
        until=lambda s: s == "RUNNING",
        what="the second async query runs",
        timeout_s=20,
    )
    second.stop()
    with psycopg.connect(fresh_db_url) as conn:
        row = conn.execute(
            "SELECT state, error FROM pgpager.stored_queries WHERE query_id = %s", [qid2]
        ).fetchone()
    assert row == ("FAILED", "server stopped while the query ran")


# --- vector search ----------------------------------------------------------------------------
def unit(v: list[float]) -> list[float]:
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


async def seed_vectors(
    client: AsyncTestClient[Any], collection: str, n: int
) -> list[dict[str, Any]]:
    rng = random.Random(7)
    items = [
        {
            "id": f"v{i:04d}",
            "vector": [rng.uniform(-1, 1) for _ in range(3)],
            "metadata": {"i": i, "even": i % 2 == 0},
            "data": f"doc {i}",
        }
        for i in range(n)
    ]
    for start in range(0, n, 500):
        r = await client.post(
            f"/v1/collections/{collection}/vectors", json={"vectors": items[start : start + 500]}
        )
        assert r.status_code == 200, r.text
    return items


def exact_order(items: list[dict[str, Any]], q: list[float]) -> list[str]:
    qn = unit(q)

    def distance(it: dict[str, Any]) -> float:
        return 1 - sum(a * b for a, b in zip(unit(it["vector"]), qn, strict=True))

    return [it["id"] for it in sorted(items, key=lambda it: (distance(it), it["id"]))]


async def test_vector_search_stored_query(client: AsyncTestClient[Any], collection: str) -> None:
    items = await seed_vectors(client, collection, 60)
    q = [0.3, -0.2, 0.9]
    r = await client.post(
        "/v1/queries",
        json={
            "vector_search": {
                "collection": collection,
                "vector": q,
                "limit": 40,
                "include_metadata": True,
                "include_data": True,
            },
            "max_initial_results": 15,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["results_total_doc_count"] == 40
    first = body["results"]
    assert len(first) == 15
    assert set(first[0]) == {"id", "score", "distance", "metadata", "data"}
    rest = (
        await client.get(
            f"/v1/queries/{body['query_id']}/pages",
            params={"cursor": body["pagination"]["next_cursor"]},
        )
    ).json()
    hits = first + rest["results"]
    assert [h["id"] for h in hits] == exact_order(items, q)[:40]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= s <= 1 for s in scores)
    assert hits[0]["metadata"]["i"] == int(hits[0]["id"][1:])
    assert hits[0]["data"] == f"doc {int(hits[0]['id'][1:])}"
    info = (await client.get(f"/v1/queries/{body['query_id']}")).json()["data"]
    assert info["kind"] == "vector_search"

    # A filter, vectors included.
    r = await client.post(
        "/v1/queries",
        json={
            "vector_search": {
                "collection": collection,
                "vector": q,
                "limit": 100,
                "filter": "even = true",
                "include_vectors": True,
            }
        },
    )
    hits = r.json()["results"]
    evens = [it for it in items if it["metadata"]["even"]]
    assert [h["id"] for h in hits] == exact_order(evens, q)
    assert set(hits[0]) == {"id", "score", "distance", "vector"}
    by_id = {it["id"]: it["vector"] for it in items}
    assert hits[0]["vector"] == pytest.approx(by_id[hits[0]["id"]], rel=1e-6)


@pytest.mark.parametrize("scan_tuples", [20_000, 1])
async def test_vector_search_on_the_index_path(
    make_client: Any, collection_name: str, monkeypatch: pytest.MonkeyPatch, scan_tuples: int
) -> None:
    """Above flat_search_cutoff the HNSW stream serves the search (iterative scan); it still
    returns `limit` rows in score order, and a restrictive filter still fills the page. With a
    tiny scan bound the stream ends early and the exact tail completes the result."""
    from pgpager.services import stored_queries

    monkeypatch.setattr(stored_queries, "MIN_SCAN_TUPLES", scan_tuples)
    tails = []
    use_sort = stored.pages.use_sort

    async def spy(conn: Any) -> None:
        tails.append(1)
        await use_sort(conn)

    monkeypatch.setattr(stored.pages, "use_sort", spy)
    async with make_client(flat_search_cutoff=5) as client:
        r = await client.post("/v1/collections", json={"name": collection_name, "dimension": 3})
        assert r.status_code == 201
        items = await seed_vectors(client, collection_name, 400)
        q = [-0.5, 0.1, 0.4]
        r = await client.post(
            "/v1/queries",
            json={"vector_search": {"collection": collection_name, "vector": q, "limit": 30}},
        )
        hits = r.json()["results"]
        assert len(hits) == 30 and len({h["id"] for h in hits}) == 30
        assert len({h["id"] for h in hits} & set(exact_order(items, q)[:30])) >= 27
        if not tails:  # the stream alone, in strict order
            assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
        r = await client.post(
            "/v1/queries",
            json={
                "vector_search": {
                    "collection": collection_name,
                    "vector": q,
                    "limit": 30,
                    "filter": "i < 40",
                }
            },
        )
        hits = r.json()["results"]
        assert len(hits) == 30 and len({h["id"] for h in hits}) == 30
        assert all(int(h["id"][1:]) < 40 for h in hits)
    assert bool(tails) == (scan_tuples == 1)


@pytest.mark.parametrize(
    ("search", "status"),
    [
        ({"collection": "no_such_collection", "vector": [1, 2, 3]}, 404),
        ({"vector": [1, 2], "limit": 5}, 422),
        ({"vector": [1, 2, 3], "filter": "a ==== 1"}, 422),
        ({"vector": [1, 2, 3], "limit": 0}, 422),
    ],
)
async def test_vector_search_mistakes(
    client: AsyncTestClient[Any], collection: str, search: dict[str, Any], status: int
) -> None:
    r = await client.post(
        "/v1/queries", json={"vector_search": {"collection": collection, **search}}
    )
    assert r.status_code == status, r.text


# --- SQL safety -------------------------------------------------------------------------------
async def test_sql_runs_as_the_reader_in_a_read_only_transaction(
    client: AsyncTestClient[Any], collection: str
) -> None:
    await client.post(
        f"/v1/collections/{collection}/vectors",
        json={"vectors": [{"id": "a", "vector": [1, 0, 0], "metadata": {"k": 1}}]},
    )
    body = await completed(
        client,
        f"SELECT id, metadata, current_user AS cu, session_user AS su, "
        f"current_setting('transaction_read_only') AS ro FROM \"{collection}\"",
    )
    assert body["results"] == [
        {
            "id": "a",
            "metadata": {"k": 1},
            "cu": "pgpager_reader_anonymous",
            "su": "pgpager_reader_anonymous",
            "ro": "on",
        }
    ]


ESCAPES = [
    "INSERT INTO pgpager_data.{c} (id, embedding) VALUES ('evil', '[1,1,1]')",
    "UPDATE pgpager_data.{c} SET data = 'evil'",
    "DELETE FROM pgpager_data.{c}",
    "TRUNCATE pgpager_data.{c}",
    "DROP TABLE pgpager_data.{c}",
    "CREATE TABLE pgpager_data.evil (a int)",
    "ALTER TABLE pgpager_data.{c} ADD COLUMN evil int",
    "COPY pgpager_data.{c} TO STDOUT",
    "COPY (SELECT 1) TO '/tmp/pgpager-evil'",
    "SET ROLE postgres",
    "RESET ROLE",
    "SELECT set_config('role', 'postgres', true) AS r, * FROM pgpager.collections",
    "SELECT set_config('session_authorization', 'postgres', false)",
    "SELECT set_config('role', 'postgres', false)",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_ls_dir('.')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE usename IS NOT NULL AND usename <> current_user",
    "SELECT pg_reload_conf()",
    "SELECT dblink_exec('dbname=postgres', 'DROP TABLE pgpager_data.{c}')",
    "SELECT 1; DROP TABLE pgpager_data.{c}",
    "SELECT 1) AS t; DROP TABLE pgpager_data.{c}; SELECT * FROM (SELECT 1",
    "SELECT 1) AS t; COMMIT; DELETE FROM pgpager_data.{c}; SELECT * FROM (SELECT 1",
    "WITH d AS (DELETE FROM pgpager_data.{c} RETURNING *) SELECT * FROM d",
    "WITH d AS (INSERT INTO pgpager_data.{c} (id, embedding) VALUES ('x', '[1,1,1]') "
    "RETURNING *) SELECT * FROM d",
    "SELECT * FROM pgpager_data.{c} FOR UPDATE",
    "SELECT * FROM pgpager.collections",
    "SELECT * FROM pgpager.query_sessions",
    "SELECT * FROM pgpager.stored_queries",
    "SELECT * FROM pgpager.stored_query_rows",
    "SELECT * FROM pgpager.stored_query_secret",
    "SELECT * FROM public.alembic_version",
    "ALTER ROLE pgpager_reader SUPERUSER",
    "GRANT pg_read_server_files TO pgpager_reader",
    "DO $$ BEGIN DELETE FROM pgpager_data.{c}; END $$",
    "CALL nothing()",
    "EXPLAIN ANALYZE DELETE FROM pgpager_data.{c}",
    "SELECT nextval('pgpager.nothing')",
    "VACUUM pgpager_data.{c}",
    "LISTEN x",
]


@pytest.mark.parametrize("attempt", ESCAPES)
async def test_sql_cannot_write_escalate_or_read_service_tables(
    client: AsyncTestClient[Any], collection: str, pg_url: str, attempt: str
) -> None:
    await client.post(
        f"/v1/collections/{collection}/vectors",
        json={"vectors": [{"id": "keep", "vector": [1, 2, 3], "data": "kept"}]},
    )

    def snapshot() -> tuple[Any, ...]:
        with psycopg.connect(pg_url) as conn:
            rows = conn.execute(
                f'SELECT id, embedding::text, data, metadata FROM pgpager_data."{collection}"'
            ).fetchall()
            catalogue = conn.execute("SELECT name FROM pgpager.collections ORDER BY 1").fetchall()
            columns = conn.execute(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_schema = 'pgpager_data' AND table_name = %s",
                [collection],
            ).fetchone()
            evil = conn.execute("SELECT to_regclass('pgpager_data.evil')").fetchone()
            role = conn.execute(
                "SELECT rolsuper, pg_has_role('pgpager_reader', 'pg_read_server_files', 'MEMBER') "
                "FROM pg_roles WHERE rolname = 'pgpager_reader'"
            ).fetchone()
            secret = conn.execute("SELECT cursor_key FROM pgpager.stored_query_secret").fetchone()
        return rows, catalogue, columns, evil, role, secret

    before = snapshot()
    r = await run_sql(client, attempt.replace("{c}", f'"{collection}"'))
    assert 400 <= r.status_code < 500, r.text
    assert snapshot() == before
    assert before[0] == [("keep", "[1,2,3]", "kept", None)]


async def test_reader_sees_collections_created_later(
    client: AsyncTestClient[Any], collection_name: str
) -> None:
    name = collection_name + "_late"
    r = await client.post("/v1/collections", json={"name": name, "dimension": 2})
    assert r.status_code == 201
    await client.post(
        f"/v1/collections/{name}/vectors", json={"vectors": [{"id": "x", "vector": [1, 2]}]}
    )
    body = await completed(client, f'SELECT id FROM pgpager_data."{name}"')
    assert body["results"] == [{"id": "x"}]


async def test_statement_timeout_cannot_be_lifted_by_the_query(
    client: AsyncTestClient[Any],
) -> None:
    """Readers may not run set_config at all (nor SET: the text is one SELECT). The refusal
    comes at once; the time limit only has to end the sleep if set_config were allowed, and is
    long enough that a busy machine's slow start of the query is not mistaken for it (with 500
    ms it once was, in a parallel run)."""
    r = await run_sql(
        client,
        "SELECT set_config('statement_timeout', '0', false), "
        "set_config('transaction_timeout', '0', false), pg_sleep(8)",
        timeout_ms=4000,
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"].endswith("permission denied for function set_config")


# --- scopes and ownership ---------------------------------------------------------------------
async def test_scopes_and_ownership(make_client: Any, collection_name: str) -> None:
    keys = "reader-token-1:read,sql-token-1:read+sql,writer-token-1:write,admin-token-1:admin"
    async with make_client(api_keys=keys) as client:

        def auth(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        body = {"sql": {"query": SERIES_25}}
        assert (await client.post("/v1/queries", json=body)).status_code == 401
        r = await client.post("/v1/queries", json=body, headers=auth("reader-token-1"))
        assert r.status_code == 403 and "'sql' scope" in r.json()["error"]["message"]
        r = await client.post("/v1/queries", json=body, headers=auth("writer-token-1"))
        assert r.status_code == 403
        r = await client.post("/v1/queries", json=body, headers=auth("sql-token-1"))
        assert r.status_code == 200, r.text
        sql_qid = r.json()["query_id"]
        r = await client.post("/v1/queries", json=body, headers=auth("admin-token-1"))
        assert r.status_code == 200

        r = await client.post(
            "/v1/collections",
            json={"name": collection_name, "dimension": 3},
            headers=auth("admin-token-1"),
        )
        assert r.status_code == 201
        search = {"vector_search": {"collection": collection_name, "vector": [1, 0, 0]}}
        r = await client.post("/v1/queries", json=search, headers=auth("reader-token-1"))
        assert r.status_code == 200, r.text
        read_qid = r.json()["query_id"]

        # A query belongs to the key that ran it.
        for path in [f"/v1/queries/{sql_qid}", f"/v1/queries/{sql_qid}/pages"]:
            assert (await client.get(path, headers=auth("reader-token-1"))).status_code == 404
            assert (await client.get(path, headers=auth("sql-token-1"))).status_code == 200
        r = await client.delete(f"/v1/queries/{sql_qid}", headers=auth("reader-token-1"))
        assert r.status_code == 404
        mine = (await client.get("/v1/queries", headers=auth("reader-token-1"))).json()["data"]
        assert [q["query_id"] for q in mine] == [read_qid]
        assert mine[0]["run_by"] is not None
        theirs = (await client.get("/v1/queries", headers=auth("sql-token-1"))).json()["data"]
        assert [q["query_id"] for q in theirs] == [sql_qid]


async def test_a_column_named_t_does_not_stand_for_the_row(client: AsyncTestClient[Any]) -> None:
    r = await run_sql(client, "SELECT 1 AS t, 2 AS u")
    assert r.status_code == 200, r.text
    assert r.json()["results"] == [{"t": 1, "u": 2}]
