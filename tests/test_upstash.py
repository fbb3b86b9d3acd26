"""The Upstash-compatible API, driven by the unmodified ``upstash-vector`` SDK against a real
server on a socket."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from upstash_vector import AsyncIndex, Index, Vector
from upstash_vector.errors import UpstashError
from upstash_vector.types import MetadataUpdateMode

from tests.conftest import ServerProcess


@pytest.fixture(scope="module")
def server(pg_url: str) -> Iterator[ServerProcess]:
    """One server for the tests that need no special settings."""
    s = ServerProcess(pg_url)
    s.start()
    yield s
    s.stop()


def create_collection(
    server: ServerProcess, dim: int = 3, metric: str = "cosine", token: str | None = None
) -> str:
    name = "u_" + secrets.token_hex(6)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.post(
        server.url + "/v1/collections",
        json={"name": name, "dimension": dim, "metric": metric},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    return name


def index_for(server: ServerProcess, name: str, token: str = "no-keys-configured") -> Index:
    return Index(url=f"{server.url}/upstash/{name}", token=token, retries=0)


@pytest.fixture
def index(server: ServerProcess) -> Index:
    """A fresh 3-d cosine collection, seen through the SDK."""
    return index_for(server, create_collection(server))


def ids(results: list[Any]) -> list[str]:
    return [r.id for r in results]


def test_upsert_every_form_and_fetch(index: Index) -> None:
    assert (
        index.upsert(
            [
                ("t1", [1.0, 0.0, 0.0], {"kind": "tuple"}, "text one"),
                ("t2", [0.0, 1.0, 0.0]),
            ]
        )
        == "Success"
    )
    index.upsert(
        [
            {"id": "d1", "vector": [0.0, 0.0, 1.0], "metadata": {"kind": "dict"}},
            {"id": "d2", "vector": [1.0, 1.0, 0.0], "data": "dict data"},
        ]
    )
    index.upsert([Vector(id="v1", vector=[1.0, 0.0, 1.0], metadata={"n": 1}, data="vec")])
    index.upsert([Vector(id=7, vector=[0.5, 0.5, 0.5])])  # integer ids become text

    got = index.fetch(["t1", "d2", "v1", "7", "missing"], include_metadata=True, include_data=True)
    assert got[4] is None
    t1, d2, v1, seven = got[:4]
    assert t1 is not None and t1.metadata == {"kind": "tuple"} and t1.data == "text one"
    assert t1.vector is None, "vectors only when asked"
    assert d2 is not None and d2.data == "dict data" and d2.metadata is None
    assert v1 is not None and v1.metadata == {"n": 1} and v1.data == "vec"
    assert seven is not None and seven.id == "7"

    only_vectors = index.fetch("t2", include_vectors=True)
    assert only_vectors[0] is not None
    assert only_vectors[0].vector == [0.0, 1.0, 0.0] and only_vectors[0].metadata is None

    by_prefix = index.fetch(prefix="d", include_metadata=True)
    assert [v.id for v in by_prefix if v] == ["d1", "d2"]

    # Upsert replaces the whole record, as in Upstash.
    index.upsert([("t1", [1.0, 0.0, 0.0])])
    again = index.fetch("t1", include_metadata=True, include_data=True)[0]
    assert again is not None and again.metadata is None and again.data is None


def test_query_with_filter_and_include_flags(index: Index) -> None:
    index.upsert(
        [
            ("a", [1.0, 0.0, 0.0], {"n": 1, "tag": "x"}, "A"),
            ("b", [1.0, 0.1, 0.0], {"n": 2, "tag": "y"}, "B"),
            ("c", [0.0, 1.0, 0.0], {"n": 3, "tag": "x"}, "C"),
            ("d", [-1.0, 0.0, 0.0], {"n": 4, "tag": "y"}, "D"),
        ]
    )
    plain = index.query(vector=[1.0, 0.0, 0.0], top_k=3)
    assert ids(plain) == ["a", "b", "c"]
    assert plain[0].score == pytest.approx(1.0)
    assert plain[2].score == pytest.approx(0.5)  # orthogonal: cosine score 1 - d/2
    assert all(r.metadata is None and r.vector is None and r.data is None for r in plain)
    assert all(0.0 <= r.score <= 1.0 for r in plain)

    full = index.query(
        vector=[1.0, 0.0, 0.0],
        top_k=1,
        include_vectors=True,
        include_metadata=True,
        include_data=True,
    )
    assert full[0].vector == [1.0, 0.0, 0.0]
    assert full[0].metadata == {"n": 1, "tag": "x"} and full[0].data == "A"

    filtered = index.query(vector=[1.0, 0.0, 0.0], top_k=10, filter="tag = 'y' AND n > 1")
    assert ids(filtered) == ["b", "d"]

    many = index.query_many(
        queries=[
            {"vector": [0.0, 1.0, 0.0], "top_k": 1},
            {"vector": [-1.0, 0.0, 0.0], "top_k": 2, "include_metadata": True},
        ]
    )
    assert ids(many[0]) == ["c"]
    assert ids(many[1])[0] == "d" and many[1][0].metadata == {"n": 4, "tag": "y"}

    with pytest.raises(UpstashError, match="position"):
        index.query(vector=[1.0, 0.0, 0.0], filter="tag = = 'x'")
    with pytest.raises(UpstashError, match="3"):
        index.query(vector=[1.0, 0.0])


def test_namespaces_are_separate(index: Index) -> None:
    index.upsert([("same", [1.0, 0.0, 0.0], {"where": "default"})])
    index.upsert([("same", [0.0, 1.0, 0.0], {"where": "ns"})], namespace="ns-1")
    hits = index.query(vector=[0.0, 1.0, 0.0], top_k=5, include_metadata=True, namespace="ns-1")
    assert [(h.id, h.metadata) for h in hits] == [("same", {"where": "ns"})]
    fetched = index.fetch("same", include_metadata=True)[0]
    assert fetched is not None and fetched.metadata == {"where": "default"}
    assert sorted(index.list_namespaces()) == ["", "ns-1"]

    info = index.info()
    assert info.vector_count == 2 and info.pending_vector_count == 0
    assert info.dimension == 3 and info.similarity_function == "COSINE"
    assert info.index_size > 0
    assert {ns: i.vector_count for ns, i in info.namespaces.items()} == {"": 1, "ns-1": 1}

    index.delete_namespace("ns-1")
    assert index.list_namespaces() == [""]
    with pytest.raises(UpstashError, match="does not exist"):
        index.delete_namespace("ns-1")
    with pytest.raises(UpstashError, match="default namespace"):
        index.delete_namespace("")


def test_similarity_functions(server: ServerProcess) -> None:
    for metric, name in (("euclidean", "EUCLIDEAN"), ("dot_product", "DOT_PRODUCT")):
        idx = index_for(server, create_collection(server, metric=metric))
        idx.upsert([("a", [1.0, 0.0, 0.0]), ("b", [0.0, 1.0, 0.0])])
        assert idx.info().similarity_function == name
        hits = idx.query(vector=[1.0, 0.0, 0.0], top_k=2)
        assert ids(hits) == ["a", "b"]
        assert hits[0].score > hits[1].score and all(0 <= h.score <= 1 for h in hits)
    euclid = index_for(server, create_collection(server, metric="euclidean"))
    euclid.upsert([("a", [1.0, 0.0, 0.0])])
    assert euclid.query(vector=[1.0, 0.0, 0.0], top_k=1)[0].score == pytest.approx(1.0)


def test_range_pages_to_the_end(index: Index) -> None:
    # "0" is the start cursor some Upstash clients send; the row with that id must not be lost.
    all_ids = ["0"] + [f"item-{i:02d}" for i in range(24)] + ["other-1", "other-2"]
    index.upsert([(i, [1.0, float(n), 0.0], {"n": n}) for n, i in enumerate(all_ids)])

    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        page = index.range(cursor=cursor, limit=4, include_metadata=True)
        pages += 1
        seen.extend(v.id for v in page.vectors)
        assert all(v.metadata is not None and v.vector is None for v in page.vectors)
        if page.next_cursor == "":
            break
        assert len(page.vectors) == 4
        cursor = page.next_cursor
    assert seen == sorted(all_ids)
    assert pages == 7  # 27 rows / 4 per page

    first = index.range(cursor="0", limit=1)
    assert [v.id for v in first.vectors] == ["0"], "cursor '0' means the start"

    prefixed: list[str] = []
    cursor = ""
    while True:
        page = index.range(cursor=cursor, limit=10, prefix="item-", include_vectors=True)
        prefixed.extend(v.id for v in page.vectors)
        assert all(v.vector is not None and len(v.vector) == 3 for v in page.vectors)
        cursor = page.next_cursor
        if not cursor:
            break
    assert prefixed == [f"item-{i:02d}" for i in range(24)]

    assert index.range(cursor="", limit=1000, namespace="empty").vectors == []
    with pytest.raises(UpstashError, match="cursor"):
        index.range(cursor="not-a-cursor!", limit=2)
    with pytest.raises(UpstashError, match="limit"):
        index.range(limit=100_000)


def test_delete_by_ids_prefix_and_filter(index: Index) -> None:
    index.upsert(
        [(f"p-{i}", [1.0, float(i), 0.0], {"n": i}) for i in range(5)]
        + [(f"q-{i}", [0.0, 1.0, float(i)], {"n": i}) for i in range(5)]
    )
    assert index.delete("p-0").deleted == 1
    assert index.delete(["p-1", "p-2", "nope"]).deleted == 2
    assert index.delete(prefix="p-").deleted == 2
    assert index.delete(filter="n >= 3").deleted == 2
    assert index.info().vector_count == 3
    with pytest.raises(UpstashError, match="exactly one"):
        index.delete(ids=["q-0"], prefix="q-")


def test_update_overwrite_and_patch(index: Index) -> None:
    index.upsert([("u", [1.0, 0.0, 0.0], {"a": 1, "b": {"c": 2, "d": 3}}, "old")])
    assert index.update(
        "u",
        metadata={"b": {"c": None, "e": 4}, "f": 5},
        metadata_update_mode=MetadataUpdateMode.PATCH,
    )
    got = index.fetch("u", include_metadata=True, include_data=True)[0]
    assert got is not None
    assert got.metadata == {"a": 1, "b": {"d": 3, "e": 4}, "f": 5} and got.data == "old"

    assert index.update("u", vector=[0.0, 0.0, 1.0], data="new")
    got = index.fetch("u", include_vectors=True, include_metadata=True, include_data=True)[0]
    assert got is not None and got.vector == [0.0, 0.0, 1.0] and got.data == "new"
    assert got.metadata == {"a": 1, "b": {"d": 3, "e": 4}, "f": 5}, "metadata untouched"

    assert index.update("u", metadata={"only": True})
    got = index.fetch("u", include_metadata=True)[0]
    assert got is not None and got.metadata == {"only": True}

    assert index.update("missing", metadata={"x": 1}) is False


MAX_METADATA = 49_152
MAX_DATA = 1_048_576


def metadata_of_size(n: int) -> dict[str, str]:
    """Metadata whose JSON encoding is exactly ``n`` bytes ({"k":"..."} is 8 of them)."""
    return {"k": "x" * (n - 8)}


def test_upstash_size_limits_by_default(index: Index) -> None:
    """Upstash's limits, pgpager's defaults: 48 KB of metadata and 1 MB of data per vector, on
    upsert and update (overwrite, and the result of a patch); the SDK raises with the message."""
    index.upsert(
        [
            ("full", [1.0, 0.0, 0.0], metadata_of_size(MAX_METADATA), "é" * (MAX_DATA // 2)),
            ("small", [0.0, 1.0, 0.0], {"a": "b"}, "short"),
        ]
    )
    got = index.fetch(["full"], include_metadata=True, include_data=True)[0]
    assert got is not None and got.metadata == metadata_of_size(MAX_METADATA)
    assert got.data == "é" * (MAX_DATA // 2)

    def refused(call: Callable[[], Any], size: int, what: str) -> None:
        with pytest.raises(UpstashError) as info:
            call()
        setting, limit = ("METADATA", MAX_METADATA) if what == "metadata" else ("DATA", MAX_DATA)
        unit = "JSON" if what == "metadata" else "UTF-8"
        assert f"{what} is {size:,} bytes as {unit}; the limit is {limit:,} bytes" in str(
            info.value
        ) and f"(PGPAGER_MAX_{setting}_BYTES)" in str(info.value), str(info.value)

    big_meta = metadata_of_size(MAX_METADATA + 1)
    refused(
        lambda: index.upsert([("big", [1.0, 0.0, 0.0], big_meta)]), MAX_METADATA + 1, "metadata"
    )
    big_text = "x" * (MAX_DATA + 1)
    refused(lambda: index.upsert([("big", [1.0, 0.0, 0.0], None, big_text)]), MAX_DATA + 1, "data")
    refused(lambda: index.update("small", metadata=big_meta), MAX_METADATA + 1, "metadata")
    refused(lambda: index.update("small", data=big_text), MAX_DATA + 1, "data")
    # A patch within the limit whose result is not: {"a":"b","k":"..."} is 16 bytes and k's.
    patch = {"k": "x" * (MAX_METADATA - 16)}
    refused(
        lambda: index.update(
            "small",
            metadata={**patch, "k": patch["k"] + "x"},
            metadata_update_mode=MetadataUpdateMode.PATCH,
        ),
        MAX_METADATA + 1,
        "metadata",
    )
    assert index.fetch(["big"])[0] is None
    got = index.fetch(["small"], include_metadata=True, include_data=True)[0]
    assert got is not None and (got.metadata, got.data) == ({"a": "b"}, "short"), "unchanged"

    assert index.update("small", metadata=patch, metadata_update_mode=MetadataUpdateMode.PATCH)
    got = index.fetch(["small"], include_metadata=True)[0]
    assert got is not None and got.metadata == {"a": "b", **patch}
    assert len(json.dumps(got.metadata, separators=(",", ":")).encode()) == MAX_METADATA


def test_request_size_limit_by_default(index: Index) -> None:
    """Bodies over 10 MB (PGPAGER_MAX_REQUEST_BYTES) are refused before they are read."""
    batch = [(f"b{i}", [1.0, 0.0, 0.0], None, "x" * 1_000_000) for i in range(11)]
    with pytest.raises(UpstashError, match=r"larger than 10,000,000 bytes.*MAX_REQUEST_BYTES"):
        index.upsert(batch)
    assert index.info().vector_count == 0


def test_reset_one_namespace_or_all(index: Index) -> None:
    index.upsert([("a", [1.0, 0.0, 0.0])])
    index.upsert([("a", [1.0, 0.0, 0.0])], namespace="keep")
    index.upsert([("a", [1.0, 0.0, 0.0])], namespace="drop")
    assert index.reset(namespace="drop") == "Success"
    assert index.fetch("a", namespace="drop") == [None]
    assert index.fetch("a", namespace="keep")[0] is not None
    index.reset()
    assert index.fetch("a") == [None]
    assert index.fetch("a", namespace="keep")[0] is not None
    index.reset(all=True)
    assert index.info().vector_count == 0


def test_resumable_query_delivers_every_vector_once(server: ServerProcess, index: Index) -> None:
    n = 60
    index.upsert([(f"r{i}", [1.0, i / n, (i % 7) / 7], {"i": i}) for i in range(n)])
    first, handle = index.resumable_query(
        vector=[1.0, 0.0, 0.0], top_k=5, include_metadata=True, max_idle=120
    )
    assert len(first) == 5 and all(r.metadata is not None for r in first)
    assert [r.score for r in first] == sorted((r.score for r in first), reverse=True)

    # max_idle reached the handle: the native status endpoint shows it.
    status = httpx.get(f"{server.url}/v1/resumable-queries/{handle._uid}").json()
    assert status["max_idle"] == 120 and status["state"] == "active"

    delivered = ids(first)
    while True:
        batch = handle.fetch_next(7)
        if not batch:
            break
        assert all(r.metadata is not None for r in batch), "include flags hold for the handle"
        delivered.extend(ids(batch))
    assert len(delivered) == n and set(delivered) == {f"r{i}" for i in range(n)}
    assert handle.fetch_next(3) == [], "an exhausted handle keeps answering with nothing"
    handle.stop()


def session_row(pg_url: str, handle: str) -> tuple[Any, ...]:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT state, state_reason, position FROM pgpager.query_sessions WHERE id = %s",
            [handle],
        ).fetchone()
    assert row is not None
    return tuple(row)


def stopped_error(call: Callable[[], Any]) -> str:
    with pytest.raises(UpstashError) as info:
        call()
    return str(info.value)


def test_stop_frees_the_handle_whether_exhausted_or_not(
    server: ServerProcess, index: Index, pg_url: str
) -> None:
    """As in Upstash, a stop frees the handle: every later next fails, and the same way, whether
    the handle had delivered every row or not. Stopping twice fails too (the SDK's own tests
    against Upstash expect an UpstashError from a second stop)."""
    index.upsert([(f"s{i}", [1.0, i / 10, 0.0]) for i in range(6)])

    _, exhausted = index.resumable_query(vector=[1.0, 0.0, 0.0], top_k=4)
    assert len(exhausted.fetch_next(10)) == 2 and exhausted.fetch_next(1) == []
    exhausted.stop()
    after_exhaustion = stopped_error(lambda: exhausted.fetch_next(1))

    _, active = index.resumable_query(vector=[1.0, 0.0, 0.0], top_k=4)
    active.stop()
    after_active = stopped_error(lambda: active.fetch_next(1))

    assert after_exhaustion == after_active == "this handle is stopped: stopped by the client"
    assert stopped_error(exhausted.stop) == stopped_error(active.stop) == after_active
    for handle, position in ((exhausted, 6), (active, 4)):
        status = httpx.get(f"{server.url}/v1/resumable-queries/{handle._uid}").json()
        assert (status["state"], status["state_reason"], status["position"]) == (
            "stopped",
            "stopped by the client",
            position,
        ), "an exhausted handle keeps its position when stopped"
        assert session_row(pg_url, handle._uid) == ("stopped", "stopped by the client", position)


def test_with_block_stops_an_exhausted_handle(index: Index) -> None:
    index.upsert([(f"w{i}", [1.0, i / 10, 0.0]) for i in range(4)])
    _, handle = index.resumable_query(vector=[1.0, 0.0, 0.0], top_k=2)
    with handle:
        assert ids(handle.fetch_next(5)) == ["w2", "w3"]
        assert handle.fetch_next(5) == []
    with pytest.raises(UpstashError, match="stopped by the client"):
        handle.fetch_next(1)

    # The SDK's __exit__ stops the handle again after an explicit stop in the block; Upstash
    # answers that second stop with an error, and so does pgpager.
    _, handle = index.resumable_query(vector=[1.0, 0.0, 0.0], top_k=2)
    with pytest.raises(UpstashError, match="this handle is stopped"), handle:
        handle.stop()


async def test_async_handle_stopped_after_exhaustion(server: ServerProcess) -> None:
    name = create_collection(server)
    aindex = AsyncIndex(url=f"{server.url}/upstash/{name}", token="unused", retries=0)
    await aindex.upsert([(f"a{i}", [1.0, float(i), 0.0]) for i in range(3)])
    _, handle = await aindex.resumable_query(vector=[1.0, 0.0, 0.0], top_k=3)
    async with handle:
        assert await handle.fetch_next(2) == []
    with pytest.raises(UpstashError, match="this handle is stopped: stopped by the client"):
        await handle.fetch_next(1)


def test_resumable_query_in_a_namespace_with_a_filter(index: Index) -> None:
    index.upsert([(f"x{i}", [1.0, i / 10, 0.0], {"even": i % 2 == 0}) for i in range(10)])
    index.upsert([("elsewhere", [1.0, 0.0, 0.0], {"even": True})], namespace="other")
    first, handle = index.resumable_query(
        vector=[1.0, 0.0, 0.0], top_k=2, filter="even = true", namespace=""
    )
    rest = handle.fetch_next(100)
    assert ids(first) + ids(rest) == ["x0", "x2", "x4", "x6", "x8"]
    handle.stop()

    first, handle = index.resumable_query(vector=[1.0, 0.0, 0.0], top_k=5, namespace="other")
    assert ids(first) == ["elsewhere"]
    handle.stop()


def test_resumable_handle_as_context_manager(index: Index) -> None:
    index.upsert([(f"c{i}", [1.0, float(i), 0.0]) for i in range(10)])
    # The SDK returns (results, handle); the handle is the context manager and stops on exit.
    result, handle = index.resumable_query(vector=[1.0, 0.0, 0.0], top_k=3)
    with handle:
        more = handle.fetch_next(3)
    assert ids(result) == ["c0", "c1", "c2"] and ids(more) == ["c3", "c4", "c5"]
    with pytest.raises(UpstashError, match="stopped"):
        handle.fetch_next(1)


async def test_async_index(server: ServerProcess) -> None:
    name = create_collection(server)
    aindex = AsyncIndex(url=f"{server.url}/upstash/{name}", token="unused", retries=0)
    await aindex.upsert([(f"a{i}", [1.0, float(i), 0.0], {"i": i}) for i in range(8)])
    hits = await aindex.query(vector=[1.0, 0.0, 0.0], top_k=2, include_metadata=True)
    assert ids(hits) == ["a0", "a1"] and hits[0].metadata == {"i": 0}

    result, handle = await aindex.resumable_query(vector=[1.0, 0.0, 0.0], top_k=3)
    async with handle:
        rest = await handle.fetch_next(2)
    assert ids(result) + ids(rest) == [f"a{i}" for i in range(5)]
    with pytest.raises(UpstashError, match="stopped"):
        await handle.fetch_next(1)


def test_errors_use_the_upstash_envelope(server: ServerProcess, index: Index) -> None:
    r = httpx.post(f"{server.url}/upstash/no_such_collection/query", json={"vector": [1, 0, 0]})
    assert r.status_code == 404
    assert r.json() == {"error": "collection 'no_such_collection' does not exist", "status": 404}

    base = index._url
    r = httpx.post(base + "/resumable-query-next", json={"uuid": "nope", "additionalK": 1})
    assert r.status_code == 404 and "nope" in r.json()["error"] and r.json()["status"] == 404

    r = httpx.post(base + "/no-such-operation", json={})
    assert r.status_code == 404 and "no-such-operation" in r.json()["error"]

    r = httpx.post(base + "/query", content=b"{not json")
    assert r.status_code == 400 and isinstance(r.json()["error"], str)

    r = httpx.post(base + "/query", json={"vector": [1, 0, 0], "topK": "ten"})
    assert r.status_code == 422 and "topK" in r.json()["error"]

    with pytest.raises(UpstashError, match="the collection has 3"):
        index.upsert([("bad", [1.0, 0.0])])
    with pytest.raises(UpstashError, match="embedding model"):
        index.upsert([("text", "some text to embed")])
    with pytest.raises(UpstashError, match="embedding model"):
        index.query(data="some text")
    with pytest.raises(UpstashError, match="embedding model"):
        index.resumable_query(data="some text")
    with pytest.raises(UpstashError, match="sparse"):
        index.query(sparse_vector=([1, 2], [0.5, 0.5]))
    with pytest.raises(UpstashError, match="top_k"):
        index.resumable_query(vector=[1.0, 0.0, 0.0], top_k=0)


def test_api_keys_ownership_and_handle_cap(
    fresh_db_url: str, server_factory: Callable[..., ServerProcess]
) -> None:
    # A database of its own: the handle cap counts every active handle in the database.
    s = server_factory(
        fresh_db_url,
        PGPAGER_API_KEYS="sdk-token-123:read+write,other-token-456:read",
        PGPAGER_MAX_ACTIVE_HANDLES="1",
    )
    s.start()
    name = create_collection(s, token="sdk-token-123")
    index = index_for(s, name, token="sdk-token-123")
    index.upsert([(f"k{i}", [1.0, float(i), 0.0]) for i in range(5)])
    assert ids(index.query(vector=[1.0, 0.0, 0.0], top_k=1)) == ["k0"]

    with pytest.raises(UpstashError, match="unknown API key"):
        index_for(s, name, token="wrong-token-000").query(vector=[1.0, 0.0, 0.0])
    r = httpx.post(f"{s.url}/upstash/{name}/info")
    assert r.status_code == 401 and r.json()["status"] == 401

    reader = index_for(s, name, token="other-token-456")
    with pytest.raises(UpstashError, match="write"):
        reader.upsert([("r", [1.0, 0.0, 0.0])])
    assert reader.info().vector_count == 5

    result, handle = index.resumable_query(vector=[1.0, 0.0, 0.0], top_k=1)
    assert ids(result) == ["k0"]
    # Another key cannot see the handle at all.
    other_handle = type(handle)(reader._execute_request, handle._uid)
    with pytest.raises(UpstashError, match="no resumable query"):
        other_handle.fetch_next(1)
    with pytest.raises(UpstashError, match="no resumable query"):
        other_handle.stop()

    # The server-wide cap is 1: a second handle is refused with the Upstash envelope (429).
    r = httpx.post(
        f"{s.url}/upstash/{name}/resumable-query",
        json={"vector": [1, 0, 0], "topK": 1},
        headers={"Authorization": "Bearer other-token-456"},
    )
    assert r.status_code == 429 and r.json()["status"] == 429
    assert "PGPAGER_MAX_ACTIVE_HANDLES" in r.json()["error"]

    assert ids(handle.fetch_next(2)) == ["k1", "k2"]
    handle.stop()


def test_openapi_lists_the_upstash_surface(server: ServerProcess) -> None:
    r = httpx.get(server.url + "/docs/openapi.json")
    assert r.status_code == 200, r.text
    paths = r.json()["paths"]
    assert "/upstash/{collection}/resumable-query-next" in paths
    assert "/upstash/{collection}/query/{namespace}" in paths
