"""Shared test helpers: polling with a deadline, and fast loading of synthetic vectors straight
into a collection table."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb

from pgpager.bench.data import clustered

__all__ = ["clustered", "eventually", "eventually_sync", "exact_order", "load"]

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T] | T],
    *,
    until: Callable[[T], object] = bool,
    what: str,
    timeout_s: float = 10.0,
    interval_s: float = 0.05,
) -> T:
    """Call ``check`` (sync or async) until ``until(result)`` holds and return that result.

    Past ``timeout_s`` this fails with an AssertionError naming ``what`` did not happen and the
    last result. The one way tests wait for something; never a bare sleep.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        value: T = await result if inspect.isawaitable(result) else result
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{what}: did not happen within {timeout_s} s (last seen: {value!r})"
            )
        await asyncio.sleep(interval_s)


def eventually_sync(
    check: Callable[[], T],
    *,
    until: Callable[[T], object] = bool,
    what: str,
    timeout_s: float = 10.0,
    interval_s: float = 0.05,
) -> T:
    """``eventually`` for synchronous tests."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{what}: did not happen within {timeout_s} s (last seen: {value!r})"
            )
        time.sleep(interval_s)


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
