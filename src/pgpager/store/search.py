"""The nearest-neighbour query shared by offset search, resumable cursors and stored queries
(``sql/search.sql``), and the hits it returns.

Scores follow Upstash Vector, in 0..1 with higher = more similar, computed by the SQL function
``pgpager.score``: cosine ``1 - d/2``; euclidean ``1 / (1 + d^2)``; dot_product ``(1 - d) / 2``
where ``d`` is the operator's value (``<#>`` is the negative inner product).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import psycopg
from psycopg import sql

from pgpager.store.collections import Collection
from pgpager.store.filters import CompiledFilter
from pgpager.store.queries import query


@dataclass(frozen=True)
class Include:
    vectors: bool = False
    metadata: bool = False
    data: bool = False


@dataclass(frozen=True, slots=True)
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


SKIP_NOTHING = "skip_nothing"
SKIP_DELIVERED = "skip_delivered"
"""Leave out what the handle ``%(session_id)s`` delivered (an anti join: for exact order)."""
SKIP_DELIVERED_EACH = "skip_delivered_each"
"""Leave out what the handle ``%(session_id)s`` delivered, probing row by row (for a stream)."""
SKIP_IDS = "skip_ids"
"""Leave out the ids in ``%(skip_ids)s``."""
ONLY_IDS = "only_ids"
"""Only the ids in ``%(only_ids)s``."""


def nearest(
    c: Collection,
    *,
    include: Include,
    where: CompiledFilter | None = None,
    exact: bool = False,
    skip: str = SKIP_NOTHING,
    limit_offset: bool = False,
) -> sql.Composed:
    """The named query ``nearest`` for ``c``: rows (id, distance, score, embedding, metadata,
    data) nearest first. Parameters: ``%(q)s``, ``%(metric)s`` (see ``params``),
    ``%(namespace)s``, the filter's own, ``%(session_id)s`` or ``%(skip_ids)s`` for ``skip``,
    and ``%(limit)s``/``%(offset)s`` with ``limit_offset``.

    ``exact`` sorts every matching row by (distance, id) in a way the HNSW index cannot serve:
    exact, complete, deterministic.
    """
    distance = query("search", "distance", operator=c.operator)
    pieces: dict[str, sql.Composable] = {
        "table": c.table,
        "distance": distance,
        "embedding": sql.SQL("t.embedding" if include.vectors else "NULL::vector AS embedding"),
        "metadata": sql.SQL("t.metadata" if include.metadata else "NULL::jsonb AS metadata"),
        "data": sql.SQL("t.data" if include.data else "NULL::text AS data"),
        "condition": where.sql if where is not None else sql.SQL("TRUE"),
        "skip": query("search", skip),
        "limit": query("search", "limit_offset" if limit_offset else "no_limit"),
    }
    if exact:
        return cast(sql.Composed, query("search", "nearest_exact", **pieces))
    order = query("search", "order_index", distance=distance)
    return cast(sql.Composed, query("search", "nearest", order=order, **pieces))


def params(c: Collection, q: Any, namespace: str, where: CompiledFilter | None) -> dict[str, Any]:
    """The parameters every ``nearest`` query takes."""
    return {"q": q, "metric": c.metric, "namespace": namespace, **(where.params if where else {})}


def hit(row: tuple[Any, ...] | dict[str, Any]) -> Hit:
    if isinstance(row, dict):
        rid, dist, score, emb, meta, data = (
            row["id"],
            row["distance"],
            row["score"],
            row["embedding"],
            row["metadata"],
            row["data"],
        )
    else:
        rid, dist, score, emb, meta, data = row
    return Hit(
        id=rid,
        distance=float(dist),
        score=float(score),
        vector=floats(emb) if emb is not None else None,
        metadata=meta,
        data=data,
    )


async def estimated_rows(conn: psycopg.AsyncConnection[Any], c: Collection) -> float:
    """The planner's row estimate for the table (-1 if never analyzed): a catalog read."""
    cur = await conn.execute(query("collections", "estimated_rows"), {"qualified": c.qualified})
    row = await cur.fetchone()
    return float(row[0]) if row and row[0] is not None else -1.0
