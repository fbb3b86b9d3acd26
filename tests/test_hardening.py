"""Regressions from the outside audit (issue 12): races, deep JSON, NUL characters, loose types,
the handle cap, and idle-time resolution. Each test failed on the code before its fix."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
from litestar.testing import AsyncTestClient

from pgpager.errors import CollectionNotFound
from pgpager.store import pages, sessions
from pgpager.store.filters import compile_filter
from pgpager.store.search import Include, nearest, params

from .conftest import ServerProcess

Client = AsyncTestClient[Any]


def vectors(ids: list[str], bias: float = 0.0) -> list[dict[str, Any]]:
    return [{"id": i, "vector": [1.0, float(n) + bias, 0.5]} for n, i in enumerate(ids)]


# --- 1. concurrent upserts of the same ids -------------------------------------------------
@pytest.fixture
async def live(
    server_factory: Callable[..., ServerProcess], pg_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A real server on a socket: races need requests that truly run at the same time (the
    in-process test client runs them one after the other)."""
    # A generous pool wait: these tests are about races, not about a saturated pool.
    server = server_factory(pg_url, PGPAGER_POOL_TIMEOUT_S="60")
    await asyncio.to_thread(server.start)
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
        yield http


async def test_concurrent_upserts_of_the_same_ids_never_fail(
    live: httpx.AsyncClient, collection_name: str
) -> None:
    collection = collection_name
    assert (
        await live.post("/v1/collections", json={"name": collection, "dimension": 3})
    ).is_success
    ids = [f"id{i:03d}" for i in range(200)]

    async def native(n: int) -> int:
        batch = ids if n % 2 else list(reversed(ids))
        r = await live.post(
            f"/v1/collections/{collection}/vectors", json={"vectors": vectors(batch, n)}
        )
        return r.status_code

    async def upstash(n: int) -> int:
        batch = ids if n % 2 else list(reversed(ids))
        r = await live.post(f"/upstash/{collection}/upsert", json=vectors(batch, n))
        return r.status_code

    codes = await asyncio.gather(*(native(n) for n in range(20)), *(upstash(n) for n in range(20)))
    assert codes == [200] * 40
    r = await live.get(f"/v1/collections/{collection}")
    assert r.json()["vector_count"] == 200


async def test_a_duplicate_id_in_a_batch_counts_once(client: Client, collection: str) -> None:
    batch = vectors(["a", "a", "b"])
    r = await client.post(f"/v1/collections/{collection}/vectors", json={"vectors": batch})
    assert r.status_code == 200 and r.json() == {"upserted": 2}


# --- 3. drop under traffic -----------------------------------------------------------------
async def test_requests_racing_a_drop_get_404_never_500(
    client: Client, collection_name: str
) -> None:
    name = collection_name
    ids = [str(i) for i in range(50)]
    stop = asyncio.Event()
    statuses: list[tuple[str, int, str]] = []

    async def traffic(kind: str) -> None:
        handle: str | None = None
        while not stop.is_set():
            if kind == "upsert":
                r = await client.post(
                    f"/v1/collections/{name}/vectors", json={"vectors": vectors(ids[:10])}
                )
            elif kind == "search":
                r = await client.post(
                    f"/v1/collections/{name}/search", json={"vector": [1, 0, 0], "limit": 5}
                )
            elif kind == "upstash":
                r = await client.post(f"/upstash/{name}/query", json={"vector": [1, 0, 0]})
            elif kind == "fetch":
                r = await client.post(f"/v1/collections/{name}/vectors/fetch", json={"ids": ["1"]})
            elif handle is None:
                r = await client.post(
                    f"/v1/collections/{name}/resumable-queries",
                    json={"vector": [1, 0, 0], "top_k": 2},
                )
                if r.status_code == 201:
                    handle = r.json()["handle"]
            else:
                r = await client.post(
                    f"/v1/resumable-queries/{handle}/next", json={"additional_k": 2}
                )
                if r.status_code != 200 or r.json()["state"] != "active":
                    handle = None
            statuses.append((kind, r.status_code, r.text[:200]))
            await asyncio.sleep(0)

    async def churn() -> None:
        for _ in range(15):
            r = await client.post("/v1/collections", json={"name": name, "dimension": 3})
            assert r.status_code == 201, r.text
            r = await client.post(f"/v1/collections/{name}/vectors", json={"vectors": vectors(ids)})
            assert r.status_code in (200, 404), r.text
            await asyncio.sleep(0.2)
            r = await client.delete(f"/v1/collections/{name}")
            assert r.status_code == 204, r.text
        stop.set()

    kinds = ["upsert", "search", "upstash", "fetch", "resumable"] * 2
    await asyncio.gather(churn(), *(traffic(k) for k in kinds))
    errors = [s for s in statuses if s[1] >= 500]
    assert errors == []
    assert {code for _, code, _ in statuses} <= {200, 201, 404, 410}


