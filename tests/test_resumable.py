"""Resumable queries: handles on server-side cursors, completeness, order, limits, ownership."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import psycopg
import pytest
from litestar.testing import AsyncTestClient
from pgvector.psycopg import register_vector
from psycopg import sql

from pgpager.cursors import HOST_SETTINGS, CursorHost, CursorLost
from pgpager.errors import InvalidRequest
from pgpager.services.resumable import cursor_query
from pgpager.store.search import Include
from pgpager.store.search import params as search_params
from tests.helpers import clustered, eventually, exact_order, load

Client = AsyncTestClient[Any]


async def create(client: Client, name: str, dim: int, metric: str = "cosine") -> None:
    r = await client.post(
        "/v1/collections", json={"name": name, "dimension": dim, "metric": metric}
    )
    assert r.status_code == 201, r.text


async def start(client: Client, name: str, vector: list[float], **body: Any) -> Any:
    return await client.post(
        f"/v1/collections/{name}/resumable-queries", json={"vector": vector, **body}
    )


async def drain(client: Client, handle: str, k: int) -> tuple[list[dict[str, Any]], int]:
    """Call next until exhausted; returns all results and the number of calls. Every batch
    must be in non-decreasing distance."""
    out: list[dict[str, Any]] = []
    calls = 0
    while True:
        r = await client.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": k})
        assert r.status_code == 200, r.text
        calls += 1
        body = r.json()
        distances = [x["distance"] for x in body["results"]]
        assert distances == sorted(distances), "non-decreasing distance within a batch"
        out.extend(body["results"])
        if body["state"] == "exhausted":
            r = await client.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": k})
            assert r.json()["results"] == [] and r.json()["state"] == "exhausted"
            return out, calls
        assert len(body["results"]) == k, "an active handle returns full batches"


async def test_start_next_stop(client: Client, collection: str) -> None:
    await client.post(
        f"/v1/collections/{collection}/vectors",
        json={
            "vectors": [
                {"id": "a", "vector": [1, 0, 0], "metadata": {"n": 1}, "data": "A"},
                {"id": "b", "vector": [1, 0.1, 0], "metadata": {"n": 2}},
                {"id": "c", "vector": [0, 1, 0], "metadata": {"n": 3}},
                {"id": "d", "vector": [0, 0, 1], "metadata": {"n": 4}},
            ]
        },
    )
    r = await start(
        client, collection, [1, 0, 0], top_k=2, include_metadata=True, include_data=True
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert [x["id"] for x in body["results"]] == ["a", "b"]
    first = body["results"][0]
    assert first["metadata"] == {"n": 1} and first["data"] == "A" and "vector" not in first
    assert first["score"] == pytest.approx(1.0) and first["distance"] == pytest.approx(0.0)
    handle = body["handle"]
    assert len(handle) >= 32

    r = await client.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": 1})
    assert [x["id"] for x in r.json()["results"]] == ["c"]
    assert r.json()["results"][0]["metadata"] == {"n": 3}, "include flags hold for the handle"

    status = (await client.get(f"/v1/resumable-queries/{handle}")).json()
    assert status["state"] == "active" and status["position"] == 3
    assert status["max_idle"] == 3600 and status["idle_seconds"] >= 0

    r = await client.delete(f"/v1/resumable-queries/{handle}")
    assert r.status_code == 200 and r.json()["state"] == "stopped"
    r = await client.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": 1})
    assert r.status_code == 410
    assert "stopped" in r.json()["error"]["message"]

    r = await client.post("/v1/resumable-queries/nope/next", json={"additional_k": 1})
    assert r.status_code == 404


async def test_stop_after_exhaustion_frees_the_handle(
    client: Client, collection: str, pg_url: str
) -> None:
    """A stop ends an exhausted handle too (as Upstash frees it): next then fails with the same
    410 as after the stop of an active handle, and the handle keeps its final position."""
    vectors = [{"id": f"v{i}", "vector": [1, i / 10, 0]} for i in range(5)]
    await client.post(f"/v1/collections/{collection}/vectors", json={"vectors": vectors})

    async def stopped_next(handle: str) -> Any:
        r = await client.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": 1})
        assert r.status_code == 410, r.text
        return r.json()

    exhausted = (await start(client, collection, [1, 0, 0], top_k=3)).json()["handle"]
    await drain(client, exhausted, 10)
    r = await client.delete(f"/v1/resumable-queries/{exhausted}")
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["position"]) == ("stopped", 5)
    after_exhaustion = await stopped_next(exhausted)

    active = (await start(client, collection, [1, 0, 0], top_k=3)).json()["handle"]
    assert (await client.delete(f"/v1/resumable-queries/{active}")).status_code == 200
    assert await stopped_next(active) == after_exhaustion
    assert "this handle is stopped: stopped by the client" in after_exhaustion["error"]["message"]

    for handle, position in ((exhausted, 5), (active, 3)):
        status = (await client.get(f"/v1/resumable-queries/{handle}")).json()
        assert (status["state"], status["position"]) == ("stopped", position)
        r = await client.delete(f"/v1/resumable-queries/{handle}")
        assert r.status_code == 410, "a second stop fails, as in Upstash"
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT id, state, state_reason, position FROM pgpager.query_sessions "
            "WHERE id = ANY(%s)",
            [[exhausted, active]],
        ).fetchall()
    assert sorted(rows) == sorted(
        [
            (exhausted, "stopped", "stopped by the client", 5),
            (active, "stopped", "stopped by the client", 3),
        ]
    )


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot_product"])
async def test_iterates_everything_exactly_once(
    make_client: Any, collection_name: str, pg_url: str, metric: str
) -> None:
    """ef_search 10 starves the HNSW scan; the exact phase must deliver everything it missed."""
    n, dim = 3000, 16
    data = clustered(n, dim, seed=3)
    async with make_client(hnsw_ef_search=10, flat_search_cutoff=100) as client:
        await create(client, collection_name, dim, metric)
        ids = load(pg_url, collection_name, data)
        r = await start(client, collection_name, (data[5] + 0.01).tolist(), top_k=100)
        body = r.json()
        first = [x["distance"] for x in body["results"]]
        assert first == sorted(first), "non-decreasing distance within a batch"
        results = list(body["results"])
        more, _ = await drain(client, body["handle"], 250)
        results += more
        status = (await client.get(f"/v1/resumable-queries/{body['handle']}")).json()
    got = [x["id"] for x in results]
    assert len(got) == len(set(got)) == n
    assert set(got) == set(ids)
    assert status["state"] == "exhausted" and status["position"] == n


async def test_exact_phase_reads_ahead(client: Client, collection_name: str, pg_url: str) -> None:
    """In the exact phase a `next` finds its rows read ahead by an earlier call: fifteen pages
    of 10 read the cursor three times, not fifteen; the rows stay in exact order, each once, and
    the page that delivers the last rows says so."""
    n, dim = 200, 8
    data = clustered(n, dim, seed=9)
    await create(client, collection_name, dim)
    load(pg_url, collection_name, data)
    q = data[3] + 0.01
    hosts = client.app.state.runtime.resumable.hosts.hosts
    reads: list[int] = []
    for host in hosts:
        fetch = host.fetch

        async def counted(name: str, count: int, fetch: Any = fetch) -> Any:
            reads.append(count)
            return await fetch(name, count)

        host.fetch = counted  # type: ignore[method-assign]
    body = (await start(client, collection_name, q.tolist(), top_k=10)).json()
    handle = body["handle"]
    status = (await client.get(f"/v1/resumable-queries/{handle}")).json()
    assert status["phase"] == "exact", "a collection below the cutoff starts in the exact phase"
    got = [x["id"] for x in body["results"]]
    reads.clear()
    for _ in range(15):
        r = await client.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": 10})
        got += [x["id"] for x in r.json()["results"]]
    assert len(reads) <= 3, reads
    assert got == exact_order(pg_url, collection_name, q)[:160]
    states = []
    while True:
        r = await client.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": 10})
        page = r.json()
        got += [x["id"] for x in page["results"]]
        states.append((len(page["results"]), page["state"]))
        if page["state"] != "active":
            break
    assert got == exact_order(pg_url, collection_name, q)
    assert states == [(10, "active")] * 3 + [(10, "exhausted")]


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot_product"])
async def test_recall_of_concatenated_pages(
    make_client: Any, collection_name: str, pg_url: str, metric: str
) -> None:
    """With default settings, pages read from the index phase are close to exact order."""
    n, dim = 5000, 16
    data = clustered(n, dim, seed=4)
    if metric == "dot_product":
        # Inner product is meant for normalized embeddings (Upstash says the same); on vectors
        # of very different norms HNSW's inner-product graph navigates poorly.
        data /= np.linalg.norm(data, axis=1, keepdims=True)
    async with make_client(flat_search_cutoff=100) as client:
        await create(client, collection_name, dim, metric)
        load(pg_url, collection_name, data)
        q = data[11] + 0.01
        body = (await start(client, collection_name, q.tolist(), top_k=100)).json()
        got = [x["id"] for x in body["results"]]
        for _ in range(9):
            r = await client.post(
                f"/v1/resumable-queries/{body['handle']}/next", json={"additional_k": 100}
            )
            got += [x["id"] for x in r.json()["results"]]
        status = (await client.get(f"/v1/resumable-queries/{body['handle']}")).json()
    assert status["phase"] == "index", "this test is about the index phase"
    op = {"cosine": "<=>", "euclidean": "<->", "dot_product": "<#>"}[metric]
    truth = exact_order(pg_url, collection_name, q, op)
    recall = len(set(got) & set(truth[:1000])) / 1000
    assert recall >= 0.9, recall


async def test_selective_filter_and_namespace(
    client: Client, collection_name: str, pg_url: str
) -> None:
    n, dim = 4000, 8
    data = clustered(n, dim, seed=11)
    await create(client, collection_name, dim)
    meta = [{"group": "rare" if i % 200 == 0 else "common", "i": i} for i in range(n)]
    load(pg_url, collection_name, data, metadata=meta)
    load(pg_url, collection_name, data[:50], namespace="other", id_prefix="o")
    r = await start(
        client,
        collection_name,
        data[1].tolist(),
        top_k=7,
        filter="group = 'rare'",
        include_metadata=True,
    )
    body = r.json()
    rest, _ = await drain(client, body["handle"], 7)
    got = body["results"] + rest
    assert sorted(x["metadata"]["i"] for x in got) == list(range(0, n, 200))
    assert [x["distance"] for x in got] == sorted(x["distance"] for x in got)

    r = await start(client, collection_name, data[1].tolist(), top_k=20, namespace="other")
    body = r.json()
    rest, _ = await drain(client, body["handle"], 20)
    assert sorted(x["id"] for x in body["results"] + rest) == sorted(f"o{i}" for i in range(50))


async def test_bad_input(client: Client, collection: str) -> None:
    assert (await start(client, collection, [1, 0], top_k=2)).status_code == 422
    assert (await start(client, collection, [1, 0, 0], top_k=0)).status_code == 422
    assert (await start(client, collection, [1, 0, 0], filter="a ==")).status_code == 422
    assert (await start(client, collection, [1, 0, 0], max_idle=10**9)).status_code == 422
    assert (await start(client, "no_such", [1, 0, 0])).status_code == 404
    r = await start(client, collection, [1, 0, 0])
    handle = r.json()["handle"]
    r = await client.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": 0})
    assert r.status_code == 422


async def test_cap_on_active_handles(
    make_client: Any, fresh_db_url: str, collection_name: str
) -> None:
    async with make_client(url=fresh_db_url, max_active_handles=3) as client:
        await create(client, collection_name, 3)
        await client.post(
            f"/v1/collections/{collection_name}/vectors",
            json={"vectors": [{"id": str(i), "vector": [1, i, 0]} for i in range(5)]},
        )
        handles = [
            (await start(client, collection_name, [1, 0, 0], top_k=1)).json()["handle"]
            for _ in range(3)
        ]
        r = await start(client, collection_name, [1, 0, 0], top_k=1)
        assert r.status_code == 429
        assert "PGPAGER_MAX_ACTIVE_HANDLES" in r.json()["error"]["message"]
        assert "3" in r.json()["error"]["message"]
        await client.delete(f"/v1/resumable-queries/{handles[0]}")
        assert (await start(client, collection_name, [1, 0, 0], top_k=1)).status_code == 201


async def test_handle_belongs_to_its_key(make_client: Any, collection_name: str) -> None:
    keys = "alice-token-1:read+write,bob-token-11:read+write"
    alice = {"Authorization": "Bearer alice-token-1"}
    bob = {"Authorization": "Bearer bob-token-11"}
    async with make_client(api_keys=keys) as client:
        await client.post(
            "/v1/collections", json={"name": collection_name, "dimension": 3}, headers=alice
        )
        await client.post(
            f"/v1/collections/{collection_name}/vectors",
            headers=alice,
            json={"vectors": [{"id": str(i), "vector": [1, i, 0]} for i in range(5)]},
        )
        r = await client.post(
            f"/v1/collections/{collection_name}/resumable-queries",
            json={"vector": [1, 0, 0], "top_k": 1},
            headers=alice,
        )
        handle = r.json()["handle"]
        for method, path, body in [
            ("post", f"/v1/resumable-queries/{handle}/next", {"additional_k": 1}),
            ("get", f"/v1/resumable-queries/{handle}", None),
            ("delete", f"/v1/resumable-queries/{handle}", None),
        ]:
            kwargs: dict[str, Any] = {"headers": bob}
            if body is not None:
                kwargs["json"] = body
            r = await getattr(client, method)(path, **kwargs)
            assert r.status_code == 404, (method, r.status_code)
        r = await client.post(
            f"/v1/resumable-queries/{handle}/next", json={"additional_k": 1}, headers=alice
        )
        assert r.status_code == 200 and len(r.json()["results"]) == 1


async def test_concurrent_next_never_duplicates(
    client: Client, collection_name: str, pg_url: str
) -> None:
    n = 600
    await create(client, collection_name, 8)
    load(pg_url, collection_name, clustered(n, 8, seed=5))
    r = await start(client, collection_name, [1.0] * 8, top_k=1)
    handle = r.json()["handle"]

    async def one() -> list[str]:
        r = await client.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": 20})
        assert r.status_code == 200
        return [x["id"] for x in r.json()["results"]]

    batches = await asyncio.gather(*(one() for _ in range(25)))
    got = [i for b in batches for i in b] + [x["id"] for x in r.json()["results"]]
    assert len(got) == len(set(got)) == 501
    assert client.app.state.runtime.resumable._locks == {}, "per-handle locks do not pile up"


async def test_sweeper_expires_idle_handles(
    make_client: Any, collection: str, client: Client, pg_url: str
) -> None:
    await client.post(
        f"/v1/collections/{collection}/vectors",
        json={"vectors": [{"id": str(i), "vector": [1, i, 0]} for i in range(5)]},
    )
    r = await start(client, collection, [1, 0, 0], top_k=1, max_idle=1)
    handle = r.json()["handle"]
    keep = (await start(client, collection, [1, 0, 0], top_k=1)).json()["handle"]
    rt = client.app.state.runtime
    assert handle in rt.resumable.live

    dry = await rt.sweeper.sweep_once(dry_run=True)
    assert handle not in [c.id for c in dry.expired]

    async def overdue() -> list[str]:
        dry = await rt.sweeper.sweep_once(dry_run=True)
        return [c.id for c in dry.expired]

    await eventually(
        overdue, until=lambda ids: handle in ids, what="a dry-run sweep finds the handle overdue"
    )
    status = (await client.get(f"/v1/resumable-queries/{handle}")).json()
    assert status["state"] == "active", "a dry run changes nothing"

    report = await rt.sweeper.sweep_once()
    assert handle in [c.id for c in report.expired]
    assert keep not in [c.id for c in report.expired]
    status = (await client.get(f"/v1/resumable-queries/{handle}")).json()
    assert status["state"] == "expired" and "idle" in status["state_reason"]
    r = await client.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": 1})
    assert r.status_code == 410 and "idle" in r.json()["error"]["message"]
    assert handle not in rt.resumable.live, "its cursor was closed"
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM pgpager.query_session_rows WHERE session_id = %s", [handle]
        ).fetchone()
    assert rows == (0,)


async def test_background_sweeper_with_tiny_interval(
    make_client: Any, collection_name: str
) -> None:
    async with make_client(sweep_interval_s=0.05) as client:
        await create(client, collection_name, 3)
        await client.post(
            f"/v1/collections/{collection_name}/vectors",
            json={"vectors": [{"id": "x", "vector": [1, 0, 0]}, {"id": "y", "vector": [0, 1, 0]}]},
        )
        handle = (await start(client, collection_name, [1, 0, 0], top_k=1, max_idle=1)).json()[
            "handle"
        ]

        async def state() -> str:
            return str((await client.get(f"/v1/resumable-queries/{handle}")).json()["state"])

        await eventually(
            state,
            until=lambda s: s == "expired",
            what="the background sweeper expires the idle handle",
            timeout_s=15,
        )


async def test_max_lifetime(make_client: Any, collection_name: str) -> None:
    async with make_client(max_handle_lifetime_s=1) as client:
        await create(client, collection_name, 3)
        await client.post(
            f"/v1/collections/{collection_name}/vectors",
            json={"vectors": [{"id": str(i), "vector": [1, i, 0]} for i in range(9)]},
        )
        handle = (await start(client, collection_name, [1, 0, 0], top_k=1)).json()["handle"]

        async def next_one() -> Any:
            return await client.post(
                f"/v1/resumable-queries/{handle}/next", json={"additional_k": 1}
            )

        # Each poll that is still served delivers a row (8 are left): poll slowly.
        r = await eventually(
            next_one,
            until=lambda r: r.status_code == 410,
            what="next is refused once the handle outlived its 1 s lifetime",
            interval_s=0.2,
        )
        assert "lifetime" in r.json()["error"]["message"]


async def test_cursor_backend_terminated(client: Client, collection_name: str, pg_url: str) -> None:
    n = 500
    await create(client, collection_name, 8)
    load(pg_url, collection_name, clustered(n, 8, seed=9))
    handles = []
    first: dict[str, list[str]] = {}
    for s in range(3):
        body = (
            await start(
                client, collection_name, clustered(1, 8, seed=100 + s)[0].tolist(), top_k=50
            )
        ).json()
        handles.append(body["handle"])
        first[body["handle"]] = [x["id"] for x in body["results"]]
    rt = client.app.state.runtime
    pids = {h.backend_pid for h in rt.resumable.hosts.hosts if h.backend_pid}
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", [pid])
    for h in handles:
        rest, _ = await drain(client, h, 64)
        got = first[h] + [x["id"] for x in rest]
        assert len(got) == len(set(got)) == n, "no duplicate, no gap after the backend died"


async def test_drop_collection_with_open_handles(
    make_client: Any, pg_url: str, collection_name: str
) -> None:
    """A cursor host's transaction locks tables it read; a drop must not hang behind it, and
    handles of other collections on the same host carry on (rehydrated)."""
    a, b = collection_name + "_a", collection_name + "_b"
    async with make_client(cursor_hosts=1) as client:
        for name in (a, b):
            await create(client, name, 8)
            load(pg_url, name, clustered(300, 8, seed=len(name)))
        ha = (await start(client, a, [1.0] * 8, top_k=5)).json()["handle"]
        body = (await start(client, b, [1.0] * 8, top_k=5)).json()
        hb, first = body["handle"], [x["id"] for x in body["results"]]
        await client.delete(f"/v1/resumable-queries/{ha}")  # its cursor closes; the lock stays

        began = time.monotonic()
        r = await client.delete(f"/v1/collections/{a}")
        assert r.status_code == 204, r.text
        assert time.monotonic() - began < 10
        rest, _ = await drain(client, hb, 50)
        got = first + [x["id"] for x in rest]
        assert len(got) == len(set(got)) == 300


async def test_idle_handle_expires_on_next_without_a_sweep(client: Client, collection: str) -> None:
    """The hot path refuses an overdue handle by itself; it does not wait for the sweeper."""
    await client.post(
        f"/v1/collections/{collection}/vectors",
        json={"vectors": [{"id": str(i), "vector": [1, i, 0]} for i in range(9)]},
    )
    handle = (await start(client, collection, [1, 0, 0], top_k=1, max_idle=1)).json()["handle"]
    assert handle in client.app.state.runtime.resumable.live

    async def idle_seconds() -> float:
        return float((await client.get(f"/v1/resumable-queries/{handle}")).json()["idle_seconds"])

    await eventually(
        idle_seconds, until=lambda s: s > 1.2, what="the handle is idle past its max_idle of 1 s"
    )
    r = await client.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": 1})
    assert r.status_code == 410
    assert "idle" in r.json()["error"]["message"]
    assert (await client.get(f"/v1/resumable-queries/{handle}")).json()["state"] == "expired"


@pytest.mark.parametrize("phase", ["exact", "index"])
async def test_skipping_delivered_rows_is_never_a_nested_loop(
    make_client: Any, collection_name: str, pg_url: str, phase: str
) -> None:
    """The rows a handle delivered grow by thousands a second; the statistics the planner sees
    lag behind. Planted here: the table was analyzed when it held 100 rows and before this
    handle delivered anything. A nested loop over what the planner takes for one delivered row
    rescans all of them per candidate (143 s once, at 63,000 rows): the cursor a handle declares
    (exact phase, or a rehydrated index phase) must not plan one, whatever the statistics say."""
    n, dim = 3000, 8
    data = clustered(n, dim, seed=21)
    async with make_client(flat_search_cutoff=100) as client:
        await create(client, collection_name, dim)
        load(pg_url, collection_name, data)
        body = (await start(client, collection_name, data[7].tolist(), top_k=1000)).json()
        rt = client.app.state.runtime
        c = await rt.collections.get(collection_name)
        session = await rt.resumable.status(body["handle"], None)
    assert session.position == 1000
    select = cursor_query(c, Include(), None, phase=phase, rehydrate=True)
    params = {**search_params(c, data[7], "", None), "session_id": session.id}
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_restore_relation_stats('schemaname', 'pgpager_data', 'relname', %s::text,"
            " 'reltuples', 100::real)",
            [collection_name],
        )
        conn.execute(
            "SELECT pg_restore_attribute_stats('schemaname', 'pgpager', 'relname',"
            " 'query_session_rows', 'attname', 'session_id', 'inherited', false,"
            " 'null_frac', 0::real, 'avg_width', 49, 'n_distinct', 1::real,"
            " 'most_common_vals', '{another-handle}'::text, 'most_common_freqs', '{1}'::real[])"
        )
    with psycopg.connect(pg_url) as conn:
        register_vector(conn)
        conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY")
        for stmt in HOST_SETTINGS:
            conn.execute(stmt)
        declare = sql.SQL("EXPLAIN DECLARE c NO SCROLL CURSOR FOR {}").format(select)
        plan = "\n".join(r[0] for r in conn.execute(declare, params).fetchall())
    assert "Nested Loop" not in plan, plan
    assert "query_session_rows" in plan, plan


@pytest.mark.parametrize("sync_commit", [True, False])
async def test_delivery_record_commit_mode(
    make_client: Any, collection_name: str, sync_commit: bool
) -> None:
    """PGPAGER_DELIVERY_SYNC_COMMIT=false relaxes synchronous_commit for the delivery record's
    own transaction (SET LOCAL: it ends with it); handles still deliver every row once."""
    from pgpager.store.queries import query

    async with make_client(delivery_sync_commit=sync_commit) as client:
        await create(client, collection_name, 2)
        vectors = [{"id": str(i), "vector": [1.0, i / 10]} for i in range(30)]
        r = await client.post(
            f"/v1/collections/{collection_name}/vectors", json={"vectors": vectors}
        )
        assert r.status_code == 200, r.text
        body = (await start(client, collection_name, [1, 0], top_k=5)).json()
        rest, _ = await drain(client, body["handle"], 7)
        got = [x["id"] for x in body["results"] + rest]
        assert sorted(got, key=int) == [str(i) for i in range(30)]

        body = (await start(client, collection_name, [1, 0], top_k=1)).json()
        db = client.app.state.runtime.db
        async with db.connection() as conn, conn.transaction():
            # The test cluster may run with synchronous_commit off: start from on.
            await conn.execute("SET LOCAL synchronous_commit = on")
            cur = await conn.execute(
                query("sessions", "record_deliveries"),
                {
                    "handles": [body["handle"]],
                    "owners": [body["handle"]],
                    "ids": ["29"],
                    "sync_commit": sync_commit,
                },
            )
            row = await cur.fetchone()
            assert row is not None and row[0] == body["handle"] and list(row[1]) == ["29"]
            cur = await conn.execute("SHOW synchronous_commit")
            shown = await cur.fetchone()
        assert shown is not None and shown[0] == ("on" if sync_commit else "off")


async def test_a_start_names_the_backend_holding_its_cursor(
    make_client: Any, collection_name: str, pg_url: str
) -> None:
    """An index-phase start writes its row while the cursor is declared; the row still names
    the cursor host's backend, also when that DECLARE is what opened the host's connection
    (a fresh server), so the sweeper can tell when the cursor dies with it."""
    async with make_client(flat_search_cutoff=0) as client:
        await create(client, collection_name, 2)
        vectors = [{"id": str(i), "vector": [1.0, i / 100]} for i in range(100)]
        r = await client.post(
            f"/v1/collections/{collection_name}/vectors", json={"vectors": vectors}
        )
        assert r.status_code == 200, r.text
        hosts = client.app.state.runtime.hosts.hosts
        assert all(h.backend_pid is None for h in hosts)  # no host connected yet
        handles = [(await start(client, collection_name, [1, 0], top_k=5)).json() for _ in range(2)]
        pids = {h.backend_pid for h in hosts} - {None}
        with psycopg.connect(pg_url) as conn:
            rows = conn.execute(
                "SELECT phase, owner_pid, cursor_name FROM pgpager.query_sessions "
                "WHERE id = ANY(%s)",
                [[h["handle"] for h in handles]],
            ).fetchall()
    assert len(rows) == 2
    for phase, pid, cursor in rows:
        assert phase == "index" and cursor
        assert pid in pids, (pid, pids)


async def test_a_failed_statement_on_a_cursor_host_leaves_its_other_cursors_alone(
    pg_url: str,
) -> None:
    """A host keeps a savepoint open between statements (cursors.KEEP): a DECLARE or a FETCH
    that fails rolls back to it, twice in a row too, and the cursors declared before it read
    on where they were; the host takes new cursors after, on the same connection."""
    host = CursorHost(pg_url, 0, 40)
    series = sql.SQL("SELECT g FROM generate_series(1, %(n)s) AS g")
    try:
        name, rows = await host.declare(series, {"n": 10}, fetch=3)
        assert rows == [(1,), (2,), (3,)]
        pid = host.backend_pid
        for _ in range(2):
            with pytest.raises(InvalidRequest):
                await host.declare(sql.SQL("SELECT %(n)s::int"), {"n": "not a number"})
        with pytest.raises(InvalidRequest, match="division by zero"):  # in the DECLARE's FETCH
            await host.declare(
                sql.SQL("SELECT 1 / (g - 2) FROM generate_series(1, 5) AS g"), {}, fetch=3
            )
        failing, rows = await host.declare(
            sql.SQL("SELECT 6 / (g - %(n)s) FROM generate_series(1, 5) AS g"), {"n": 3}, fetch=1
        )
        assert rows == [(-3,)]
        with pytest.raises(CursorLost):
            await host.fetch(failing, 2)
        assert await host.fetch(name, 2) == [(4,), (5,)]
        later, rows = await host.declare(series, {"n": 2}, fetch=5)
        assert rows == [(1,), (2,)]
        assert await host.fetch(name, 10) == [(g,) for g in range(6, 11)]
        assert (host.backend_pid, host.generation, host.cursors) == (pid, 0, {name, later})
    finally:
        await host.shutdown()
