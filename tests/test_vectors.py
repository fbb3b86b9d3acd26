"""Vectors over HTTP: upsert, fetch, get, delete; batches are all-or-nothing."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

Client = AsyncTestClient[Any]


async def upsert(client: Client, name: str, vectors: list[dict[str, Any]], **extra: Any) -> Any:
    return await client.post(f"/v1/collections/{name}/vectors", json={"vectors": vectors, **extra})


async def count(client: Client, name: str) -> int:
    return int((await client.get(f"/v1/collections/{name}")).json()["vector_count"])


async def test_upsert_fetch_get(client: Client, collection: str) -> None:
    r = await upsert(
        client,
        collection,
        [
            {"id": "a", "vector": [1, 0, 0], "metadata": {"genre": "drama"}, "data": "hello"},
            {"id": "b", "vector": [0, 1, 0.5]},
        ],
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"upserted": 2}

    r = await client.post(
        f"/v1/collections/{collection}/vectors/fetch", json={"ids": ["b", "zz", "a"]}
    )
    got = r.json()["vectors"]
    assert got[0] == {"id": "b", "vector": [0.0, 1.0, 0.5]}
    assert got[1] is None
    assert got[2] == {
        "id": "a",
        "vector": [1.0, 0.0, 0.0],
        "metadata": {"genre": "drama"},
        "data": "hello",
    }

    r = await client.get(f"/v1/collections/{collection}/vectors/a")
    assert r.json()["metadata"] == {"genre": "drama"}
    r = await client.get(f"/v1/collections/{collection}/vectors/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "vector_not_found"

    # Upsert overwrites.
    await upsert(client, collection, [{"id": "a", "vector": [0, 0, 1], "metadata": {"v": 2}}])
    r = await client.get(f"/v1/collections/{collection}/vectors/a")
    assert r.json() == {"id": "a", "vector": [0.0, 0.0, 1.0], "metadata": {"v": 2}}
    assert await count(client, collection) == 2


async def test_namespaces_are_separate(client: Client, collection: str) -> None:
    await upsert(client, collection, [{"id": "x", "vector": [1, 0, 0]}], namespace="one")
    await upsert(client, collection, [{"id": "x", "vector": [0, 1, 0]}], namespace="two")
    one = await client.get(f"/v1/collections/{collection}/vectors/x", params={"namespace": "one"})
    two = await client.get(f"/v1/collections/{collection}/vectors/x", params={"namespace": "two"})
    assert one.json()["vector"] == [1.0, 0.0, 0.0]
    assert two.json()["vector"] == [0.0, 1.0, 0.0]
    assert (await client.get(f"/v1/collections/{collection}/vectors/x")).status_code == 404


@pytest.mark.parametrize(
    ("vectors", "needle"),
    [
        ([{"id": "ok", "vector": [1, 2, 3]}, {"id": "bad", "vector": [1, 2]}], "vectors[1]"),
        ([{"id": "ok", "vector": [1, 2, 3]}, {"id": "bad", "vector": [1, "x", 3]}], "vectors[1]"),
        ([{"id": "ok", "vector": [1, 2, 3]}, {"id": "", "vector": [1, 2, 3]}], "vectors[1]"),
        ([{"id": "ok", "vector": [1, 2, 3]}, {"id": "big", "vector": [1e39, 0, 0]}], "vectors[1]"),
        (
            [{"id": "ok", "vector": [1, 2, 3]}, {"id": "n\u0000ul", "vector": [1, 2, 3]}],
            "vectors[1]",
        ),
        (
            [{"id": "ok", "vector": [1, 2, 3]}, {"id": "m", "vector": [1, 2, 3], "metadata": [1]}],
            "vectors[1]",
        ),
        ([{"id": "ok", "vector": [1, 2, 3]}, {"id": "x" * 600, "vector": [1, 2, 3]}], "vectors[1]"),
        ([{"id": "ok", "vector": [1, 2, 3]}, {"vector": [1, 2, 3]}], "vectors[1]"),
        ([], "empty"),
    ],
)
async def test_bad_batch_writes_nothing(
    client: Client, collection: str, vectors: list[dict[str, Any]], needle: str
) -> None:
    r = await upsert(client, collection, vectors)
    assert r.status_code == 422, r.text
    assert needle in r.json()["error"]["message"], r.json()
    assert await count(client, collection) == 0


async def test_nan_and_infinity_are_rejected(client: Client, collection: str) -> None:
    for token in (b"NaN", b"Infinity", b"-Infinity", b"1e999"):
        body = b'{"vectors": [{"id": "a", "vector": [1, 2, ' + token + b"]}]}"
        r = await client.post(
            f"/v1/collections/{collection}/vectors",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert 400 <= r.status_code < 500, (token, r.status_code, r.text)
    assert await count(client, collection) == 0


async def test_oversized_batch_is_422(make_client: Any, collection_name: str) -> None:
    async with make_client(max_batch_size=5) as client:
        await client.post("/v1/collections", json={"name": collection_name, "dimension": 3})
        r = await upsert(
            client, collection_name, [{"id": str(i), "vector": [1, 1, 1]} for i in range(6)]
        )
        assert r.status_code == 422
        assert "PGPAGER_MAX_BATCH_SIZE" in r.json()["error"]["message"]
        assert await count(client, collection_name) == 0


def metadata_of_size(n: int) -> dict[str, str]:
    """Metadata whose JSON encoding is exactly ``n`` bytes: {"k":"..."} is 8 bytes and the
    value's characters (2 bytes of UTF-8 each, one byte where n is odd)."""
    body = n - 8
    return {"k": "é" * (body // 2) + "x" * (body % 2)}


async def test_metadata_and_data_sizes_are_limited(make_client: Any, collection_name: str) -> None:
    """Metadata is measured as the bytes of its JSON, data as bytes of UTF-8: exactly the limit
    is stored (and comes back unchanged), a byte more fails the whole batch with a 422 naming
    the item, the size, the limit and the setting."""
    async with make_client(max_metadata_bytes=100, max_data_bytes=40) as client:
        await client.post("/v1/collections", json={"name": collection_name, "dimension": 3})
        fits = [
            {"id": "m", "vector": [1, 0, 0], "metadata": metadata_of_size(100)},
            {"id": "m-odd", "vector": [1, 0, 0], "metadata": metadata_of_size(99)},
            {"id": "d2", "vector": [1, 0, 0], "data": "é" * 20},
            {"id": "d4", "vector": [1, 0, 0], "data": "😀" * 10},
            {"id": "d1", "vector": [1, 0, 0], "data": "x" * 40},
        ]
        r = await upsert(client, collection_name, fits)
        assert r.status_code == 200, r.text
        r = await client.post(
            f"/v1/collections/{collection_name}/vectors/fetch",
            json={"ids": [v["id"] for v in fits]},
        )
        got = r.json()["vectors"]
        for sent, stored in zip(fits, got, strict=True):
            assert stored["metadata" if "metadata" in sent else "data"] == sent.get(
                "metadata", sent.get("data")
            )

        too_big = [
            ({"metadata": metadata_of_size(101)}, "metadata is 101 bytes as JSON", "METADATA"),
            ({"data": "é" * 21}, "data is 42 bytes as UTF-8", "DATA"),
            ({"data": "😀" * 11}, "data is 44 bytes as UTF-8", "DATA"),
            ({"data": "x" * 41}, "data is 41 bytes as UTF-8", "DATA"),
        ]
        for extra, needle, setting in too_big:
            batch = [{"id": "ok", "vector": [0, 1, 0]}, {"id": "big", "vector": [1, 0, 0], **extra}]
            r = await upsert(client, collection_name, batch)
            assert r.status_code == 422, r.text
            error = r.json()["error"]
            limit = "100" if setting == "METADATA" else "40"
            assert error["message"].startswith(
                f"vectors[1]: {needle}; the limit is {limit} bytes (PGPAGER_MAX_{setting}_BYTES)"
            ), error
            assert error["detail"]["item"] == "vectors[1]"
            assert error["detail"]["limit"] == int(limit)
        assert await count(client, collection_name) == len(fits), "nothing of a refused batch"


async def test_request_body_size_is_limited(make_client: Any, collection_name: str) -> None:
    async with make_client(max_request_bytes=1000) as client:
        await client.post("/v1/collections", json={"name": collection_name, "dimension": 3})
        vectors = [{"id": str(i), "vector": [1, 1, 1], "data": "x" * 100} for i in range(9)]
        r = await upsert(client, collection_name, vectors)
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "request_too_large"
        assert r.json()["error"]["message"] == (
            "the request body is larger than 1,000 bytes, the limit "
            "(PGPAGER_MAX_REQUEST_BYTES): send fewer vectors per request"
        )
        assert (await upsert(client, collection_name, vectors[:5])).status_code == 200


async def test_upsert_into_unknown_collection_is_404(client: Client) -> None:
    r = await upsert(client, "no_such_collection", [{"id": "a", "vector": [1, 2, 3]}])
    assert r.status_code == 404


async def test_delete_by_ids_prefix_and_filter(client: Client, collection: str) -> None:
    await upsert(
        client,
        collection,
        [
            {"id": "doc-1", "vector": [1, 0, 0], "metadata": {"k": 1}},
            {"id": "doc-2", "vector": [1, 0, 0], "metadata": {"k": 2}},
            {"id": "img-1", "vector": [1, 0, 0], "metadata": {"k": 3}},
            {"id": "img-2", "vector": [1, 0, 0], "metadata": {"k": 4}},
        ],
    )
    url = f"/v1/collections/{collection}/vectors/delete"
    assert (await client.post(url, json={"ids": ["doc-1", "missing"]})).json() == {"deleted": 1}
    assert (await client.post(url, json={"prefix": "img-"})).json() == {"deleted": 2}
    assert (await client.post(url, json={"filter": "k >= 2"})).json() == {"deleted": 1}
    assert await count(client, collection) == 0


@pytest.mark.parametrize(
    "body",
    [{}, {"ids": ["a"], "prefix": "a"}, {"prefix": ""}, {"filter": "k >"}, {"ids": []}],
)
async def test_bad_delete_is_422(client: Client, collection: str, body: dict[str, Any]) -> None:
    await upsert(client, collection, [{"id": "a", "vector": [1, 0, 0], "metadata": {"k": 1}}])
    r = await client.post(f"/v1/collections/{collection}/vectors/delete", json=body)
    assert r.status_code == 422, r.text
    assert await count(client, collection) == 1