async def test_statements_on_a_collection_dropped_meanwhile_are_collection_not_found(
    client: Client, collection: str
) -> None:
    """The race above, made certain: a request that looked the collection up just before the
    drop reaches its table (or the sessions table's foreign key) just after it."""
    rt = client.app.state.runtime
    c = await rt.collections.get(collection)
    assert (await client.delete(f"/v1/collections/{collection}")).status_code == 204
    with pytest.raises(CollectionNotFound):
        async with rt.db.connection() as conn:
            await pages.count_matching(conn, c, "", compile_filter(None), bound=10)
    with pytest.raises(CollectionNotFound):
        await rt.hosts.pick().declare(
            nearest(c, include=Include()),
            params(c, np.asarray([1, 0, 0], dtype=np.float32), "", None),
        )
    with pytest.raises(CollectionNotFound):
        await sessions.insert_with_first_page(
            rt.db,
            10,
            ["1"],
            None,
            id="h" * 48,
            collection=collection,
            namespace="",
            query={"vector": [1, 0, 0]},
            phase="index",
            max_idle_s=60,
            max_lifetime_s=60,
            owner_instance="test",
            api_key_id=None,
        )


# --- 4. the handle cap ---------------------------------------------------------------------
@pytest.mark.parametrize("phase", ["exact", "index"])
async def test_a_burst_of_starts_cannot_overshoot_the_cap(
    make_client: Any, fresh_db_url: str, collection_name: str, phase: str
) -> None:
    """Forty starts at once against a cap of ten: ten handles, thirty 429s, and nothing left of
    the thirty (no row, no cursor). An index-phase start writes its row while its cursor is
    declared and counts it against the cap only then; an exact-phase start first."""
    # A cutoff of 0 makes even a small collection start in the index phase (and with more rows
    # than a start reads, the index scan does not end within it).
    cutoff = {"flat_search_cutoff": 0} if phase == "index" else {}
    ids = [str(i) for i in range(100)]
    async with make_client(url=fresh_db_url, max_active_handles=10, **cutoff) as client:
        r = await client.post("/v1/collections", json={"name": collection_name, "dimension": 3})
        assert r.status_code == 201
        await client.post(
            f"/v1/collections/{collection_name}/vectors", json={"vectors": vectors(ids)}
        )

        async def start() -> Any:
            return await client.post(
                f"/v1/collections/{collection_name}/resumable-queries",
                json={"vector": [1, 0, 0], "top_k": 1},
            )

        # One start and stop first: the burst's starts then hold a count, and most are admitted
        # on the bound from it (recounting as the bound nears the cap), not on a count each.
        first = await start()
        assert first.status_code == 201, first.text
        r = await client.delete(f"/v1/resumable-queries/{first.json()['handle']}")
        assert r.status_code == 200, r.text
        responses = await asyncio.gather(*(start() for _ in range(40)))
        cursors = sum(len(h.cursors) for h in client.app.state.runtime.hosts.hosts)
    with psycopg.connect(fresh_db_url) as conn:
        phases = conn.execute(
            "SELECT phase FROM pgpager.query_sessions WHERE collection = %s AND state = 'active'",
            [collection_name],
        ).fetchall()
    assert [p for (p,) in phases] == [phase] * 10
    assert cursors == 10
    codes = [r.status_code for r in responses]
    assert codes.count(201) == 10, codes
    assert codes.count(429) == 30, codes
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers.get("retry-after")
    assert "PGPAGER_MAX_ACTIVE_HANDLES" in refused.json()["error"]["message"]


