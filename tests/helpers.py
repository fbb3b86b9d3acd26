"""Shared test helpers: fast loading of synthetic vectors straight into a collection table."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb

from pgpager.bench.data import clustered

__all__ = ["clustered", "eventually", "exact_order", "load"]


async def eventually(
    check: Callable[[], bool | Awaitable[bool]],
    *,
    timeout_s: float = 10.0,
    interval_s: float = 0.02,
    what: str = "the condition",
) -> None:
    """Poll ``check`` (sync or async) until it is true; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        await asyncio.sleep(interval_s)


def load(
    url: str,
    table: str,
    vectors: np.ndarray[Any, Any],
    *,
    metadata: list[dict[str, Any] | None] | None = None,
    namespace: str = "",
    id_prefix: str = "",
) -> list[str]:
    """COPY rows into ``pgpager_data.<table>``; ids are ``<prefix><row number>``."""
    ids = [f"{id_prefix}{i}" for i in range(len(vectors))]
    with psycopg.connect(url) as conn:
        register_vector(conn)
        with conn.cursor().copy(
            f'COPY pgpager_data."{table}" (id, namespace, embedding, metadata) '
            "FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "text", "vector", "jsonb"])
            for i, v in enumerate(vectors):
                meta = metadata[i] if metadata else None
                copy.write_row((ids[i], namespace, v, None if meta is None else Jsonb(meta)))
        conn.execute(f'ANALYZE pgpager_data."{table}"')
    return ids


def exact_order(url: str, table: str, query: np.ndarray[Any, Any], op: str = "<=>") -> list[str]:
    with psycopg.connect(url) as conn:
        register_vector(conn)
        rows = conn.execute(
            f'SELECT id FROM pgpager_data."{table}" ORDER BY embedding {op} %s, id',
            [query],
        ).fetchall()
    return [r[0] for r in rows]
