"""The nearest-neighbour SELECT shared by offset search, resumable cursors and stored queries.

Scores follow Upstash Vector, in 0..1 with higher = more similar:
cosine ``1 - d/2``; euclidean ``1 / (1 + d^2)``; dot_product ``(1 - d) / 2`` where ``d`` is the
operator's value (``<#>`` is the negative inner product).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from pgpager.store.collections import Collection
from pgpager.store.database import Database
from pgpager.store.filters import CompiledFilter
from pgpager.store.queries import query


@dataclass(frozen=True)
class Include:
    vectors: bool = False
    metadata: bool = False
    data: bool = False


@dataclass(frozen=True)
class Hit:
    id: str
    distance: float
    score: float
    vector: list[float] | None = None
    metadata: dict[str, Any] | None = None
    data: str | None = None


def floats(embedding: Any) -> list[float]:
    """pgvector hands back a ``Vector`` (or a numpy array): make it a plain list of floats."""
    values = embedding.to_list() if hasattr(embedding, "to_list") else embedding
    return [float(x) for x in values]


def score(metric: str, distance: float) -> float:
    if metric == "cosine":
        return max(0.0, min(1.0, 1.0 - distance / 2.0))
    if metric == "euclidean":
        return 1.0 / (1.0 + distance * distance)
    return max(0.0, min(1.0, (1.0 - distance) / 2.0))


def columns(include: Include, distance: sql.Composable) -> sql.Composable:
    return sql.SQL(", ").join(
        [
            sql.SQL("id"),
            sql.SQL("{} AS distance").format(distance),
            sql.SQL("embedding" if include.vectors else "NULL::vector AS embedding"),
            sql.SQL("metadata" if include.metadata else "NULL::jsonb AS metadata"),
            sql.SQL("data" if include.data else "NULL::text AS data"),
        ]
    )


def nearest(
    c: Collection,
    *,
    include: Include,
    where: CompiledFilter | None = None,
    exact: bool = False,
    exclude_session: bool = False,
    limit_offset: bool = False,
) -> sql.Composed:
    """SELECT id, distance, embedding, metadata, data ORDER BY distance.

    Parameters: ``%(q)s`` (the query vector), ``%(namespace)s``, the filter's own params,
    ``%(session_id)s`` with ``exclude_session`` (skip ids that handle already delivered),
    ``%(limit)s``/``%(offset)s`` with ``limit_offset``.

    ``exact`` orders by an expression the HNSW index cannot serve (distance + 0, then id), so
    the planner sorts every matching row: exact, complete, deterministic.
    """
    distance = sql.SQL("(embedding {} %(q)s)").format(c.operator)
    conditions: list[sql.Composable] = [sql.SQL("namespace = %(namespace)s")]
    if where is not None:
        conditions.append(sql.SQL("({})").format(where.sql))
    if exclude_session:
        conditions.append(
            sql.SQL(
                "NOT EXISTS (SELECT 1 FROM pgpager.query_session_rows s "
                "WHERE s.session_id = %(session_id)s AND s.row_id = t.id)"
            )
        )
    order = (
        sql.SQL("ORDER BY {} + 0, id").format(distance)
        if exact
        else sql.SQL("ORDER BY {}").format(distance)
    )
    query = sql.SQL("SELECT {columns} FROM {table} AS t WHERE {conditions} {order}").format(
        columns=columns(include, distance),
        table=c.table,
        conditions=sql.SQL(" AND ").join(conditions),
        order=order,
    )
    if limit_offset:
        query = sql.SQL("{} LIMIT %(limit)s OFFSET %(offset)s").format(query)
    return query


def hit(metric: str, row: tuple[Any, ...] | dict[str, Any]) -> Hit:
    if isinstance(row, dict):
        rid, dist, emb, meta, data = (
            row["id"],
            row["distance"],
            row["embedding"],
            row["metadata"],
            row["data"],
        )
    else:
        rid, dist, emb, meta, data = row
    return Hit(
        id=rid,
        distance=float(dist),
        score=score(metric, float(dist)),
        vector=floats(emb) if emb is not None else None,
        metadata=meta,
        data=data,
    )


async def count_matching(
    pool: Database,
    c: Collection,
    namespace: str,
    where: CompiledFilter | None,
    limit: int,
) -> int:
    """How many rows match namespace and filter, counting no further than ``limit``."""
    condition = where.sql if where is not None else sql.SQL("TRUE")
    q = sql.SQL(
        "SELECT count(*) FROM (SELECT 1 FROM {table} WHERE namespace = %(namespace)s "
        "AND ({condition}) LIMIT %(limit)s) AS s"
    ).format(table=c.table, condition=condition)
    params = {"namespace": namespace, "limit": limit, **(where.params if where else {})}
    async with pool.connection() as conn:
        cur = await conn.execute(q, params)
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def estimated_rows(pool: Database, c: Collection) -> float:
    """The planner's row estimate for the table (-1 if never analyzed): a catalog read."""
    async with pool.connection() as conn:
        cur = await conn.execute(query("collections", "estimated_rows"), {"qualified": c.qualified})
        row = await cur.fetchone()
    return float(row[0]) if row and row[0] is not None else -1.0
