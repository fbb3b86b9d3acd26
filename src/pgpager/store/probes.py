"""What ``pgpager bench`` reads straight from the database: versions and memory settings, the
raw SQL cursor that is the floor for paging, the exact order that recall is measured against,
and the backends holding a server's cursors. Synchronous: the bench calls these between its
timed sections."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from pgpager.cursors import HOST_SETTINGS
from pgpager.store.collections import Collection
from pgpager.store.filters import CompiledFilter
from pgpager.store.queries import query
from pgpager.store.search import Include, nearest, params
from pgpager.store.vectors import COPY_SIGNATURE, COPY_TRAILER, CopyBatch, binary_copy_rows


def database_facts(url: str) -> dict[str, Any]:
    """PostgreSQL's version and memory settings, and pgvector's version."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        row = cur.execute(query("probes", "database_facts")).fetchone()
    return dict(row or {})


def analyze(url: str, c: Collection) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(query("probes", "analyze", table=c.table))


def sql_cursor_walk(
    url: str, c: Collection, queries: Iterable[Any], *, ef_search: int, page: int, until: int
) -> list[list[tuple[int, int]]]:
    """The floor: per query, a cursor declared directly on a connection set up like a cursor
    host (same SELECT, same scan settings), then ``FETCH page`` to ``until`` rows.

    Returns, per query, (position before the fetch, nanoseconds) for every fetch.
    """
    walks: list[list[tuple[int, int]]] = []
    with psycopg.connect(url) as conn:
        register_vector(conn)
        conn.execute(query("probes", "begin_like_a_host"))
        for stmt in HOST_SETTINGS:
            conn.execute(stmt)
        conn.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(ef_search)))
        select = nearest(c, include=Include())
        fetch = query("probes", "fetch_floor", count=sql.Literal(page))
        for q in queries:
            conn.execute(
                query("probes", "declare_floor", select=select),
                params(c, np.asarray(q, dtype=np.float32), "", None),
            )
            walk: list[tuple[int, int]] = []
            position = 0
            while position < until:
                t0 = time.perf_counter_ns()
                rows = conn.execute(fetch).fetchall()
                walk.append((position, time.perf_counter_ns() - t0))
                if not rows:
                    break
                position += len(rows)
            conn.execute(query("probes", "close_floor"))
            walks.append(walk)
        conn.rollback()
    return walks


def settle(url: str, timeout_s: float) -> float:
    """Let a timed section start on quiet session tables: wait (at most ``timeout_s``) until no
    closed handle has delivered ids left (a stop deletes them at once; the sweeper purges those
    of expired handles), then vacuum both tables. A section that closes many handles deletes
    hundreds of thousands of ids, and without this autovacuum cleans them up while the next
    section is being timed. Returns the seconds it took."""
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        while time.perf_counter() - t0 < timeout_s:
            row = conn.execute(query("probes", "unpurged_closed_handles")).fetchone()
            if not row or row[0] == 0:
                break
            time.sleep(0.2)
        conn.execute(query("probes", "vacuum_sessions"))
    return time.perf_counter() - t0


def durable_commit_floor(url: str, *, page: int, times: int) -> list[int]:
    """The floor under a ``next``'s delivery record: one autocommit INSERT of ``page`` ids
    into a logged table of its shape, which returns once its WAL is flushed (the server's
    ``synchronous_commit``). Nanoseconds per insert, ``times`` of them."""
    table = sql.Identifier("pgpager_bench_commit_floor_" + secrets.token_hex(4))
    samples: list[int] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(query("probes", "create_commit_floor", table=table))
        try:
            insert = query("probes", "commit_floor", table=table)
            for n in range(times):
                ids = [f"{n}-{i}" for i in range(page)]
                t0 = time.perf_counter_ns()
                conn.execute(insert, {"session": "floor", "ids": ids})
                samples.append(time.perf_counter_ns() - t0)
        finally:
            conn.execute(query("probes", "drop_commit_floor", table=table))
    return samples


def insert_floor(url: str, c: Collection, vectors: Any, batch: int) -> float:
    """The floor under the upsert API: the same rows, in the same batches, each its own
    transaction, by binary COPY straight into ``c``'s table (its primary key and HNSW index
    in place) — PostgreSQL's own cost of taking them. Returns seconds."""
    rows = np.asarray(vectors, dtype=np.float32)
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = time.perf_counter()
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            ids = [f"f{start + i}" for i in range(len(chunk))]
            payload = binary_copy_rows(CopyBatch(ids, "", chunk))
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(query("vectors", "copy_in", table=c.table_name)) as copy,
            ):
                copy.write(COPY_SIGNATURE + payload + COPY_TRAILER)
        return time.perf_counter() - t0


def exact_top(
    url: str, c: Collection, q: Any, k: int, where: CompiledFilter | None = None
) -> list[str]:
    """The exact nearest ``k`` ids (of the rows ``where`` matches): ordered by an expression no
    index can serve, so every row is scored and sorted (the order recall is measured against)."""
    select = nearest(c, include=Include(), where=where, exact=True, limit_offset=True)
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        rows = conn.execute(
            select,
            {**params(c, np.asarray(q, dtype=np.float32), "", where), "limit": k, "offset": 0},
        ).fetchall()
    return [r[0] for r in rows]


def host_backend_pids(url: str, instance_id: str) -> list[int]:
    """Backends holding the cursors of one server instance (from the sessions table)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            query("probes", "host_backend_pids"), {"instance": instance_id}
        ).fetchall()
    return sorted(int(r[0]) for r in rows)


def server_pids(url: str) -> list[int]:
    """The PostgreSQL server's processes (backends and background processes)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(query("probes", "server_pids")).fetchall()
    return sorted(int(r[0]) for r in rows)
