"""Offset pages: the queries behind vector search with limit/offset and listing by id.

Every statement of one page runs on one connection inside ``snapshot()``, so the bounded count,
the index scan and an exact fallback all see the same rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from pgpager.store.collections import Collection
from pgpager.store.database import Database
from pgpager.store.filters import CompiledFilter
from pgpager.store.queries import query
from pgpager.store.search import (
    ONLY_IDS,
    SKIP_IDS,
    SKIP_NOTHING,
    Hit,
    Include,
    estimated_rows,
    floats,
    hit,
    nearest,
    params,
)
from pgpager.store.vectors import VectorOut

NO_COLUMNS = Include()

Conn = psycopg.AsyncConnection[Any]
Vector = np.ndarray[Any, np.dtype[np.float32]]


@asynccontextmanager
async def snapshot(pool: Database) -> AsyncIterator[Conn]:
    """A READ ONLY, REPEATABLE READ transaction; SET LOCAL settings end with it."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(query("pages", "begin_snapshot"))
        yield conn


async def count_matching(
    conn: Conn, c: Collection, namespace: str, where: CompiledFilter, bound: int
) -> int:
    """Rows in ``namespace`` that match ``where``, counted no further than ``bound``."""
    cur = await conn.execute(
        query("pages", "count_matching", table=c.table_name, condition=where.sql),
        {"namespace": namespace, "bound": bound, **where.params},
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def few_matching(
    conn: Conn,
    c: Collection,
    namespace: str,
    where: CompiledFilter,
    cutoff: int,
    *,
    estimate: float | None = None,
) -> bool:
    """Whether at most ``cutoff`` rows are in ``namespace`` and match ``where``: an exact scan
    then serves them better than the index. Counting reads up to ``cutoff + 1`` rows (0.7 ms at
    the default 10,000), so with no filter in the default namespace of a table the planner
    estimates (``estimate``, looked up if not given) as bigger, the answer is no, uncounted.
    Were that selection small after all (a small default namespace beside big ones), the index
    serves it, its stream ends early and the exact order completes it: slower, never
    incomplete."""
    if estimate is None and where.matches_all and namespace == "":
        estimate = await estimated_rows(conn, c)
    if estimate is not None and surely_many(namespace, where, cutoff, estimate):
        return False
    return await count_matching(conn, c, namespace, where, bound=cutoff + 1) <= cutoff


def surely_many(namespace: str, where: CompiledFilter, cutoff: int, estimate: float) -> bool:
    """``few_matching`` is false without counting: no filter, the default namespace, and a
    table the planner estimates at more than ``cutoff`` rows."""
    return where.matches_all and namespace == "" and estimate > cutoff


async def use_hnsw(
    conn: Conn, *, ef_search: int, max_scan_tuples: int, scan_mem_multiplier: float
) -> None:
    await conn.execute(
        query("pages", "use_hnsw"),
        {
            "ef_search": str(ef_search),
            "max_scan_tuples": str(max_scan_tuples),
            "scan_mem_multiplier": str(scan_mem_multiplier),
        },
    )


async def use_sort(conn: Conn) -> None:
    await conn.execute(query("pages", "use_sort"))


async def nearest_page(
    conn: Conn,
    c: Collection,
    q: Vector,
    namespace: str,
    where: CompiledFilter,
    include: Include,
    *,
    limit: int,
    offset: int,
    exact: bool,
    exclude: Sequence[str] = (),
) -> list[Hit]:
    """One slice of the nearest-first order: the index's stream, or with ``exact`` the
    complete order by (distance, id). ``exclude`` leaves out rows by id."""
    cur = await conn.execute(
        nearest(
            c,
            include=include,
            where=where,
            exact=exact,
            skip=SKIP_IDS if exclude else SKIP_NOTHING,
            limit_offset=True,
        ),
        {
            **params(c, q, namespace, where),
            "skip_ids": list(exclude),
            "limit": limit,
            "offset": offset,
        },
    )
    return [hit(row) for row in await cur.fetchall()]


class IndexStream:
    """The index's stream as raw (id, distance, score, ...) tuples, read as far as it is
    fetched: a cursor in the page's transaction, so reading further never reads again what was
    read (the first fetch goes with the DECLARE, one round trip)."""

    def __init__(
        self, conn: Conn, c: Collection, q: Vector, namespace: str, where: CompiledFilter
    ) -> None:
        self.conn = conn
        self.select = nearest(c, include=NO_COLUMNS, where=where, skip=SKIP_NOTHING)
        self.params = params(c, q, namespace, where)
        self.declared = False

    async def fetch(self, n: int) -> list[tuple[Any, ...]]:
        fetch = query("pages", "fetch_stream", n=sql.Literal(int(n)))
        if self.declared:
            cur = await self.conn.execute(fetch)
            return await cur.fetchall()
        async with self.conn.pipeline():
            await self.conn.execute(
                query("pages", "declare_stream", nearest=self.select), self.params
            )
            cur = await self.conn.execute(fetch)
        self.declared = True
        return await cur.fetchall()


async def hits_by_id(
    conn: Conn, c: Collection, q: Vector, namespace: str, include: Include, ids: Sequence[str]
) -> list[Hit]:
    """The rows ``ids`` as hits for the query ``q``, with the columns ``include`` asks for, in
    the order of ``ids`` (a page whose order was decided on ids and distances alone)."""
    cur = await conn.execute(
        nearest(c, include=include, exact=True, skip=ONLY_IDS),
        {**params(c, q, namespace, None), "only_ids": list(ids)},
    )
    found = {h.id: h for h in (hit(row) for row in await cur.fetchall())}
    return [found[i] for i in ids if i in found]


async def list_page(
    conn: Conn,
    c: Collection,
    namespace: str,
    where: CompiledFilter,
    include: Include,
    *,
    after: str | None,
    limit: int,
    offset: int,
) -> list[VectorOut]:
    """Rows ordered by id, starting after the id ``after`` (keyset) and skipping ``offset``."""
    q = query(
        "pages",
        "list_page",
        table=c.table_name,
        condition=where.sql,
        after=sql.SQL("TRUE" if after is None else "id > %(after)s"),
        embedding=sql.SQL("embedding" if include.vectors else "NULL::vector"),
        metadata=sql.SQL("metadata" if include.metadata else "NULL::jsonb"),
        data=sql.SQL("data" if include.data else "NULL::text"),
    )
    params = {
        "namespace": namespace,
        "after": after,
        "limit": limit,
        "offset": offset,
        **where.params,
    }
    cur = await conn.execute(q, params)
    return [
        VectorOut(
            id=rid,
            vector=floats(emb) if emb is not None else None,
            metadata=meta,
            data=data,
        )
        for rid, emb, meta, data in await cur.fetchall()
    ]