def test_the_cap_is_checked_and_the_first_page_recorded_by_one_function(
    fresh_db_url: str,
) -> None:
    """pgpager.admit_handle_bounded, which a start's COMMIT follows in the same round trip.
    Without a count it counts; under the cap it records the page and answers the ids new for
    the handle; over it, it deletes the row it was given and answers NULL, so the COMMIT after
    it leaves nothing behind. Given a count whose bound (count + admissions since) stays under
    the cap it counts nothing: rows made active by hand are not seen until the next count.
    Migration 0010's admit_handle still answers for servers not yet upgraded, and draws from
    the same sequence."""
    insert = (
        "INSERT INTO pgpager.query_sessions (id, collection, namespace, query, phase, "
        "max_idle_s, max_lifetime_s) VALUES (%s, 'c', '', '{}', 'index', 60, 60)"
    )
    admit = "SELECT * FROM pgpager.admit_handle_bounded(%s, %s, %s, %s, %s)"
    with psycopg.connect(fresh_db_url) as conn:
        conn.execute(
            "INSERT INTO pgpager.collections (name, dimension, metric, table_name) "
            "VALUES ('c', 3, 'cosine', 'c')"
        )
        conn.commit()

        def admitted(handle: str, ids: list[str], cap: int, known: Any = (None, None)) -> Any:
            conn.execute(insert, [handle])
            answer = conn.execute(admit, [handle, ids, cap, *known]).fetchone()
            conn.commit()
            return answer

        fresh, at, counted = admitted("a" * 48, ["1", "2", "2"], 1)
        assert (sorted(fresh), counted) == (["1", "2"], 1)
        assert admitted("b" * 48, ["1"], 1) == (None, at + 1, 2)  # counted: over the cap
        conn.execute(insert.replace("'index'", "'exact'"), ["x" * 48])  # by hand, no admission
        conn.commit()
        # Once b had drawn 2 and was gone, one handle was active: from (2, 1), c's bound is 2,
        # within a cap of 2, so nothing is counted (x, made active by hand, is not seen).
        known = (at + 1, 1)
        assert admitted("c" * 48, ["3"], 2, known) == (["3"], at + 1, 1)
        # d's bound is 3: counted (a, c, d and x: 4), over the cap.
        assert admitted("d" * 48, [], 2, known) == (None, at + 3, 4)
        conn.execute(insert, ["e" * 48])
        assert conn.execute("SELECT pgpager.admit_handle(%s, %s, 9)", ["e" * 48, ["4"]]).fetchone()
        conn.commit()
        # e drew a number too: f's bound from (2, 1) is 5.
        assert admitted("f" * 48, [], 5, known) == ([], at + 1, 1)
        assert admitted("g" * 48, [], 5, (at + 4, 4)) == (None, at + 6, 6)  # 4 + 2 > 5: counted
        rows = conn.execute("SELECT id FROM pgpager.query_sessions ORDER BY 1").fetchall()
        assert [r[0][0] for r in rows] == ["a", "c", "e", "f", "x"]  # g was over the cap
        delivered = conn.execute(
            "SELECT session_id, row_id FROM pgpager.query_session_rows ORDER BY 1, 2"
        ).fetchall()
        assert [(h[0], i) for h, i in delivered] == [("a", "1"), ("a", "2"), ("c", "3"), ("e", "4")]


async def test_starts_on_another_instance_count_against_this_ones_bound(
    make_client: Any, fresh_db_url: str, collection_name: str
) -> None:
    """Two servers, a cap of five: one admits a handle (and keeps its count), the other four;
    the first's next start is the sixth and is refused, though its own count said one."""
    async with (
        make_client(url=fresh_db_url, max_active_handles=5, instance_id="one") as one,
        make_client(url=fresh_db_url, max_active_handles=5, instance_id="two") as two,
    ):
        r = await one.post("/v1/collections", json={"name": collection_name, "dimension": 3})
        assert r.status_code == 201, r.text
        path = f"/v1/collections/{collection_name}/resumable-queries"
        body = {"vector": [1, 0, 0], "top_k": 1}
        await one.post(
            f"/v1/collections/{collection_name}/vectors", json={"vectors": vectors(["1", "2"])}
        )
        assert (await one.post(path, json=body)).status_code == 201
        for _ in range(4):
            r = await two.post(path, json=body)
            assert r.status_code == 201, r.text
        r = await one.post(path, json=body)
        assert r.status_code == 429, r.text


# --- 5. deep JSON --------------------------------------------------------------------------
def nested(depth: int) -> str:
    """A JSON object ``depth`` levels deep, as text (the json module cannot write it)."""
    return '{"a": ' * (depth - 1) + '{"leaf": 1}' + "}" * (depth - 1)


