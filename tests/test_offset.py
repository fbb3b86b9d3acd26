"""Offset pagination: vector search and listing with limit/offset, the depth cap, full pages,
page consistency, and keyset listing with ``after``."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import pytest
from litestar.testing import AsyncTestClient
from pgvector.psycopg import register_vector

from pgpager.runtime import Runtime
from pgpager.settings import Settings
from pgpager.store import collections as collection_store
from pgpager.store import pages
from pgpager.store.filters import compile_filter
from tests.helpers import clustered, load

Client = AsyncTestClient[Any]

N = 5000
DIM = 32
RARE = 30  # rows tagged 'rare': a filter far more selective than the HNSW scan can serve
OTHER = 50  # rows in namespace 'other'
DUPLICATES = range(100, 120)  # rows sharing row 99's vector: equal distances to break by id
# Small ef_search so a plain HNSW scan would return short pages; cutoff 0 forces the HNSW plan.
HNSW = {"hnsw_ef_search": 10, "flat_search_cutoff": 0}


@dataclass(frozen=True)
class Data:
    name: str
    vectors: np.ndarray[Any, Any]
    ids: list[str]
    rare: list[str]
    other: list[str]


@pytest.fixture(scope="module")
async def data(pg_url: str) -> AsyncIterator[Data]:
    """5,000 clustered 32-d vectors (+ 50 in namespace 'other'), loaded once for the module."""
    name = "off_" + secrets.token_hex(4)
    async with Runtime.open(Settings.from_env(environ={}), pg_url, serve=False) as rt:
        c = await rt.collections.create(name=name, dimension=DIM, build_index=False)
        x = clustered(N, DIM, seed=11)
        x[DUPLICATES] = x[99]
        rng = np.random.default_rng(11)
        rare = set(rng.choice(N, RARE, replace=False).tolist())
        meta: list[dict[str, Any] | None] = [
            {"n": i, "cluster": i % 7, "tag": "rare" if i in rare else "common"} for i in range(N)
        ]
        ids = load(pg_url, name, x, metadata=meta, id_prefix="v")
        other = load(pg_url, name, x[:OTHER], namespace="other", id_prefix="o")
        async with rt.db.connection() as conn:
            await collection_store.build_hnsw_index(conn, c)
        yield Data(name, x, ids, [ids[i] for i in sorted(rare)], other)
        await rt.collections.drop(name)


async def search(client: Client, name: str, vector: Any, **body: Any) -> Any:
    return await client.post(f"/v1/collections/{name}/search", json={"vector": vector, **body})


async def ids_of(client: Client, name: str, vector: Any, **body: Any) -> list[str]:
    r = await search(client, name, vector, **body)
    assert r.status_code == 200, r.text
    return [h["id"] for h in r.json()["results"]]


async def paged(
    client: Client, name: str, vector: Any, pages: int, size: int, start: int = 0, **body: Any
) -> list[str]:
    out: list[str] = []
    for p in range(pages):
        out += await ids_of(client, name, vector, limit=size, offset=start + p * size, **body)
    return out


def exact_ids(pg_url: str, name: str, vector: Any, where: str = "TRUE") -> list[str]:
    """The exact nearest-first order (distance, then id), straight from SQL."""
    with psycopg.connect(pg_url) as conn:
        register_vector(conn)
        rows = conn.execute(
            f"SELECT id FROM pgpager_data.\"{name}\" WHERE namespace = '' AND {where} "
            "ORDER BY (embedding <=> %s) + 0, id",
            [np.asarray(vector, dtype=np.float32)],
        ).fetchall()
    return [r[0] for r in rows]


def queries(d: Data, n: int, seed: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    picks = d.vectors[rng.choice(N, n, replace=False)]
    noisy = picks + 0.05 * rng.normal(size=picks.shape)
    return [d.vectors[99].tolist(), *noisy.astype(np.float32).tolist()][:n]


# --- full pages ---------------------------------------------------------------------------------
async def test_search_pages_are_full_with_small_ef_search(make_client: Any, data: Data) -> None:
    async with make_client(query_maximum_results=N + 100, **HNSW) as client:
        for q in queries(data, 3, seed=1):
            # One page of everything: every row exactly once ...
            r = await search(client, data.name, q, limit=N)
            everything = r.json()["results"]
            ids = [h["id"] for h in everything]
            assert sorted(ids) == sorted(data.ids)
            # ... nearest first (strict order: the index stream comes out sorted) ...
            distances = [h["distance"] for h in everything[:1000]]
            assert all(a <= b + 1e-6 for a, b in itertools.pairwise(distances))
            # ... and every page, shallow or deep, is full and a slice of it.
            for offset in (0, 10, 990, 2500, 4990):
                page = await ids_of(client, data.name, q, limit=10, offset=offset)
                assert page == ids[offset : offset + 10]
            assert await ids_of(client, data.name, q, limit=10, offset=N - 5) == ids[-5:]


async def test_restrictive_filter_returns_every_match_in_full_pages(
    make_client: Any, data: Data, pg_url: str
) -> None:
    q = data.vectors[7].tolist()
    flt = "tag = 'rare'"
    for overrides in (HNSW, {"hnsw_ef_search": 10}):  # HNSW plan, then the flat-search cutoff
        async with make_client(**overrides) as client:
            pages = [
                await ids_of(client, data.name, q, limit=10, offset=o, filter=flt)
                for o in (0, 10, 20, 30)
            ]
            assert [len(p) for p in pages] == [10, 10, 10, 0]
            seen = [i for p in pages for i in p]
            assert sorted(seen) == sorted(data.rare)  # all 30, each once
            assert seen == await ids_of(client, data.name, q, limit=30, filter=flt)
    # Under the cutoff the plan is exact: the order is (distance, id).
    assert seen == exact_ids(pg_url, data.name, q, 'metadata @> \'{"tag": "rare"}\'')


async def test_namespace_is_searched_alone(make_client: Any, data: Data) -> None:
    q = data.vectors[3].tolist()
    for overrides in (HNSW, {}):
        async with make_client(**overrides) as client:
            got = await paged(client, data.name, q, pages=6, size=10, namespace="other")
            assert sorted(got) == sorted(data.other)
            assert got == await ids_of(client, data.name, q, limit=100, namespace="other")


# --- consistency: ten pages of 10 == one page of 100 ---------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "flt", "deep"),
    [
        (HNSW, None, 4000),
        (HNSW, "cluster IN (1, 2, 3)", 2000),  # 2,143 rows match
        (HNSW, "tag = 'rare' OR n < 200", 120),  # 229 rows match
        ({"hnsw_ef_search": 10}, "cluster = 4", 600),  # 714 rows, under the cutoff: exact plan
    ],
)
async def test_search_pages_are_slices_of_one_order(
    make_client: Any, data: Data, overrides: dict[str, Any], flt: str | None, deep: int
) -> None:
    async with make_client(**overrides) as client:
        for q in queries(data, 3, seed=2):
            for start in (0, deep):
                one = await ids_of(client, data.name, q, limit=100, offset=start, filter=flt)
                ten = await paged(client, data.name, q, pages=10, size=10, start=start, filter=flt)
                assert len(one) == 100
                assert ten == one


async def test_equal_distances_are_ordered_by_id_in_the_exact_plan(
    client: Client, data: Data, pg_url: str
) -> None:
    q = data.vectors[99].tolist()
    got = await ids_of(client, data.name, q, limit=40)
    assert got == exact_ids(pg_url, data.name, q)[:40]
    twins = {data.ids[i] for i in (99, *DUPLICATES)}
    assert sorted(got[:21]) == got[:21] and set(got[:21]) == twins


async def test_search_returns_what_is_asked_for(client: Client, data: Data) -> None:
    q = data.vectors[5].tolist()
    r = await search(client, data.name, q, limit=3, offset=2)
    body = r.json()
    assert body["offset"] == 2 and body["limit"] == 3
    assert set(body["results"][0]) == {"id", "score", "distance"}
    r = await search(client, data.name, q, limit=1, include_vectors=True, include_metadata=True)
    top = r.json()["results"][0]
    assert top["id"] == data.ids[5] and top["metadata"]["n"] == 5
    assert np.allclose(top["vector"], data.vectors[5], atol=1e-6)
    assert 0.99 < top["score"] <= 1.0


# --- listing -----------------------------------------------------------------------------------
async def list_objects(client: Client, name: str, **params: Any) -> Any:
    r = await client.get(f"/v1/collections/{name}/objects", params=params)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("flt", [None, "cluster = 2"])
async def test_listing_pages_are_slices_of_the_id_order(
    client: Client, data: Data, flt: str | None
) -> None:
    extra = {"filter": flt} if flt else {}
    one = await list_objects(client, data.name, limit=100, offset=300, **extra)
    ten: list[str] = []
    for p in range(10):
        page = await list_objects(client, data.name, limit=10, offset=300 + 10 * p, **extra)
        ten += [o["id"] for o in page["objects"]]
    ids = [o["id"] for o in one["objects"]]
    assert ten == ids == sorted(ids)
    assert len(ids) == 100
    assert one["next"] == ids[-1]
    assert one["objects"][0]["metadata"]["n"] == int(ids[0][1:])  # metadata included by default
    assert "vector" not in one["objects"][0]


async def test_keyset_listing_reaches_everything_once_past_the_cap(
    make_client: Any, data: Data
) -> None:
    async with make_client(query_maximum_results=1000) as client:
        for flt, expected in ((None, data.ids), ("tag = 'rare'", data.rare)):
            extra = {"filter": flt} if flt else {}
            body = await list_objects(client, data.name, limit=700, include_vectors="true", **extra)
            seen = [o["id"] for o in body["objects"]]
            while body["next_link"] is not None:
                assert body["next"] == seen[-1]
                r = await client.get(body["next_link"])  # the link, as it is
                assert r.status_code == 200, r.text
                body = r.json()
                assert all("vector" in o for o in body["objects"])  # flags carried over
                seen += [o["id"] for o in body["objects"]]
            assert body["next"] is None
            assert seen == sorted(expected)
        # The other namespace, by after= by hand.
        page = await list_objects(client, data.name, namespace="other", limit=30)
        rest = await list_objects(
            client, data.name, namespace="other", after=page["next"], limit=30
        )
        both = [o["id"] for o in page["objects"] + rest["objects"]]
        assert len(rest["objects"]) == 20 and rest["next"] is None
        assert both == sorted(data.other)


# --- the cap and bad input ---------------------------------------------------------------------
async def test_offset_plus_limit_is_capped(make_client: Any, data: Data) -> None:
    q = data.vectors[0].tolist()
    async with make_client(query_maximum_results=100) as client:
        assert len(await ids_of(client, data.name, q, limit=10, offset=90)) == 10
        for body in ({"limit": 10, "offset": 95}, {"limit": 101}):
            r = await search(client, data.name, q, **body)
            assert r.status_code == 422, r.text
            error = r.json()["error"]
            assert error["code"] == "query_maximum_results_exceeded"
            assert "PGPAGER_QUERY_MAXIMUM_RESULTS" in error["message"]
            assert f"/v1/collections/{data.name}/resumable-queries" in error["message"]
            assert "/v1/queries" in error["message"]
            assert error["detail"]["maximum"] == 100
        r = await client.get(
            f"/v1/collections/{data.name}/objects", params={"limit": 20, "offset": 90}
        )
        assert r.status_code == 422
        message = r.json()["error"]["message"]
        assert "PGPAGER_QUERY_MAXIMUM_RESULTS" in message and "after=" in message


@pytest.mark.parametrize(
    ("body", "code", "needle"),
    [
        ({"offset": -1}, "invalid_request", "offset"),
        ({"limit": 0}, "invalid_request", "limit"),
        ({"vector": [0.1, 0.2]}, "invalid_request", "dimensions"),
        ({"vector": [1e39] * DIM}, "invalid_request", "finite"),
        ({"filter": "tag = = 'x'"}, "invalid_filter", ""),
        ({"filter": "tag = 'x' AND"}, "invalid_filter", ""),
        ({"top_k": 5}, "invalid_request", "top_k"),
    ],
)
async def test_bad_search_input(
    client: Client, data: Data, body: dict[str, Any], code: str, needle: str
) -> None:
    r = await client.post(
        f"/v1/collections/{data.name}/search", json={"vector": [0.0] * DIM, **body}
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == code
    assert needle in error["message"]


@pytest.mark.parametrize(
    "params",
    [
        {"offset": -1},
        {"limit": 0},
        {"limit": "ten"},
        {"filter": "cluster >"},
        {"after": "v1", "offset": 10},
    ],
)
async def test_bad_listing_input(client: Client, data: Data, params: dict[str, Any]) -> None:
    r = await client.get(f"/v1/collections/{data.name}/objects", params=params)
    assert r.status_code == 422, r.text


async def test_unknown_collection(client: Client) -> None:
    r = await search(client, "no_such_collection", [0.0])
    assert r.status_code == 404
    r = await client.get("/v1/collections/no_such_collection/objects")
    assert r.status_code == 404


# --- order: the re-sorting window over the relaxed stream ----------------------------------------
def strict_stream_ids(pg_url: str, name: str, vector: Any, n: int) -> list[str]:
    """The first ``n`` rows of pgvector's strict-order stream at the same ef_search: what offset
    pages served before the window."""
    with psycopg.connect(pg_url) as conn:
        register_vector(conn)
        conn.execute("SET hnsw.iterative_scan = strict_order")
        conn.execute(f"SET hnsw.ef_search = {HNSW['hnsw_ef_search']}")
        conn.execute("SET hnsw.max_scan_tuples = 100000")
        conn.execute("SET enable_sort = off")
        rows = conn.execute(
            f"SELECT id FROM pgpager_data.\"{name}\" WHERE namespace = '' "
            "ORDER BY embedding <=> %s LIMIT %s",
            [np.asarray(vector, dtype=np.float32), n],
        ).fetchall()
    return [r[0] for r in rows]


async def test_search_order_recovers_the_rows_strict_order_drops(
    make_client: Any, data: Data, pg_url: str
) -> None:
    """Strict order drops every row the HNSW walk finds after a farther one (it reappears only in
    the exact tail); pages read the relaxed stream through a window that puts such rows back."""
    depth = 500
    ours, strict = [], []
    async with make_client(**HNSW) as client:
        for q in queries(data, 8, seed=5):
            truth = set(exact_ids(pg_url, data.name, q)[:depth])
            got = await paged(client, data.name, q, pages=5, size=100)
            ours.append(len(truth.intersection(got)) / depth)
            strict.append(
                len(truth.intersection(strict_stream_ids(pg_url, data.name, q, depth))) / depth
            )
    print(f"recall@{depth}: window {np.mean(ours):.3f}, strict order {np.mean(strict):.3f}")
    assert np.mean(ours) > np.mean(strict) + 0.02, (ours, strict)


async def test_a_stored_vector_search_holds_the_sequence_offset_pages_slice(
    make_client: Any, data: Data
) -> None:
    """A stored vector search reads the same stream through the same window: its rows are the
    offset pages laid end to end, nearest first."""
    async with make_client(**HNSW) as client:
        for q in queries(data, 3, seed=6):
            r = await client.post(
                "/v1/queries",
                json={
                    "vector_search": {"collection": data.name, "vector": q, "limit": 500},
                    "max_initial_results": 500,
                },
            )
            assert r.status_code == 200, r.text
            hits = r.json()["results"]
            assert [h["id"] for h in hits] == await paged(client, data.name, q, pages=5, size=100)
            distances = [h["distance"] for h in hits]
            assert all(a <= b + 1e-6 for a, b in itertools.pairwise(distances))


async def test_only_a_selection_that_may_be_small_is_counted(
    client: AsyncTestClient[Any], collection: str
) -> None:
    """Whether few enough rows match for an exact scan is counted (reading up to cutoff + 1
    rows, 0.7 ms at the default cutoff) only where the selection may be small: a filter, another
    namespace, or a table the planner estimates at no more than the cutoff. The default
    namespace of a table it estimates bigger is not counted: the table is not read at all (here
    it is locked, so a count would wait and give up)."""
    vectors = [{"id": str(i), "vector": [1.0, i, 0.5], "metadata": {"a": i}} for i in range(30)]
    r = await client.post(f"/v1/collections/{collection}/vectors", json={"vectors": vectors})
    assert r.status_code == 200, r.text
    url = client.app.state.runtime.database_url
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        c = await collection_store.get(conn, collection)
        await conn.execute(f"ANALYZE {c.qualified}")
        everything = compile_filter(None)
        assert await pages.few_matching(conn, c, "", everything, 100)
        assert not await pages.few_matching(conn, c, "", everything, 10)
        assert await pages.few_matching(conn, c, "", compile_filter("a < 5"), 10)
        async with await psycopg.AsyncConnection.connect(url) as locker:
            await locker.execute(f"LOCK TABLE {c.qualified} IN ACCESS EXCLUSIVE MODE")
            await conn.execute("SET lock_timeout = '200ms'")
            # Estimated at 30 rows, more than 10: not counted, so the lock is no obstacle.
            assert not await pages.few_matching(conn, c, "", everything, 10)
            for namespace, where, cutoff in (
                ("", compile_filter("a < 5"), 10),  # a filter
                ("other", everything, 10),  # another namespace
                ("", everything, 100),  # a table estimated at no more than the cutoff
            ):
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    await pages.few_matching(conn, c, namespace, where, cutoff)
