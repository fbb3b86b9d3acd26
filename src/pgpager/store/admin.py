"""What an operator asks the database about: schema revision, server and backend activity
(``pg_stat_activity``), counts across the service tables and the collection tables."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from psycopg import errors as pgerrors
from psycopg.rows import dict_row

from pgpager.store.collections import Collection
from pgpager.store.database import Database
from pgpager.store.queries import query


@dataclass(frozen=True)
class ServerInfo:
    database: str
    server_version: str
    pgvector_version: str | None


@dataclass(frozen=True)
class Backend:
    """One PostgreSQL backend as ``pg_stat_activity`` shows it."""

    pid: int
    application_name: str
    state: str | None
    backend_start: dt.datetime
    xact_start: dt.datetime | None
    backend_xmin: str | None
    now: dt.datetime


@dataclass(frozen=True)
class Instance:
    """A pgpager server connected to the database, known by its connections' application_name."""

    instance: str
    connections: int
    connected_since: dt.datetime


async def schema_revision(pool: Database) -> str | None:
    """The Alembic revision of the database, None before the first migration."""
    async with pool.connection() as conn:
        cur = await conn.execute(query("admin", "schema_table_exists"))
        row = await cur.fetchone()
        if not row or not row[0]:
            return None
        cur = await conn.execute(query("admin", "schema_revision"))
        row = await cur.fetchone()
    return str(row[0]) if row else None


async def server_info(pool: Database) -> ServerInfo:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query("admin", "server_info"))
        row = await cur.fetchone()
    assert row is not None
    return ServerInfo(**row)


async def backends(pool: Database, pids: list[int]) -> dict[int, Backend]:
    if not pids:
        return {}
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query("admin", "backends"), {"pids": pids})
        return {r["pid"]: Backend(**r) for r in await cur.fetchall()}


async def server_instances(pool: Database, prefix: str) -> list[Instance]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query("admin", "server_instances"), {"prefix": prefix})
        return [Instance(**r) for r in await cur.fetchall()]


async def session_counts(pool: Database) -> dict[str, int]:
    async with pool.connection() as conn:
        cur = await conn.execute(query("admin", "session_counts"))
        return {str(r[0]): int(r[1]) for r in await cur.fetchall()}


async def handle_owners(pool: Database) -> dict[str | None, int]:
    """Active handles per owner instance (None: not owned, rehydrates on next use)."""
    async with pool.connection() as conn:
        cur = await conn.execute(query("admin", "handle_owners"))
        return {r[0]: int(r[1]) for r in await cur.fetchall()}


async def estimated_rows(pool: Database) -> dict[str, int]:
    """Rows per collection from the statistics: instant at any size, not exact."""
    async with pool.connection() as conn:
        cur = await conn.execute(query("admin", "collection_row_estimates"))
        return {str(r[0]): int(r[1]) for r in await cur.fetchall()}


async def exact_rows(pool: Database, collections: list[Collection]) -> dict[str, int]:
    """Rows per collection by ``count(*)``: exact, but reads every table."""
    out: dict[str, int] = {}
    async with pool.connection() as conn:
        for c in collections:
            try:
                cur = await conn.execute(query("admin", "count_rows", table=c.table_name))
            except pgerrors.UndefinedTable:
                continue  # dropped while we counted
            row = await cur.fetchone()
            out[c.name] = int(row[0]) if row else 0
    return out