async def test_deep_metadata_from_clients_is_a_4xx_naming_the_limit(
    client: Client, collection: str
) -> None:
    headers = {"content-type": "application/json"}
    for depth, status in ((400, 422), (1_200, 400)):
        item = '{"id": "deep", "vector": [1, 0, 0], "metadata": ' + nested(depth) + "}"
        r = await client.post(
            f"/v1/collections/{collection}/vectors",
            content='{"vectors": [' + item + "]}",
            headers=headers,
        )
        assert r.status_code == status, (depth, r.text[:300])
        assert "64" in r.json()["error"]["message"], r.text[:300]
        r = await client.post(
            f"/upstash/{collection}/upsert", content="[" + item + "]", headers=headers
        )
        assert r.status_code == status, (depth, r.text[:300])
        assert "64" in r.json()["error"], r.text[:300]
    ok = '{"id": "ok", "vector": [1, 0, 0], "metadata": ' + nested(64) + "}"
    r = await client.post(
        f"/v1/collections/{collection}/vectors",
        content='{"vectors": [' + ok + "]}",
        headers=headers,
    )
    assert r.status_code == 200, r.text[:300]


async def test_a_row_written_with_sql_is_served_whatever_its_depth(
    client: Client, collection: str, pg_url: str
) -> None:
    deep = nested(3_000)
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            f'INSERT INTO pgpager_data."{collection}" (id, embedding, metadata) '
            "VALUES ('deep', '[1,0,0]', %s::jsonb), ('flat', '[0,1,0]', '{\"k\": 1}')",
            [deep],
        )
    base = f"/v1/collections/{collection}"
    calls = [
        ("POST", f"{base}/vectors/fetch", {"ids": ["deep"], "include_metadata": True}),
        ("GET", f"{base}/vectors/deep", None),
        ("POST", f"{base}/search", {"vector": [1, 0, 0], "include_metadata": True}),
        ("GET", f"{base}/objects", None),
        ("POST", f"/upstash/{collection}/query", {"vector": [1, 0, 0], "includeMetadata": True}),
        ("POST", f"/upstash/{collection}/range", {"limit": 10, "includeMetadata": True}),
        ("POST", f"/upstash/{collection}/fetch", {"ids": ["deep"], "includeMetadata": True}),
        (
            "POST",
            f"{base}/resumable-queries",
            {"vector": [1, 0, 0], "top_k": 5, "include_metadata": True},
        ),
    ]
    for method, path, body in calls:
        r = await client.request(method, path, json=body)
        assert r.status_code in (200, 201), (path, r.text[:300])
        assert '"leaf":1' in r.text.replace(" ", ""), path


# --- 6. NUL characters ---------------------------------------------------------------------
async def test_nul_characters_are_4xx(client: Client, collection: str) -> None:
    calls = [
        ("GET", "/v1/resumable-queries/abc%00def", None),
        ("POST", "/v1/resumable-queries/abc%00def/next", {"additional_k": 1}),
        ("POST", f"/upstash/{collection}/resumable-query-next", {"uuid": "a\x00b"}),
        ("POST", f"/upstash/{collection}/resumable-query-end", {"uuid": "a\x00b"}),
        ("POST", "/v1/queries", {"sql": {"query": "SELECT $1::text", "parameters": ["a\x00"]}}),
        (
            "POST",
            "/v1/queries",
            {"sql": {"query": "SELECT $1::jsonb", "parameters": [{"k": "a\x00"}]}},
        ),
        ("POST", "/v1/queries", {"vector_search": {"collection": "x\x00", "vector": [1, 0, 0]}}),
        ("GET", "/v1/queries/ab%00", None),
        ("GET", f"/v1/collections/{collection}%00", None),
    ]
    for method, path, body in calls:
        r = await client.request(method, path, json=body)
        assert 400 <= r.status_code < 500, (path, body, r.status_code, r.text[:300])


# --- 7. strict types on native routes ------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("resumable-queries", {"vector": [1, 0, 0], "top_k": "10"}),
        ("resumable-queries", {"vector": ["1", 0, 0]}),
        ("search", {"vector": [1, 0, 0], "limit": "10"}),
        ("search", {"vector": [1, 0, 0], "limit": 2.5}),
        ("vectors", {"vectors": [{"id": "a", "vector": ["1", 0, 0]}]}),
    ],
)
async def test_wrong_types_are_422(
    client: Client, collection: str, path: str, body: dict[str, Any]
) -> None:
    r = await client.post(f"/v1/collections/{collection}/{path}", json=body)
    assert r.status_code == 422, r.text
    assert "expected" in r.json()["error"]["message"].lower()


