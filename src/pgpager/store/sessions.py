"""The sessions table (``pgpager.query_sessions``): one row per resumable-query handle."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pgpager.errors import CollectionNotFound
from pgpager.store.database import Database, TextArray, connect, translated
from pgpager.store.queries import query

CHANNEL = "pgpager_handles"
# Payload asking every server to recycle its cursor hosts (handle ids never look like this).
RECYCLE = "*recycle"
STOPPABLE = ("active", "exhausted")
"""States a stop ends. An exhausted handle is still open, as in Upstash: its next answers an
empty batch until it is stopped, and then fails like that of any stopped handle."""


def _columns() -> sql.Composable:
    return query("sessions", "session_columns")


@dataclass(frozen=True)
class Session:
    id: str
    collection: str
    namespace: str
    query: dict[str, Any]
    position: int
    phase: str
    state: str
    state_reason: str | None
    created_at: dt.datetime
    last_used_at: dt.datetime
    max_idle_s: int
    max_lifetime_s: int
    owner_instance: str | None
    owner_pid: int | None
    cursor_name: str | None
    api_key_id: str | None
    closed_at: dt.datetime | None
    now: dt.datetime
    overdue_reason: str | None
    """Why this active handle should already be expired, if it should (SQL's rule)."""

    @property
    def idle_s(self) -> float:
        return max(0.0, (self.now - self.last_used_at).total_seconds())

    @property
    def age_s(self) -> float:
        return max(0.0, (self.now - self.created_at).total_seconds())

    @property
    def expires_at(self) -> dt.datetime:
        return min(
            self.last_used_at + dt.timedelta(seconds=self.max_idle_s),
            self.created_at + dt.timedelta(seconds=self.max_lifetime_s),
        )


@dataclass(frozen=True)
class Closed:
    id: str
    owner_instance: str | None
    cursor_name: str | None
    reason: str | None = None


@dataclass(frozen=True)
class HandleCount:
    """``active`` handles counted while the admissions sequence stood at ``admissions``
    (migration 0011), at ``taken`` (``time.monotonic()``). A start admitted later that drew
    ``n`` from the sequence knows that at most ``active + (n - admissions)`` are active."""

    admissions: int
    active: int
    taken: float


async def insert_with_first_page(
    db: Database,
    cap: int,
    first_page: Sequence[str] | Awaitable[Sequence[str]],
    known: HandleCount | None,
    **values: Any,
) -> tuple[Session | None, HandleCount]:
    """A handle's row, unless ``cap`` handles are active already, and the delivery record of
    its first page, in one transaction: a start commits (and waits for the disk) once. The row
    is written while ``first_page`` (the ids of the page) may still be read on a cursor host;
    then, once the page is known, the cap is checked and the page recorded. Atomic across
    every instance on the database: starts take turns on a transaction lock, and the active
    handles are counted under it whenever the bound from ``known`` (the caller's last count,
    None: count) could pass the cap, so a burst of starts cannot overshoot it. Returns the
    session (None at the cap, and nothing is written) and the count the answer rests on."""
    values = {"owner_pid": None, "cursor_name": None, **values}
    values["query"] = Jsonb(values["query"])
    try:
        async with db.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            insert = query("sessions", "insert_session", columns=_columns())
            try:
                async with conn.pipeline():
                    await conn.execute("BEGIN")
                    await cur.execute(insert, values)
                row = await cur.fetchone()
                assert row is not None
                ids = first_page if isinstance(first_page, Sequence) else await first_page
                # One round trip, the one that waits for the WAL flush: the cap's check and the
                # page's record (over the cap, the function deletes the row again), and COMMIT.
                params = {
                    "id": values["id"],
                    "ids": TextArray(ids),
                    "cap": cap,
                    "admissions": None if known is None else known.admissions,
                    "active": None if known is None else known.active,
                }
                async with conn.pipeline():
                    admitted = await conn.execute(query("sessions", "admit_handle"), params)
                    await conn.execute("COMMIT")
                answer = await admitted.fetchone()
                assert answer is not None
            except BaseException:
                # The page's read failed or was cancelled, or a statement did: nothing stays.
                with contextlib.suppress(psycopg.Error):
                    await conn.rollback()
                raise
    except pgerrors.ForeignKeyViolation as exc:
        raise CollectionNotFound(
            "the collection does not exist (it was dropped meanwhile)"
        ) from exc
    fresh, admissions, active = answer
    if known is None or admissions != known.admissions:
        known = HandleCount(admissions, active, time.monotonic())
    if fresh is None:
        return None, known
    return Session(**{**row, "position": len(fresh)}), known


async def get(pool: Database, handle: str) -> Session | None:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query("sessions", "get_session", columns=_columns()), {"id": handle})
        row = await cur.fetchone()
    return Session(**row) if row else None


