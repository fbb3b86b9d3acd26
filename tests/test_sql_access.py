"""Direct SQL access is a product feature: psql writes are seen by the API and the reverse."""

from __future__ import annotations

from typing import Any

import psycopg
from litestar.testing import AsyncTestClient


async def test_row_inserted_with_sql_is_served(
    client: AsyncTestClient[Any], collection: str, pg_url: str
) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            f'INSERT INTO pgpager_data."{collection}" (id, embedding, metadata, data) '
            "VALUES ('from-sql', '[0.5, 0.25, 1]', '{\"src\": \"psql\"}', 'text')"
        )
    r = await client.get(f"/v1/collections/{collection}/vectors/from-sql")
    assert r.status_code == 200
    assert r.json() == {
        "id": "from-sql",
        "vector": [0.5, 0.25, 1.0],
        "metadata": {"src": "psql"},
        "data": "text",
    }


async def test_vector_upserted_by_api_is_readable_with_sql(
    client: AsyncTestClient[Any], collection: str, pg_url: str
) -> None:
    await client.post(
        f"/v1/collections/{collection}/vectors",
        json={
            "vectors": [{"id": "api", "vector": [1, 2, 3], "metadata": {"a": [1, 2]}}],
            "namespace": "ns",
        },
    )
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            f"SELECT id, namespace, embedding::text, metadata, data, updated_at IS NOT NULL "
            f'FROM pgpager_data."{collection}"'
        ).fetchall()
    assert row == [("api", "ns", "[1,2,3]", {"a": [1, 2]}, None, True)]


async def test_catalogue_row_describes_the_table(
    client: AsyncTestClient[Any], collection: str, pg_url: str
) -> None:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT dimension, metric, table_name FROM pgpager.collections WHERE name = %s",
            [collection],
        ).fetchone()
        cols = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'pgpager_data' AND table_name = %s ORDER BY ordinal_position",
            [collection],
        ).fetchall()
    assert row == (3, "cosine", collection)
    assert [c[0] for c in cols] == [
        "id",
        "namespace",
        "embedding",
        "metadata",
        "data",
        "updated_at",
    ]


async def test_deleting_sessions_with_sql_deletes_their_delivered_ids(
    client: AsyncTestClient[Any], collection: str, pg_url: str
) -> None:
    """A session row deleted in psql (or by the sweeper's purge) takes its delivered ids with
    it, one session or many in one statement; other sessions keep theirs."""
    vectors = [{"id": f"v{i}", "vector": [1, i, 0.5]} for i in range(30)]
    r = await client.post(f"/v1/collections/{collection}/vectors", json={"vectors": vectors})
    assert r.status_code == 200, r.text
    handles = []
    for _ in range(3):
        r = await client.post(
            f"/v1/collections/{collection}/resumable-queries",
            json={"vector": [1, 2, 3], "top_k": 4},
        )
        handles.append(r.json()["handle"])
        r = await client.post(f"/v1/resumable-queries/{handles[-1]}/next", json={"additional_k": 5})
        assert r.status_code == 200 and len(r.json()["results"]) == 5

    def delivered() -> dict[str, int]:
        with psycopg.connect(pg_url) as conn:
            rows = conn.execute(
                "SELECT session_id, count(*) FROM pgpager.query_session_rows "
                "WHERE session_id = ANY(%s) GROUP BY session_id",
                [handles],
            ).fetchall()
        return dict(rows)

    assert delivered() == {h: 9 for h in handles}
    with psycopg.connect(pg_url) as conn:
        conn.execute("DELETE FROM pgpager.query_sessions WHERE id = %s", [handles[0]])
    assert delivered() == {handles[1]: 9, handles[2]: 9}
    with psycopg.connect(pg_url) as conn:
        conn.execute("DELETE FROM pgpager.query_sessions WHERE id = ANY(%s)", [handles[1:]])
    assert delivered() == {}
    r = await client.post(f"/v1/resumable-queries/{handles[0]}/next", json={"additional_k": 5})
    assert r.status_code == 404