async def test_wrong_types_elsewhere_are_422(client: Client, collection: str) -> None:
    r = await client.post("/v1/collections", json={"name": "typed", "dimension": "3"})
    assert r.status_code == 422, r.text
    r = await client.post(
        f"/v1/collections/{collection}/vectors",
        json={"vectors": [{"id": "a", "vector": [1, 0, 0]}]},
    )
    r = await client.post(
        f"/v1/collections/{collection}/resumable-queries", json={"vector": [1, 0, 0], "top_k": 1}
    )
    handle = r.json()["handle"]
    r = await client.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": "10"})
    assert r.status_code == 422, r.text


# --- 11. idle time resolution --------------------------------------------------------------
async def test_a_handle_used_within_its_max_idle_does_not_expire(
    client: Client, collection: str
) -> None:
    await client.post(
        f"/v1/collections/{collection}/vectors",
        json={"vectors": vectors([str(i) for i in range(20)])},
    )
    r = await client.post(
        f"/v1/collections/{collection}/resumable-queries",
        json={"vector": [1, 0, 0], "top_k": 1, "max_idle": 1},
    )
    handle = r.json()["handle"]
    for _ in range(4):
        # The sleep is the point: each call comes 0.7 s after the last, inside max_idle = 1 s,
        # while 1.4 s pass between every second call.
        await asyncio.sleep(0.7)
        r = await client.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": 1})
        assert r.status_code == 200, r.text


# --- 8. sizes ------------------------------------------------------------------------------
async def test_query_many_fan_out_is_bounded(make_client: Any, collection_name: str) -> None:
    async with make_client(max_queries_per_request=3) as client:
        await client.post("/v1/collections", json={"name": collection_name, "dimension": 3})
        query = {"vector": [1, 0, 0], "topK": 1}
        r = await client.post(f"/upstash/{collection_name}/query", json=[query] * 3)
        assert r.status_code == 200, r.text
        r = await client.post(f"/upstash/{collection_name}/query", json=[query] * 4)
        assert r.status_code == 422, r.text
        assert "PGPAGER_MAX_QUERIES_PER_REQUEST" in r.json()["error"]


async def test_a_stored_row_over_the_row_limit_fails_the_query(make_client: Any) -> None:
    async with make_client(stored_query_max_row_kb=1) as client:
        r = await client.post("/v1/queries", json={"sql": {"query": "SELECT repeat('x', 500)"}})
        assert r.status_code == 200, r.text
        r = await client.post("/v1/queries", json={"sql": {"query": "SELECT repeat('x', 5000)"}})
        assert r.status_code == 422, r.text
        assert "PGPAGER_STORED_QUERY_MAX_ROW_KB" in r.json()["error"]["message"]


async def test_a_page_stops_at_the_page_byte_limit_and_continues(make_client: Any) -> None:
    sql = "SELECT g, repeat('x', 300000) AS pad FROM generate_series(1, 10) AS g"
    async with make_client(stored_query_max_page_mb=1) as client:
        r = await client.post("/v1/queries", json={"sql": {"query": sql}})
        assert r.status_code == 200, r.text
        body = r.json()
        first = [row["g"] for row in body["results"]]
        assert first == [1, 2, 3], "three rows of 300 KB fit in 1 MB, a fourth does not"
        seen = list(first)
        cursor = body["pagination"]["next_cursor"]
        while cursor:
            r = await client.get(
                f"/v1/queries/{body['query_id']}/pages", params={"cursor": cursor, "docs": 100}
            )
            assert r.status_code == 200, r.text
            page = r.json()
            assert len(r.content) <= 1024 * 1024 + 1000
            seen += [row["g"] for row in page["results"]]
            cursor = page["pagination"]["next_cursor"]
        assert seen == list(range(1, 11))


async def test_a_busy_pool_is_waited_for_and_then_a_503_that_says_busy(
    make_client: Any, collection_name: str
) -> None:
    """Not an outage: PostgreSQL answers, every pooled connection is in use. The request waits
    its whole PGPAGER_POOL_TIMEOUT_S and gets a 503 naming the pool, with Retry-After."""
    async with make_client(pool_min_size=1, pool_max_size=1, pool_timeout_s=2.5) as client:
        rt = client.app.state.runtime
        async with rt.db.connection():  # the pool's only connection
            r = await client.get("/v1/collections")
        assert r.status_code == 503, r.text
        assert r.headers.get("retry-after")
        assert "busy" in r.json()["error"]["message"], r.text
        assert "PGPAGER_POOL_MAX_SIZE" in r.json()["error"]["message"]
        assert (await client.get("/v1/collections")).status_code == 200