async def list_sessions(
    pool: Database,
    *,
    collection: str | None = None,
    state: str | None = None,
    owner: str | None = None,
    idle_over_s: float | None = None,
    limit: int = 1000,
) -> list[Session]:
    params = {
        "collection": collection,
        "state": state,
        "owner": owner,
        "idle_over_s": idle_over_s,
        "limit": limit,
    }
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query("sessions", "list_sessions", columns=_columns()), params)
        return [Session(**r) for r in await cur.fetchall()]


async def record_deliveries(
    pool: Database, pages: Sequence[tuple[str, Sequence[str]]], *, sync_commit: bool = True
) -> dict[str, set[str]]:
    """Record the ids each page delivers, ``(handle, ids)``, in one statement and one commit.
    Returns, for each handle still active (and not overdue), which of its ids are new for it:
    only those may be sent; a handle missing from the answer recorded nothing. ``sync_commit``
    False: committed without waiting for its WAL flush (PGPAGER_DELIVERY_SYNC_COMMIT)."""
    async with pool.connection() as conn:
        return await _record(conn, pages, sync_commit=sync_commit)


async def _record(
    conn: psycopg.AsyncConnection[Any],
    pages: Sequence[tuple[str, Sequence[str]]],
    *,
    sync_commit: bool,
) -> dict[str, set[str]]:
    params = {
        "handles": TextArray(handle for handle, _ in pages),
        "owners": TextArray(handle for handle, ids in pages for _ in ids),
        "ids": TextArray(i for _, ids in pages for i in ids),
        "sync_commit": sync_commit,
    }
    cur = await conn.execute(query("sessions", "record_deliveries"), params)
    return {handle: set(fresh) for handle, fresh in await cur.fetchall()}


async def set_owner(
    pool: Database,
    handle: str,
    *,
    phase: str,
    owner_instance: str,
    owner_pid: int | None,
    cursor_name: str,
) -> None:
    params = {
        "id": handle,
        "phase": phase,
        "owner_instance": owner_instance,
        "owner_pid": owner_pid,
        "cursor_name": cursor_name,
    }
    async with pool.connection() as conn:
        await conn.execute(query("sessions", "set_owner"), params)


async def count_delivered(pool: Database, handle: str) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(query("sessions", "count_delivered"), {"id": handle})
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def close(pool: Database, handle: str, state: str, reason: str) -> Closed | None:
    """Mark a handle closed and tell every instance (NOTIFY) to drop its cursor. Only an active
    handle expires or is exhausted; a stop also ends an exhausted one (``STOPPABLE``). None if
    the handle was in no state this change applies to."""
    params = {
        "id": handle,
        "state": state,
        "reason": reason,
        "from_states": list(STOPPABLE if state == "stopped" else ("active",)),
    }
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(query("sessions", "close_session"), params)
        row = await cur.fetchone()
        if row is None:
            return None
        await conn.execute(query("sessions", "forget_delivered"), {"id": handle})
        await conn.execute(query("sessions", "notify_closed"), {"payload": handle})
    return Closed(id=row[0], owner_instance=row[1], cursor_name=row[2], reason=reason)


async def notifications(url: str) -> AsyncIterator[str]:
    """The payloads sent on the handles channel, as they arrive, on a connection of its own.
    Raises ``DatabaseUnavailable`` when that connection is lost."""
    conn = await connect(url, "PostgreSQL (handle notifications)")
    try:
        with translated("PostgreSQL (handle notifications)"):
            await conn.execute(query("sessions", "listen"))
            async for note in conn.notifies():
                yield note.payload
    finally:
        await conn.close()


async def request_recycle(pool: Database) -> None:
    async with pool.connection() as conn:
        await conn.execute(query("sessions", "notify_closed"), {"payload": RECYCLE})


async def expire_idle(pool: Database, limit: int, *, dry_run: bool = False) -> list[Closed]:
    name = "preview_expire_idle" if dry_run else "expire_idle"
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(query("sessions", name), {"limit": limit})
        rows = await cur.fetchall()
        if not dry_run:
            for r in rows:
                await conn.execute(query("sessions", "notify_closed"), {"payload": r[0]})
    return [Closed(id=r[0], owner_instance=r[1], cursor_name=r[2], reason=r[3]) for r in rows]


async def reclaim_orphans(pool: Database, limit: int) -> list[str]:
    async with pool.connection() as conn:
        cur = await conn.execute(query("sessions", "reclaim_orphans"), {"limit": limit})
        return [r[0] for r in await cur.fetchall()]


async def purge(pool: Database, limit: int, retention_s: int) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(query("sessions", "purge_closed_rows"), {"limit": limit})
        n = cur.rowcount
        cur = await conn.execute(
            query("sessions", "purge_old_sessions"), {"limit": limit, "retention_s": retention_s}
        )
        return n + cur.rowcount


async def closed_among(pool: Database, ids: list[str], me: str) -> list[str]:
    if not ids:
        return []
    async with pool.connection() as conn:
        cur = await conn.execute(query("sessions", "closed_among"), {"ids": ids, "me": me})
        return [r[0] for r in await cur.fetchall()]
