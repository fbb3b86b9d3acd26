"""Cursor hosts: dedicated connections, each inside one long READ ONLY, READ COMMITTED
transaction holding many server-side cursors (DESIGN 3.2).

A host runs one statement at a time, always under a savepoint, so a failing cursor never takes
its siblings down. If the connection itself dies, every cursor on it is gone: the host
reconnects and reports the loss, and the handles are rehydrated from their rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from pgpager.errors import DatabaseUnavailable
from pgpager.store.database import connect, connection_lost, domain_error, translated

if TYPE_CHECKING:
    from pgpager.replicas import Replica, Replicas

log = logging.getLogger(__name__)

# Settings of every cursor on a host. Iterative scan keeps the HNSW scan going past ef_search;
# the scan limits are raised so a handle can go deep before the exact phase takes over. The only
# join a cursor's plan can hold is an exact cursor's anti join against the rows its handle
# delivered (search.sql, skip_delivered), whose statistics always lag behind: with nested loops
# off it is a hash or merge anti join, never a loop over a set the planner takes for one row.
HOST_SETTINGS = (
    "SET hnsw.iterative_scan = relaxed_order",
    "SET hnsw.max_scan_tuples = 1000000",
    "SET hnsw.scan_mem_multiplier = 8",
    "SET ivfflat.iterative_scan = relaxed_order",
    "SET enable_nestloop = off",
)


# A host's transaction always has a savepoint open: a statement that fails rolls back to it
# (ROLLBACK TO keeps it open) and leaves the cursors before it alone; one that succeeds is kept
# by releasing the savepoint and opening the next one, in the same message as the statement.
# So a DECLARE, whose parameters need a message of its own, needs no SAVEPOINT before it.
KEEP = "RELEASE SAVEPOINT sp; SAVEPOINT sp"
BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY"


def new_cursor_name() -> str:
    return "c_" + secrets.token_hex(8)


def fetch_statement(name: str, count: int) -> sql.Composed:
    """``FETCH count FROM name``: ``count`` is an int we computed and ``name`` an identifier we
    generated, no user text."""
    return sql.SQL("FETCH {} FROM {}").format(sql.Literal(int(count)), sql.Identifier(name))


class CursorLost(Exception):
    """The cursor no longer exists on its host (connection lost or the cursor failed)."""


class CursorHost:
    """One connection holding cursors. ``generation`` changes whenever its cursors are lost."""

    def __init__(
        self, url: str, index: int, ef_search: int, replica: Replica | None = None
    ) -> None:
        self.url = url
        self.index = index
        self.ef_search = ef_search
        self.replica = replica
        """The hot standby this host's connection is on; None: the primary."""
        self.generation = 0
        self.cursors: set[str] = set()
        self.backend_pid: int | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        conn = await connect(self.url, "PostgreSQL (cursor host)")
        try:
            with translated("PostgreSQL (cursor host)"):
                await conn.execute(BEGIN)
                for stmt in HOST_SETTINGS:
                    await conn.execute(stmt)
                await conn.execute(
                    sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(self.ef_search))
                )
                await conn.execute("SAVEPOINT sp")
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self.backend_pid = conn.info.backend_pid
        return conn

    async def _lost(self, exc: BaseException) -> None:
        log.warning(
            "cursor host %d lost its connection (%s); %d cursors will be rehydrated",
            self.index,
            exc,
            len(self.cursors),
        )
        self.cursors.clear()
        self.generation += 1
        if self._conn is not None:
            with contextlib.suppress(Exception):  # already broken: closing is best effort
                await self._conn.close()
        self._conn = None

    async def declare(
        self,
        query: sql.Composable,
        params: dict[str, Any],
        *,
        name: str | None = None,
        fetch: int = 0,
    ) -> tuple[str, list[tuple[Any, ...]]]:
        """DECLARE a cursor for ``query`` (named ``name``, or a fresh name) and, with ``fetch``,
        read its first rows; returns the name and those rows. One round trip: the DECLARE (in
        the savepoint open at rest, see ``KEEP``), the FETCH and the savepoint's renewal go as
        one pipeline (a DECLARE's parameters need the extended protocol, which takes one
        statement per message). Side by side in one process, starts alternating between this
        and two round trips: 0.87-1.16 ms against 1.02-1.32 ms for the declare (each run of
        600). A connection found dead is replaced once; ``DatabaseUnavailable`` if PostgreSQL
        cannot be reached."""
        name = name or new_cursor_name()
        stmt = sql.SQL("DECLARE {} NO SCROLL CURSOR FOR {}").format(sql.Identifier(name), query)
        rows: list[tuple[Any, ...]] = []
        async with self._lock:
            for attempt in (1, 2):
                conn = await self._connection()
                try:
                    async with conn.pipeline():
                        await conn.execute(stmt, params)
                        cur = await conn.execute(fetch_statement(name, fetch)) if fetch else None
                        await conn.execute("RELEASE SAVEPOINT sp")
                        await conn.execute("SAVEPOINT sp")
                    rows = await cur.fetchall() if cur is not None else []
                    break
                except psycopg.Error as exc:
                    if not connection_lost(exc):
                        await self._rollback(conn)
                        error = domain_error(exc)
                        if error is None:
                            raise
                        raise error from exc
                    await self._lost(exc)
                    if attempt == 2:
                        raise DatabaseUnavailable(
                            f"PostgreSQL (cursor host) is unavailable: {exc}".strip()
                        ) from exc
            self.cursors.add(name)
        return name, rows

    async def fetch(self, name: str, count: int) -> list[tuple[Any, ...]]:
        """FETCH ``count`` rows; raises CursorLost if the cursor is gone."""
        if name not in self.cursors:
            raise CursorLost(name)
        # One round trip: the three statements go as one simple-protocol message.
        stmt = sql.SQL("{}; " + KEEP).format(fetch_statement(name, count))
        async with self._lock:
            conn = await self._connection()
            try:
                cur = await conn.execute(stmt)
                rows = await cur.fetchall()
            except psycopg.OperationalError as exc:
                await self._lost(exc)
                raise CursorLost(str(exc)) from exc
            except psycopg.Error as exc:
                await self._rollback(conn)
                self.cursors.discard(name)
                raise CursorLost(f"{name}: {exc}") from exc
        return rows

    async def close(self, names: Sequence[str]) -> None:
        live = [n for n in names if n in self.cursors]
        if not live:
            return
        stmt = sql.SQL("{}; " + KEEP).format(
            sql.SQL("; ").join(sql.SQL("CLOSE {}").format(sql.Identifier(n)) for n in live)
        )
        async with self._lock:
            for n in live:
                self.cursors.discard(n)
            if self._conn is None or self._conn.closed:
                return
            try:
                await self._conn.execute(stmt)
            except psycopg.OperationalError as exc:
                await self._lost(exc)
            except psycopg.Error:
                await self._rollback(self._conn)
            if not self.cursors:
                await self._recycle()

    async def recycle(self) -> None:
        """Drop every cursor and start a new transaction, releasing the table locks it held
        (a DROP of a collection waits for them). Handles rehydrate on their next use."""
        async with self._lock:
            if self._conn is None or self._conn.closed:
                return
            if self.cursors:
                self.cursors.clear()
                self.generation += 1
            await self._recycle()

    async def _recycle(self) -> None:
        """With no cursors left, start a fresh transaction: nothing holds old state around."""
        assert self._conn is not None
        try:
            await self._conn.execute(f"COMMIT; {BEGIN}; SAVEPOINT sp")
        except psycopg.Error as exc:
            await self._lost(exc)

    async def _rollback(self, conn: psycopg.AsyncConnection[Any]) -> None:
        try:
            await conn.execute("ROLLBACK TO SAVEPOINT sp")
        except psycopg.Error as exc:
            await self._lost(exc)

    async def shutdown(self) -> None:
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()
            self._conn = None
            self.cursors.clear()


