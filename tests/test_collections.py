"""Collections over HTTP: create, list, inspect, drop, and every bad input."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from pgpager.errors import CollectionNotFound
from pgpager.store import collections as collection_store

Client = AsyncTestClient[Any]


async def test_create_list_info_drop(client: Client, collection_name: str, pg_url: str) -> None:
    r = await client.post(
        "/v1/collections",
        json={
            "name": collection_name,
            "dimension": 4,
            "metric": "euclidean",
            "hnsw": {"m": 8, "ef_construction": 32},
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == collection_name
    assert body["dimension"] == 4
    assert body["metric"] == "euclidean"
    assert body["hnsw"] == {"m": 8, "ef_construction": 32}
    assert body["table"] == f'"pgpager_data"."{collection_name}"'

    names = [c["name"] for c in (await client.get("/v1/collections")).json()["collections"]]
    assert collection_name in names

    await client.post(
        f"/v1/collections/{collection_name}/vectors",
        json={"vectors": [{"id": "a", "vector": [1, 2, 3, 4]}], "namespace": "ns1"},
    )
    info = (await client.get(f"/v1/collections/{collection_name}")).json()
    assert info["vector_count"] == 1
    assert info["namespaces"] == {"ns1": 1}
    methods = {i["method"] for i in info["indexes"]}
    assert {"hnsw", "gin", "btree"} <= methods

    # The index really is HNSW with the metric's operator class and the asked parameters.
    with psycopg.connect(pg_url) as conn:
        (indexdef,) = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'pgpager_data' "
            "AND tablename = %s AND indexdef LIKE '%%hnsw%%'",
            [collection_name],
        ).fetchone() or ("",)
    assert "vector_l2_ops" in indexdef and "m='8'" in indexdef.replace(" ", "")

    assert (await client.delete(f"/v1/collections/{collection_name}")).status_code == 204
    r = await client.get(f"/v1/collections/{collection_name}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "collection_not_found"
    with psycopg.connect(pg_url) as conn:
        assert conn.execute(
            "SELECT to_regclass(%s)", [f"pgpager_data.{collection_name}"]
        ).fetchone() == (None,)


async def test_duplicate_is_409(client: Client, collection: str) -> None:
    r = await client.post("/v1/collections", json={"name": collection, "dimension": 3})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "collection_exists"
    assert collection in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"name": "Bad Name", "dimension": 3}, "collection name"),
        ({"name": "9starts-with-digit", "dimension": 3}, "collection name"),
        ({"name": "x" * 64, "dimension": 3}, "collection name"),
        ({"name": "ok_name", "dimension": 2001}, "2000"),
        ({"name": "ok_name", "dimension": 0}, "dimension"),
        ({"name": "ok_name", "dimension": 3, "metric": "manhattan"}, "metric"),
        ({"name": "ok_name", "dimension": "three"}, "dimension"),
        ({"name": "ok_name"}, "dimension"),
        ({"name": "ok_name", "dimension": 3, "hnsw": {"m": 1}}, "m"),
        ({"name": "ok_name", "dimension": 3, "colour": "red"}, "colour"),
    ],
)
async def test_bad_collection_input_is_422(
    client: Client, body: dict[str, Any], needle: str
) -> None:
    r = await client.post("/v1/collections", json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert needle in err["message"], err
    assert (await client.get("/v1/collections/ok_name")).status_code == 404


async def test_drop_unknown_is_404(client: Client) -> None:
    r = await client.delete("/v1/collections/does_not_exist")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "collection_not_found"


async def test_malformed_json_is_4xx(client: Client) -> None:
    r = await client.post(
        "/v1/collections", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert 400 <= r.status_code < 500
    assert "error" in r.json()


async def test_unknown_route_uses_error_shape(client: Client) -> None:
    r = await client.get("/v1/nothing-here")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


async def test_a_collection_comes_with_its_tables_row_estimate(
    client: Client, collection_name: str
) -> None:
    """One round trip gives a resumable start the collection and the planner's row estimate
    for its table: -1 until the table is analyzed, then its row count (a name with `-` too)."""
    name = f"{collection_name}-x"
    r = await client.post("/v1/collections", json={"name": name, "dimension": 2})
    assert r.status_code == 201, r.text
    db = client.app.state.runtime.db
    c, estimate = await collection_store.find_with_estimate(db, name)
    assert c.name == name and c.dimension == 2
    assert estimate == -1
    vectors = [{"id": str(i), "vector": [1.0, i]} for i in range(7)]
    r = await client.post(f"/v1/collections/{name}/vectors", json={"vectors": vectors})
    assert r.status_code == 200, r.text
    async with db.connection() as conn:
        await conn.execute(f"ANALYZE {c.qualified}")
    assert (await collection_store.find_with_estimate(db, name))[1] == 7
    with pytest.raises(CollectionNotFound):
        await collection_store.find_with_estimate(db, name + "-none")
