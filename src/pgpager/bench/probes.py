"""What the benchmark reads beside the HTTP API: the machine, the database's versions, the raw
SQL cursor that is the floor for paging, the exact order that recall is measured against, and
the memory of processes (``/proc``)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from pgpager import __version__
from pgpager.cursors import HOST_SETTINGS
from pgpager.store.collections import Collection
from pgpager.store.search import Include, nearest


def machine(url: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(_meminfo_kb("MemTotal") / 1024 / 1024, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pgpager": __version__,
    }
    with psycopg.connect(url, autocommit=True) as conn:
        for key, stmt in (
            ("postgres", "SHOW server_version"),
            ("shared_buffers", "SHOW shared_buffers"),
            ("work_mem", "SHOW work_mem"),
            ("pgvector", "SELECT extversion FROM pg_extension WHERE extname = 'vector'"),
        ):
            row = conn.execute(stmt).fetchone()
            info[key] = row[0] if row else None
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _meminfo_kb(field: str) -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def analyze(url: str, c: Collection) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("ANALYZE {}").format(c.table))


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
        conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY")
        for stmt in HOST_SETTINGS:
            conn.execute(stmt)
        conn.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(ef_search)))
        query = nearest(c, include=Include())
        fetch = sql.SQL("FETCH {} FROM floor").format(sql.Literal(page))
        for q in queries:
            conn.execute(
                sql.SQL("DECLARE floor NO SCROLL CURSOR FOR {}").format(query),
                {"q": np.asarray(q, dtype=np.float32), "namespace": ""},
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
            conn.execute("CLOSE floor")
            walks.append(walk)
        conn.rollback()
    return walks


def exact_top(url: str, c: Collection, q: Any, k: int) -> list[str]:
    """The exact nearest ``k`` ids: ordered by an expression no index can serve, so every row
    is scored and sorted (the order recall is measured against)."""
    query = nearest(c, include=Include(), exact=True, limit_offset=True)
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        rows = conn.execute(
            query,
            {"q": np.asarray(q, dtype=np.float32), "namespace": "", "limit": k, "offset": 0},
        ).fetchall()
    return [r[0] for r in rows]


def host_backend_pids(url: str, instance_id: str) -> list[int]:
    """Backends holding the cursors of one server instance (from the sessions table)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT DISTINCT s.owner_pid FROM pgpager.query_sessions AS s "
            "JOIN pg_stat_activity AS a ON a.pid = s.owner_pid "
            "WHERE s.owner_instance = %(instance)s AND s.owner_pid IS NOT NULL",
            {"instance": instance_id},
        ).fetchall()
    return sorted(int(r[0]) for r in rows)


def smaps_kb(pids: Iterable[int]) -> dict[str, int] | None:
    """Summed ``Pss`` and ``Pss_Anon`` (private heap: what cursors cost) of these processes;
    None when ``/proc`` does not let us read them (e.g. a PostgreSQL in another container)."""
    total = {"Pss": 0, "Pss_Anon": 0, "Rss": 0}
    seen = False
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        seen = True
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            if key in total:
                total[key] += int(rest.split()[0])
    return total if seen else None


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 when unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
