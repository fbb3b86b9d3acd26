"""Upserting, fetching and deleting vectors, with every item checked before anything is written."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg_pool import AsyncConnectionPool

from pgpager.errors import InvalidRequest
from pgpager.filters import compile_filter
from pgpager.services import validation
from pgpager.settings import Settings
from pgpager.store import collections, vectors
from pgpager.store.vectors import VectorIn, VectorOut


async def upsert(
    pool: AsyncConnectionPool,
    settings: Settings,
    collection: str,
    items: Sequence[dict[str, Any]],
    namespace: str | None = None,
) -> int:
    """Validate the whole batch, then write it in one transaction. Returns the count written."""
    ns = validation.namespace(namespace)
    validation.batch(items, "vectors", settings.max_batch_size)
    async with pool.connection() as conn:
        dim = (await collections.get(conn, collection)).dimension
    by_id: dict[str, VectorIn] = {}
    for i, item in enumerate(items):
        where = f"vectors[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where}: must be an object with id and vector", item=where)
        vid = validation.vector_id(item.get("id"), where, settings.max_id_length)
        # Within one batch the last occurrence of an id wins, as with separate upserts.
        by_id[vid] = VectorIn(
            id=vid,
            vector=validation.vector(item.get("vector"), dim, where),
            metadata=validation.metadata(item.get("metadata"), where),
            data=validation.data(item.get("data"), where),
        )
    await vectors.upsert(pool, collection, ns, list(by_id.values()))
    return len(items)


async def fetch(
    pool: AsyncConnectionPool,
    settings: Settings,
    collection: str,
    ids: Sequence[Any],
    namespace: str | None = None,
) -> list[VectorOut | None]:
    validation.batch(ids, "ids", settings.max_batch_size)
    checked = [
        validation.vector_id(v, f"ids[{i}]", settings.max_id_length) for i, v in enumerate(ids)
    ]
    return await vectors.fetch(pool, collection, validation.namespace(namespace), checked)


async def get(
    pool: AsyncConnectionPool, settings: Settings, collection: str, vid: str, namespace: str | None
) -> VectorOut | None:
    return (await fetch(pool, settings, collection, [vid], namespace))[0]


async def delete(
    pool: AsyncConnectionPool,
    settings: Settings,
    collection: str,
    *,
    ids: Sequence[Any] | None = None,
    prefix: str | None = None,
    filter: str | None = None,
    namespace: str | None = None,
) -> int:
    given = [x is not None for x in (ids, prefix, filter)]
    if sum(given) != 1:
        raise InvalidRequest("give exactly one of ids, prefix or filter", field="ids")
    ns = validation.namespace(namespace)
    if ids is not None:
        validation.batch(ids, "ids", settings.max_batch_size)
        checked = [
            validation.vector_id(v, f"ids[{i}]", settings.max_id_length)
            for i, v in enumerate(ids)
        ]
        return await vectors.delete(pool, collection, ns, ids=checked)
    if prefix is not None:
        if prefix == "" or "\x00" in prefix:
            raise InvalidRequest("prefix must be a non-empty string without NUL", field="prefix")
        return await vectors.delete(pool, collection, ns, prefix=prefix)
    assert filter is not None
    if not filter.strip():
        raise InvalidRequest("filter must not be empty (use reset to delete everything)")
    return await vectors.delete(pool, collection, ns, where=compile_filter(filter))
