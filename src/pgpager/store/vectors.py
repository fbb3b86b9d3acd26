"""Vectors of one collection: upsert, fetch, delete, bulk COPY."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pgpager.errors import DuplicateId
from pgpager.store import collections
from pgpager.store.collections import Collection
from pgpager.store.database import Database
from pgpager.store.filters import CompiledFilter
from pgpager.store.queries import query
from pgpager.store.search import Include, floats

DEADLOCK_ATTEMPTS = 3


@dataclass(frozen=True)
class VectorIn:
    id: str
    vector: np.ndarray[Any, np.dtype[np.float32]]
    metadata: msgspec.Raw | None
    """The metadata's JSON, encoded once when it was checked; written as it is."""
    data: str | None


@dataclass(frozen=True)
class VectorOut:
    id: str
    vector: list[float] | None
    metadata: dict[str, Any] | None
    data: str | None


def _out(row: dict[str, Any], include_vectors: bool = True) -> VectorOut:
    emb = row.get("embedding")
    return VectorOut(
        id=row["id"],
        vector=floats(emb) if include_vectors and emb is not None else None,
        metadata=row.get("metadata"),
        data=row.get("data"),
    )


async def upsert(
    pool: Database, collection: str, namespace: str, items: Sequence[VectorIn]
) -> Collection:
    """All-or-nothing: one transaction, committed (and so durable) before we return.

    Rows are written in id order, so concurrent batches that share ids lock them in the same
    order and cannot deadlock each other; a deadlock with another kind of write (a delete by
    prefix or filter) rolls the batch back whole, and it is tried again."""
    rows = [
        {
            "id": v.id,
            "namespace": namespace,
            "embedding": v.vector,
            "metadata": None if v.metadata is None else Jsonb(v.metadata),
            "data": v.data,
        }
        for v in sorted(items, key=lambda v: v.id)
    ]
    for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
        try:
            async with pool.connection() as conn:
                c = await collections.get(conn, collection)
                async with conn.transaction(), conn.cursor() as cur:
                    await cur.executemany(query("vectors", "upsert", table=c.table_name), rows)
            return c
        except pgerrors.DeadlockDetected:
            if attempt == DEADLOCK_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def fetch(
    pool: Database, collection: str, namespace: str, ids: Sequence[str]
) -> list[VectorOut | None]:
    """One entry per requested id, in request order; None where the id does not exist."""
    async with pool.connection() as conn:
        c = await collections.get(conn, collection)
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                query("vectors", "fetch", table=c.table_name),
                {"namespace": namespace, "ids": list(ids)},
            )
            found = {r["id"]: _out(r) for r in await cur.fetchall()}
    return [found.get(i) for i in ids]


async def delete(
    pool: Database,
    collection: str,
    namespace: str,
    *,
    ids: Sequence[str] | None = None,
    prefix: str | None = None,
    where: CompiledFilter | None = None,
) -> int:
    async with pool.connection() as conn:
        c = await collections.get(conn, collection)
        params: dict[str, Any] = {"namespace": namespace}
        if ids is not None:
            q = query("vectors", "delete_ids", table=c.table_name)
            params["ids"] = list(ids)
        elif prefix is not None:
            q = query("vectors", "delete_prefix", table=c.table_name)
            params["prefix"] = prefix
        else:
            assert where is not None
            q = query("vectors", "delete_where", table=c.table_name, condition=where.sql)
            params.update(where.params)
        cur = await conn.execute(q, params)
        return cur.rowcount


async def reset(pool: Database, collection: str, namespace: str | None) -> None:
    """Delete every vector of one namespace, or of all namespaces (``namespace=None``)."""
    async with pool.connection() as conn:
        c = await collections.get(conn, collection)
        if namespace is None:
            await conn.execute(query("vectors", "reset_all", table=c.table_name))
        else:
            await conn.execute(
                query("vectors", "reset_namespace", table=c.table_name), {"namespace": namespace}
            )


async def id_range(
    pool: Database,
    collection: str,
    namespace: str,
    *,
    after: str | None,
    prefix: str,
    limit: int,
    include: Include,
) -> list[VectorOut]:
    """Up to ``limit`` rows ordered by id, after the id ``after``, whose id starts with
    ``prefix`` (keyset paging: any depth costs the same)."""
    async with pool.connection() as conn:
        c = await collections.get(conn, collection)
        cur = await conn.execute(
            query(
                "vectors",
                "id_range",
                table=c.table_name,
                after=sql.SQL("TRUE" if after is None else "id > %(after)s"),
                embedding=sql.SQL("embedding" if include.vectors else "NULL::vector"),
                metadata=sql.SQL("metadata" if include.metadata else "NULL::jsonb"),
                data=sql.SQL("data" if include.data else "NULL::text"),
            ),
            {"namespace": namespace, "after": after, "prefix": prefix, "limit": limit},
        )
        rows = await cur.fetchall()
    return [
        VectorOut(id=rid, vector=floats(emb) if emb is not None else None, metadata=meta, data=data)
        for rid, emb, meta, data in rows
    ]


MetadataChange = Callable[[Any], Any]
"""From the stored metadata (an object, a Raw or None) to what is written instead."""


async def update(
    pool: Database,
    collection: str,
    namespace: str,
    vid: str,
    *,
    vector: np.ndarray[Any, np.dtype[np.float32]] | None,
    data: str | None,
    metadata: MetadataChange,
) -> bool:
    """Change one row in place: ``vector``/``data`` when not None, metadata to
    ``metadata(stored metadata)``. The row is locked in between. False if the id is absent."""
    async with pool.connection() as conn:
        c = await collections.get(conn, collection)
        async with conn.transaction():
            cur = await conn.execute(
                query("vectors", "lock_metadata", table=c.table_name),
                {"namespace": namespace, "id": vid},
            )
            row = await cur.fetchone()
            if row is None:
                return False
            new = metadata(row[0])
            await conn.execute(
                query("vectors", "update_one", table=c.table_name),
                {
                    "namespace": namespace,
                    "id": vid,
                    "embedding": vector,
                    "metadata": None if new is None else Jsonb(new),
                    "data": data,
                },
            )
    return True


async def copy_in(
    conn: psycopg.AsyncConnection[Any],
    c: Collection,
    rows: Iterable[tuple[str, str, Any, Any, str | None]],
) -> int:
    """Binary COPY of (id, namespace, embedding, metadata, data) rows; returns the count."""
    n = 0
    async with (
        conn.cursor() as cur,
        cur.copy(query("vectors", "copy_in", table=c.table_name)) as copy,
    ):
        copy.set_types(["text", "text", "vector", "jsonb", "text"])
        for row in rows:
            await copy.write_row(row)
            n += 1
    return n


async def load(
    db: Database,
    c: Collection,
    batches: AsyncIterable[list[tuple[str, str, Any, Any, str | None]]],
    *,
    defer_index: bool,
    progress: Callable[[int], None],
) -> int:
    """COPY every batch in one transaction (all rows or none); with ``defer_index`` the HNSW
    index is dropped first and built once at the end. An id that exists already fails the
    whole load with ``DuplicateId``."""
    total = 0
    try:
        async with db.connection() as conn, conn.transaction():
            if defer_index:
                await collections.drop_hnsw_index(conn, c)
            async for batch in batches:
                total += await copy_in(conn, c, batch)
                progress(len(batch))
            if defer_index:
                await conn.execute(query("vectors", "index_build_memory"))
                await collections.build_hnsw_index(conn, c)
    except pgerrors.UniqueViolation as exc:
        raise DuplicateId(exc.diag.message_detail or "duplicate id") from exc
    return total
