"""Collections: the ``pgpager.collections`` row and the collection's table in ``pgpager_data``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.rows import dict_row

from pgpager.errors import CollectionBusy, CollectionExists, CollectionNotFound
from pgpager.store.database import Database
from pgpager.store.queries import query

DATA_SCHEMA = "pgpager_data"

METRICS: dict[str, tuple[str, str]] = {
    # metric -> (operator class, distance operator)
    "cosine": ("vector_cosine_ops", "<=>"),
    "euclidean": ("vector_l2_ops", "<->"),
    "dot_product": ("vector_ip_ops", "<#>"),
}


@dataclass(frozen=True)
class Collection:
    name: str
    dimension: int
    metric: str
    hnsw_m: int
    hnsw_ef_construction: int
    embedding_model: str | None
    table_name: str
    created_at: dt.datetime

    @property
    def table(self) -> sql.Identifier:
        return sql.Identifier(DATA_SCHEMA, self.table_name)

    @property
    def qualified(self) -> str:
        return sql.Identifier(DATA_SCHEMA, self.table_name).as_string()

    @property
    def operator(self) -> sql.SQL:
        return sql.SQL(METRICS[self.metric][1])

    @property
    def hnsw_index(self) -> str:
        return f"{self.table_name}_embedding_hnsw"


def _collection(row: dict[str, Any]) -> Collection:
    return Collection(**row)


def _identifiers(c: Collection) -> dict[str, Any]:
    return {"table": c.table_name}


async def list_all(pool: Database) -> list[Collection]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query("collections", "list_collections"))
        return [_collection(r) for r in await cur.fetchall()]


async def _row(conn: psycopg.AsyncConnection[Any], name: str, statement: str) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query("collections", statement), {"name": name})
        row = await cur.fetchone()
    if row is None:
        raise CollectionNotFound(f"collection {name!r} does not exist", collection=name)
    return row


async def get(conn: psycopg.AsyncConnection[Any], name: str) -> Collection:
    return _collection(await _row(conn, name, "get_collection"))


async def get_with_estimate(
    conn: psycopg.AsyncConnection[Any], name: str
) -> tuple[Collection, float]:
    """The collection ``name`` and the planner's row estimate for its table (-1 if never
    analyzed), in one round trip (``CollectionNotFound`` if there is none)."""
    row = await _row(conn, name, "get_collection_and_estimate")
    estimate = float(row.pop("estimated_rows"))
    return _collection(row), estimate


async def find_with_estimate(db: Database, name: str) -> tuple[Collection, float]:
    """``get_with_estimate`` on a connection of the pool."""
    async with db.connection() as conn:
        return await get_with_estimate(conn, name)


async def find(db: Database, name: str) -> Collection:
    """The collection ``name`` (``CollectionNotFound`` if there is none)."""
    async with db.connection() as conn:
        return await get(conn, name)


async def create(
    pool: Database,
    *,
    name: str,
    dimension: int,
    metric: str,
    hnsw_m: int,
    hnsw_ef_construction: int,
    embedding_model: str | None,
    build_index: bool = True,
) -> Collection:
    """Insert the catalogue row and create the table with its indexes, in one transaction."""
    params = {
        "name": name,
        "dimension": dimension,
        "metric": metric,
        "hnsw_m": hnsw_m,
        "hnsw_ef_construction": hnsw_ef_construction,
        "embedding_model": embedding_model,
        "table_name": name,
    }
    async with pool.connection() as conn:
        try:
            async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(query("collections", "insert_collection"), params)
                row = await cur.fetchone()
                assert row is not None
                c = _collection(row)
                await cur.execute(
                    query(
                        "collections",
                        "create_table",
                        table=c.table_name,
                        dimension=sql.Literal(dimension),
                    )
                )
                if build_index:
                    await cur.execute(_hnsw_ddl(c))
                await cur.execute(
                    query(
                        "collections",
                        "create_metadata_index",
                        table=c.table_name,
                        index=f"{c.table_name}_metadata_gin",
                    )
                )
        except (pgerrors.UniqueViolation, pgerrors.DuplicateTable) as exc:
            raise CollectionExists(f"collection {name!r} already exists", collection=name) from exc
    return c


def _hnsw_ddl(c: Collection) -> sql.Composed | sql.SQL:
    return query(
        "collections",
        "create_hnsw_index",
        table=c.table_name,
        index=c.hnsw_index,
        opclass=sql.SQL(METRICS[c.metric][0]),
        m=sql.Literal(c.hnsw_m),
        ef_construction=sql.Literal(c.hnsw_ef_construction),
    )


async def build_hnsw_index(conn: psycopg.AsyncConnection[Any], c: Collection) -> None:
    await conn.execute(_hnsw_ddl(c))


async def drop_hnsw_index(conn: psycopg.AsyncConnection[Any], c: Collection) -> None:
    await conn.execute(query("collections", "drop_hnsw_index", index=c.hnsw_index))


async def drop(pool: Database, name: str) -> None:
    """Drop the catalogue row and the table, waiting for locks no longer than ``lock_timeout``:
    a DROP queued behind a lock would block every reader of the table meanwhile."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(query("collections", "set_lock_timeout"))
        cur = await conn.execute(query("collections", "delete_collection"), {"name": name})
        row = await cur.fetchone()
        if row is None:
            raise CollectionNotFound(f"collection {name!r} does not exist", collection=name)
        try:
            await conn.execute(query("collections", "drop_table", table=row[0]))
        except pgerrors.LockNotAvailable as exc:
            raise CollectionBusy(
                f"collection {name!r} is in use (an open cursor or a long query holds it); "
                "try again in a moment",
                collection=name,
            ) from exc


@dataclass(frozen=True)
class CollectionInfo:
    collection: Collection
    vector_count: int
    namespaces: dict[str, int]
    indexes: list[dict[str, Any]]
    size_bytes: int


async def info(pool: Database, name: str) -> CollectionInfo:
    async with pool.connection() as conn:
        c = await get(conn, name)
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query("collections", "collection_stats", **_identifiers(c)))
            namespaces = {r["namespace"]: r["vector_count"] for r in await cur.fetchall()}
            await cur.execute(query("collections", "index_info"), {"qualified": c.qualified})
            indexes = list(await cur.fetchall())
            await cur.execute(query("collections", "table_size"), {"qualified": c.qualified})
            size_row = await cur.fetchone()
    return CollectionInfo(
        collection=c,
        vector_count=sum(namespaces.values()),
        namespaces=namespaces,
        indexes=indexes,
        size_bytes=int(size_row["size_bytes"] or 0) if size_row else 0,
    )