class CursorHosts:
    """The set of hosts of one server process: ``count`` on each replica in rotation and, as
    the fallback, ``count`` on the primary (connected when first used). A new cursor goes to the
    least loaded host of a replica in rotation, else of the primary."""

    def __init__(
        self, url: str, count: int, ef_search: int, replicas: Replicas | None = None
    ) -> None:
        self.replicas = replicas
        count = max(1, count)
        self.hosts = [CursorHost(url, i, ef_search) for i in range(count)]
        for r in replicas.replicas if replicas is not None else []:
            self.hosts += [CursorHost(r.url, len(self.hosts), ef_search, r) for _ in range(count)]

    def pick(self, *, on_primary: bool = False, skip: Sequence[Replica] = ()) -> CursorHost:
        """The least loaded host of a replica in rotation (not in ``skip``), else of the
        primary."""
        if not on_primary:
            usable = [
                h
                for h in self.hosts
                if h.replica is not None and h.replica.in_rotation and h.replica not in skip
            ]
            if usable:
                return min(usable, key=lambda h: (len(h.cursors), h.index))
        return min(
            (h for h in self.hosts if h.replica is None), key=lambda h: (len(h.cursors), h.index)
        )

    async def declare(
        self,
        query: sql.Composable,
        params: dict[str, Any],
        *,
        on_primary: bool = False,
        name: str | None = None,
        fetch: int = 0,
        host: CursorHost | None = None,
    ) -> tuple[CursorHost, str, list[tuple[Any, ...]]]:
        """DECLARE (and, with ``fetch``, read the first rows: ``CursorHost.declare``) on the
        host ``pick`` gives. On a replica the cursor must see everything the primary holds now
        (the handle's delivery records, the rows upserted before the query started): the
        replica first replays past the primary's position, or another host is taken. A replica
        that cannot be reached leaves the rotation; the primary is the last resort, so no
        request fails while some server can serve it. ``host``: on that host of the primary
        (one ``pick`` gave), no other."""
        if host is not None:
            assert host.replica is None, "a replica's host is taken by declare, not given"
            return host, *await host.declare(query, params, name=name, fetch=fetch)
        position: int | None = None
        skip: list[Replica] = []
        while True:
            host = self.pick(on_primary=on_primary, skip=skip)
            replica = host.replica
            if replica is None or self.replicas is None:
                return host, *await host.declare(query, params, name=name, fetch=fetch)
            skip.append(replica)
            if position is None:
                position = await self.replicas.position()
            if not await self.replicas.caught_up(replica, position):
                continue
            try:
                return host, *await host.declare(query, params, name=name, fetch=fetch)
            except DatabaseUnavailable as exc:
                self.replicas.take_out(replica, f"unreachable: {exc}")

    async def recycle(self) -> None:
        await asyncio.gather(*(h.recycle() for h in self.hosts))

    async def shutdown(self) -> None:
        await asyncio.gather(*(h.shutdown() for h in self.hosts), return_exceptions=True)
