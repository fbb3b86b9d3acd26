"""Creating, listing, inspecting and dropping collections."""

from __future__ import annotations

import asyncio
import time

from psycopg_pool import AsyncConnectionPool

from pgpager.errors import CollectionBusy, InvalidRequest
from pgpager.services import validation
from pgpager.store import collections as store
from pgpager.store import sessions
from pgpager.store.collections import METRICS, Collection, CollectionInfo


async def create(
    pool: AsyncConnectionPool,
    *,
    name: str,
    dimension: int,
    metric: str = "cosine",
    hnsw_m: int = 16,
    hnsw_ef_construction: int = 64,
    embedding_model: str | None = None,
    build_index: bool = True,
) -> Collection:
    validation.collection_name(name)
    validation.dimension(dimension)
    if metric not in METRICS:
        raise InvalidRequest(
            f"unknown metric {metric!r}: use one of {', '.join(METRICS)}", field="metric"
        )
    if not 2 <= hnsw_m <= 100:
        raise InvalidRequest("hnsw m must be between 2 and 100", field="m")
    if not 4 <= hnsw_ef_construction <= 1000 or hnsw_ef_construction < 2 * hnsw_m:
        raise InvalidRequest(
            "hnsw ef_construction must be between 4 and 1000 and at least 2 * m",
            field="ef_construction",
        )
    return await store.create(
        pool,
        name=name,
        dimension=dimension,
        metric=metric,
        hnsw_m=hnsw_m,
        hnsw_ef_construction=hnsw_ef_construction,
        embedding_model=embedding_model,
        build_index=build_index,
    )


async def list_all(pool: AsyncConnectionPool) -> list[Collection]:
    return await store.list_all(pool)


async def info(pool: AsyncConnectionPool, name: str) -> CollectionInfo:
    return await store.info(pool, name)


async def drop(pool: AsyncConnectionPool, name: str, *, wait_s: float = 10.0) -> None:
    """Drop a collection. Cursor hosts of running servers hold a lock on tables they have read
    until their transaction ends, so on a lock timeout every server is asked (NOTIFY) to recycle
    its hosts, and the drop is retried until ``wait_s`` has passed. Open handles of the
    collection go with it."""
    deadline = time.monotonic() + wait_s
    asked = False
    while True:
        try:
            await store.drop(pool, name)
            return
        except CollectionBusy:
            if time.monotonic() >= deadline:
                raise
            if not asked:
                await sessions.request_recycle(pool)
                asked = True
            await asyncio.sleep(0.2)
