"""Vectors of one collection: upsert, fetch, delete, bulk COPY."""

from __future__ import annotations

import itertools
import struct
from collections.abc import AsyncIterable, Callable, Sequence
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


@dataclass(frozen=True)
class CopyBatch:
    """Rows for ``COPY``, by column: one namespace, ``vectors`` an (n, dimension) float32 array,
    ``metadata`` and ``data`` one value (or None) per row, or None for all rows."""

    ids: Sequence[str]
    namespace: str
    vectors: np.ndarray[Any, np.dtype[np.float32]]
    metadata: Sequence[dict[str, Any] | None] | None = None
    data: Sequence[str | None] | None = None


# PostgreSQL's binary COPY format: a signature and header, then per row a field count and each
# field as its length (-1 for NULL) and bytes, then a trailer.
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\0" + b"\0\0\0\0" + b"\0\0\0\0"
COPY_TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_FIELDS = struct.pack(">h", 5)
_int4 = struct.Struct(">i").pack


def _text_field(value: str | None) -> bytes:
    if value is None:
        return _NULL
    raw = value.encode()
    return _int4(len(raw)) + raw


def _jsonb_field(value: dict[str, Any] | None) -> bytes:
    if value is None:
        return _NULL
    raw = b"\x01" + msgspec.json.encode(value)  # jsonb's binary form: version 1, then the text
    return _int4(len(raw)) + raw


def binary_copy_rows(batch: CopyBatch) -> bytes:
    """The rows of ``batch`` in binary COPY format (id, namespace, embedding, metadata, data).

    The vectors, the bulk of the bytes, are laid out by numpy in one go (pgvector's binary form:
    int16 dimensions, int16 unused, big-endian float32s); per row only the short fields are
    encoded in Python, unless there are none but ASCII ids (a ``.npy`` load): then whole rows
    are laid out by numpy, a run of ids of one length at a time."""
    if batch.metadata is None and batch.data is None:
        laid_out = _vectors_only_rows(batch)
        if laid_out is not None:
            return laid_out
    n, dim = batch.vectors.shape
    layout = np.dtype(
        [("size", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("values", ">f4", (dim,))]
    )
    block = np.empty(n, dtype=layout)
    block["size"] = layout.itemsize - 4
    block["dim"] = dim
    block["unused"] = 0
    block["values"] = batch.vectors
    vectors = memoryview(block.tobytes())
    namespace = _text_field(batch.namespace)
    metadata, data = batch.metadata, batch.data
    parts: list[bytes | memoryview] = []
    size = layout.itemsize
    for i, rid in enumerate(batch.ids):
        parts.append(_FIELDS + _text_field(rid) + namespace)
        parts.append(vectors[i * size : (i + 1) * size])
        parts.append(
            (_NULL if metadata is None else _jsonb_field(metadata[i]))
            + (_NULL if data is None else _text_field(data[i]))
        )
    return b"".join(parts)


async def copy_in(conn: psycopg.AsyncConnection[Any], c: Collection, batch: CopyBatch) -> int:
    """Binary COPY of a batch of rows; returns the count."""
    async with (
        conn.cursor() as cur,
        cur.copy(query("vectors", "copy_in", table=c.table_name)) as copy,
    ):
        await copy.write(COPY_SIGNATURE + binary_copy_rows(batch) + COPY_TRAILER)
    return len(batch.ids)


def _vectors_only_rows(batch: CopyBatch) -> bytes | None:
    """``binary_copy_rows`` for rows with no metadata and no data, by numpy; None where that
    does not pay (ids that are not ASCII, or whose lengths change every few rows)."""
    n, dim = batch.vectors.shape
    try:
        ids = np.array(batch.ids, dtype=np.bytes_)
    except UnicodeEncodeError:
        return None
    lengths = np.char.str_len(ids)
    starts = [0, *(np.flatnonzero(np.diff(lengths)) + 1).tolist()]
    if len(starts) > max(8, n // 100):
        return None
    ns = batch.namespace.encode()
    parts: list[bytes] = []
    for a, b in itertools.pairwise([*starts, n]):
        size = int(lengths[a])
        fields: list[tuple[Any, ...]] = [
            ("fields", ">i2"),
            ("id_size", ">i4"),
            ("id", f"S{size}"),
            ("ns_size", ">i4"),
        ]
        if ns:
            fields.append(("ns", f"S{len(ns)}"))
        fields += [
            ("vector_size", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("values", ">f4", (dim,)),
            ("metadata", ">i4"),
            ("data", ">i4"),
        ]
        rows = np.empty(b - a, dtype=np.dtype(fields))
        rows["fields"] = 5
        rows["id_size"] = size
        rows["id"] = ids[a:b]
        rows["ns_size"] = len(ns)
        if ns:
            rows["ns"] = ns
        rows["vector_size"] = 4 + 4 * dim
        rows["dim"] = dim
        rows["unused"] = 0
        rows["values"] = batch.vectors[a:b]
        rows["metadata"] = -1
        rows["data"] = -1
        parts.append(rows.tobytes())
    return b"".join(parts)


async def load(
    db: Database,
    c: Collection,
    batches: AsyncIterable[CopyBatch],
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
                progress(len(batch.ids))
            if defer_index:
                await conn.execute(query("vectors", "index_build_memory"))
                await collections.build_hnsw_index(conn, c)
    except pgerrors.UniqueViolation as exc:
        raise DuplicateId(exc.diag.message_detail or "duplicate id") from exc
    return total
