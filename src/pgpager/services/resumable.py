"""Resumable queries (DESIGN 3): a handle is a row in the sessions table plus a cached cursor.

A handle goes through two phases. The *index* phase reads an HNSW cursor (relaxed order)
through a small re-sorting window. When the index scan ends (pgvector's iterative scan stops
silently at its limits), the *exact* phase declares a cursor that sorts every matching row not
yet delivered. A restrictive filter starts in the exact phase directly. Delivered ids are
recorded in ``query_session_rows``, whose primary key guarantees that no row is delivered twice;
that record is also what a rehydrated cursor (after a restart, a lost connection, or a request
reaching another instance) uses to skip what was already delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from psycopg import sql

from pgpager import metrics, window
from pgpager.cursors import CursorHost, CursorHosts, CursorLost, new_cursor_name
from pgpager.errors import (
    DatabaseUnavailable,
    HandleClosed,
    HandleNotFound,
    InvalidRequest,
    TooManyHandles,
)
from pgpager.services import validation
from pgpager.services.deliveries import Deliveries
from pgpager.services.embedding import Embedder
from pgpager.settings import Settings
from pgpager.store import collections, pages, sessions
from pgpager.store.collections import Collection
from pgpager.store.database import Database
from pgpager.store.filters import CompiledFilter, compile_filter
from pgpager.store.search import (
    SKIP_DELIVERED,
    SKIP_DELIVERED_EACH,
    SKIP_NOTHING,
    Hit,
    Include,
    hit,
    nearest,
)
from pgpager.store.search import params as search_params
from pgpager.store.sessions import Session

log = logging.getLogger(__name__)

MAX_BATCH = 1000
NOTHING_EXTRA = Include()
# Rows read ahead of what is delivered and re-sorted, so that the relaxed-order HNSW scan's
# local disorder does not reach the client.
WINDOW = 64
# The index phase serves at least this many rows (where HNSW order is near exact), whatever
# the share of the collection that is.
MIN_INDEX_ROWS = 1000
# Rows read beyond what a call needs (and beyond the window, in the index phase) whenever the
# cursor is read: most `next` calls then find their rows already here and cost one round trip
# (the delivery record) instead of two.
READ_AHEAD = 64
# A start counts the active handles only when its last count no longer bounds them under the
# cap (store/sessions.HandleCount), and at least this often: handles made active other than by
# a start (rows inserted by hand) are counted against the cap within this many seconds.
HANDLE_RECOUNT_S = 10.0


@dataclass
class LiveCursor:
    """The cache beside a handle's row: its cursor, a snapshot of the row taken when the cursor
    was declared (query, owner key, limits), how many rows it delivered, rows read but not sent."""

    host: CursorHost
    name: str
    generation: int
    phase: str
    collection: Collection
    session: Session
    position: int
    buffer: list[Hit] = field(default_factory=list)
    ended: bool = False
    """The cursor has no more rows (known from a read: buffered rows may still be due)."""

    @property
    def valid(self) -> bool:
        return self.host.generation == self.generation and self.name in self.host.cursors


def nearest_first(h: Hit) -> tuple[float, str]:
    return (h.distance, h.id)


@dataclass(frozen=True)
class Page:
    handle: str
    results: list[Hit]
    state: str
    position: int


@dataclass(frozen=True)
class HandleView:
    """A handle as callers see it, made once from its ``Session``: the HTTP status of a handle
    and the CLI's ``handles list/show`` both render this view."""

    id: str
    collection: str
    namespace: str
    state: str
    state_reason: str | None
    phase: str
    position: int
    top_k: int
    filter: str | None
    include: dict[str, bool]
    created_at: dt.datetime
    last_used_at: dt.datetime
    age_s: float
    idle_s: float
    max_idle_s: int
    max_lifetime_s: int
    expires_at: dt.datetime | None
    """When the handle expires unless it is used again; None once it is closed."""
    closed_at: dt.datetime | None
    owner_instance: str | None
    owner_pid: int | None
    api_key_id: str | None

    @classmethod
    def of(cls, s: Session) -> HandleView:
        q = s.query
        return cls(
            id=s.id,
            collection=s.collection,
            namespace=s.namespace,
            state=s.state,
            state_reason=s.state_reason,
            phase=s.phase,
            position=s.position,
            top_k=int(q.get("top_k", 0)),
            filter=q.get("filter"),
            include=q.get("include", {}),
            created_at=s.created_at,
            last_used_at=s.last_used_at,
            age_s=round(s.age_s, 3),
            idle_s=round(s.idle_s, 3),
            max_idle_s=s.max_idle_s,
            max_lifetime_s=s.max_lifetime_s,
            expires_at=s.expires_at if s.state == "active" else None,
            closed_at=s.closed_at,
            owner_instance=s.owner_instance,
            owner_pid=s.owner_pid,
            api_key_id=s.api_key_id,
        )

    def expires_in_s(self, now: dt.datetime) -> float | None:
        return None if self.expires_at is None else (self.expires_at - now).total_seconds()


def cursor_query(
    c: Collection, include: Include, where: Any, *, phase: str, rehydrate: bool
) -> sql.Composed:
    """The SELECT a handle's cursor is declared for. A fresh index cursor has nothing to skip;
    a rehydrated one probes each streamed row against what the handle delivered; an exact cursor
    leaves those rows out with one anti join (search.sql says why each has its shape)."""
    if phase == "exact":
        return nearest(c, include=include, where=where, exact=True, skip=SKIP_DELIVERED)
    skip = SKIP_DELIVERED_EACH if rehydrate else SKIP_NOTHING
    return nearest(c, include=include, where=where, skip=skip)


def owner_pid(host: CursorHost) -> int | None:
    """The backend a handle's row names as holding its cursor: only a cursor on the primary
    names one (a standby's pid means nothing on the primary, whose sweeper would take the
    handle for an orphan)."""
    return host.backend_pid if host.replica is None else None


def check_k(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BATCH:
        raise InvalidRequest(f"{what} must be an integer between 1 and {MAX_BATCH}", field=what)
    return value


class ResumableQueries:
    """The resumable-query service of one server process."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        hosts: CursorHosts,
        listen_url: str,
        embedder: Embedder,
    ) -> None:
        self.db = db
        self.embedder = embedder
        self.listen_url = listen_url
        self.settings = settings
        self.hosts = hosts
        self.live: dict[str, LiveCursor] = {}
        self.deliveries = Deliveries(db, sync_commit=settings.delivery_sync_commit)
        self._locks: dict[str, list[Any]] = {}  # handle -> [lock, holders and waiters]
        self._handle_count: sessions.HandleCount | None = None  # see HANDLE_RECOUNT_S

    # --- public operations -----------------------------------------------------------------
    async def start(
        self,
        collection: str,
        *,
        vector: Any,
        data: Any = None,
        top_k: int,
        namespace: str | None = None,
        filter: str | None = None,
        include: Include = NOTHING_EXTRA,
        max_idle: int | None = None,
        api_key_id: str | None = None,
    ) -> Page:
        """Open a handle for the query ``vector``, or the text ``data`` embedded with the
        collection's model. The session keeps the vector, never the text: a rehydrated handle
        does not embed again (a model upgrade cannot shift a running handle)."""
        check_k(top_k, "top_k")
        ns = validation.namespace(namespace)
        idle = self._max_idle(max_idle)
        where = compile_filter(filter)  # a bad filter fails before anything is written
        c, estimate = await collections.find_with_estimate(self.db, collection)
        q = await self.embedder.query_vector(c, vector=vector, data=data)

        index_rows = await self._index_rows(c, ns, where, estimate)
        exact = index_rows == 0
        handle = secrets.token_hex(24)  # 192 random bits; never starts with "-" (CLI arguments)
        query = {
            "vector": [float(x) for x in q],
            "top_k": top_k,
            "filter": filter or None,
            "index_rows": index_rows,
            "include": {
                "vectors": include.vectors,
                "metadata": include.metadata,
                "data": include.data,
            },
        }
        values: dict[str, Any] = {
            "id": handle,
            "collection": c.name,
            "namespace": ns,
            "query": query,
            "phase": "exact" if exact else "index",
            "max_idle_s": idle,
            "max_lifetime_s": self.settings.max_handle_lifetime_s,
            "owner_instance": self.settings.instance_id,
            "api_key_id": api_key_id,
        }
        async with self._exclusive(handle):
            if exact:
                host = self.hosts.pick(on_primary=self.settings.handles_on_primary)
                session = await self._insert(values, host, new_cursor_name())
                assert session.cursor_name is not None
                live = await self._declare(
                    session, "exact", c, rehydrate=False, position=0, name=session.cursor_name
                )
                return await self._continue(live, top_k)
            return await self._start_index_phase(values, c, top_k)

    async def _insert(
        self,
        values: dict[str, Any],
        host: CursorHost,
        cursor_name: str,
        first: Sequence[str] | Awaitable[Sequence[str]] = (),
    ) -> Session:
        """The handle's row (naming the cursor that serves it, so no second write is needed),
        and the record of the ids of its first page, ``first`` (which may still be being read),
        in one transaction."""
        cap = self.settings.max_active_handles
        owner = {"owner_pid": owner_pid(host), "cursor_name": cursor_name}
        known = self._handle_count
        if known is not None and time.monotonic() - known.taken > HANDLE_RECOUNT_S:
            known = None
        session, count = await sessions.insert_with_first_page(
            self.db, cap, first, known, **values, **owner
        )
        if self._handle_count is None or count.admissions >= self._handle_count.admissions:
            self._handle_count = count
        if session is None:
            raise TooManyHandles(
                f"{cap} resumable queries are active, the limit: stop handles you no longer "
                "need, or raise PGPAGER_MAX_ACTIVE_HANDLES",
                limit=cap,
            )
        metrics.handle_events.labels("started").inc()
        return session

    async def _start_index_phase(self, values: dict[str, Any], c: Collection, top_k: int) -> Page:
        """Declare the cursor and read the first page with the window behind it (one round
        trip), then write the handle's row and the first page's record together: a start
        commits once. A cursor whose scan ends within that read leaves the page to the exact
        phase, as any cursor does."""
        handle = values["id"]
        now = dt.datetime.now(dt.UTC)
        provisional = Session(
            **values,
            position=0,
            state="active",
            state_reason=None,
            created_at=now,
            last_used_at=now,
            owner_pid=None,
            cursor_name=None,
            closed_at=None,
            now=now,
            overdue_reason=None,
        )
        # On the primary the host is known before the DECLARE, so the handle's row is written
        # meanwhile, on a pool connection (its transaction then waits for the first page, to
        # record it and commit once). A replica's host is known only once it has caught up.
        host = self.hosts.pick(on_primary=self.settings.handles_on_primary)
        early = host.replica is None
        page_ids: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        name = new_cursor_name()
        writing = asyncio.create_task(self._insert(values, host, name, page_ids)) if early else None
        try:
            live = await self._declare(
                provisional,
                "index",
                c,
                rehydrate=False,
                position=0,
                name=name,
                # The first page is the nearest top_k of what one HNSW search finds (ef_search
                # rows; a row past them starts a second search, which costs about as much
                # again), with at least a head window (pgpager.window) behind it.
                prefetch=max(top_k + window.WINDOW, self.settings.hnsw_ef_search),
                record_owner=False,
                host=host if early else None,
            )
        except BaseException:
            if writing is not None:
                page_ids.cancel()  # the row's transaction rolls back
                await asyncio.gather(writing, return_exceptions=True)
            raise
        first: list[Hit] = []
        if not live.ended:
            first, live.buffer = live.buffer[:top_k], live.buffer[top_k:]
        ids = [h.id for h in first]
        page_ids.set_result(ids)
        try:
            if writing is not None:
                session = await writing
            else:
                session = await self._insert(values, live.host, live.name, ids)
        except BaseException:
            await self.drop_local([handle])
            raise
        pid = owner_pid(live.host)
        if session.owner_pid != pid:
            # The DECLARE opened (or replaced) the host's connection after the row was written:
            # the row names the backend that holds the cursor (the sweeper reclaims the handle
            # when that backend is gone). The start has committed; failing here would not undo it.
            try:
                await sessions.set_owner(
                    self.db,
                    handle,
                    phase="index",
                    owner_instance=self.settings.instance_id,
                    owner_pid=pid,
                    cursor_name=live.name,
                )
                session = dataclasses.replace(session, owner_pid=pid)
            except DatabaseUnavailable as exc:
                log.warning(
                    "handle %s: its row does not name its cursor's backend: %s", handle[:8], exc
                )
        live.session = session
        if not first:
            return await self._continue(live, top_k)
        live.position = session.position
        return Page(handle, first, "active", live.position)

    async def next(self, handle: str, additional_k: int, api_key_id: str | None) -> Page:
        check_k(additional_k, "additional_k")
        started = time.perf_counter()
        async with self._exclusive(handle):
            live = self.live.get(handle)
            if live is not None and live.valid:
                # Hot path: the cursor is here. Whether the handle is still open and within
                # its limits is checked by the delivery record, in the same round trip as the
                # write.
                if live.session.api_key_id not in (None, api_key_id):
                    raise HandleNotFound(f"no resumable query with handle {handle!r}")
            else:
                live = await self._rehydrate(handle, api_key_id)
                if live is None:
                    return Page(
                        handle, [], "exhausted", (await self._session(handle, api_key_id)).position
                    )
            page = await self._continue(live, additional_k)
        metrics.next_latency.observe(time.perf_counter() - started)
        return page

    async def stop(self, handle: str, api_key_id: str | None) -> Session:
        """Stop an active or exhausted handle, as Upstash frees it: its next ``next``, and a
        second stop, fail with 410 whether or not it had delivered every row."""
        async with self._exclusive(handle):
            session = await self._session(handle, api_key_id)
            self._check_open(session)
            if await self._close(handle, "stopped", "stopped by the client") is None:
                # Closed meanwhile elsewhere (CLI, sweeper, another instance): say how.
                self._check_open(await self._session(handle, api_key_id))
        return await self._session(handle, api_key_id)

    async def status(self, handle: str, api_key_id: str | None) -> Session:
        return await self._session(handle, api_key_id)

    async def drop_local(self, handles: list[str]) -> int:
        """Close this instance's cursors of these handles (closed elsewhere, or moved)."""
        by_host: dict[int, list[str]] = {}
        dropped = 0
        for h in handles:
            live = self.live.pop(h, None)
            if live is not None:
                by_host.setdefault(live.host.index, []).append(live.name)
                dropped += 1
        for index, names in by_host.items():
            await self.hosts.hosts[index].close(names)
        metrics.handles_active.set(len(self.live))
        return dropped

    async def drop_closed_elsewhere(self) -> int:
        """Close the cursors of handles closed elsewhere (CLI, another instance) or taken over by
        another instance since: the sweeper's backstop for a missed notification."""
        gone = await sessions.closed_among(self.db, list(self.live), self.settings.instance_id)
        return await self.drop_local(gone)

    async def follow_notifications(self) -> None:
        """Act on what other processes say about handles (NOTIFY): close this instance's cursor
        of a handle closed elsewhere at once, and recycle the hosts when a drop asks for it.
        Runs until cancelled; the runtime restarts it if its connection is lost."""
        async for payload in sessions.notifications(self.listen_url):
            if payload == sessions.RECYCLE:
                await self.recycle_hosts()
            elif payload in self.live:
                await self.drop_local([payload])
                log.info("handle %s was closed elsewhere; closed its cursor", payload[:8])

    async def recycle_hosts(self) -> None:
        """Release every table lock the cursor hosts hold (asked for by a collection drop)."""
        count = len(self.live)
        await self.hosts.recycle()
        self.live.clear()
        metrics.handles_active.set(0)
        log.info("cursor hosts recycled for a collection drop; %d handles will rehydrate", count)

    # --- internals ---------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _exclusive(self, handle: str) -> AsyncIterator[None]:
        """One operation at a time per handle on this instance: two concurrent ``next`` calls
        never interleave. A lock lives only while someone holds or waits for it."""
        entry = self._locks.get(handle)
        if entry is None:
            entry = self._locks[handle] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[handle]

    def _max_idle(self, max_idle: int | None) -> int:
        if max_idle is None:
            return self.settings.max_idle_default_s
        cap = self.settings.max_idle_cap_s
        if isinstance(max_idle, bool) or not isinstance(max_idle, int) or not 1 <= max_idle <= cap:
            raise InvalidRequest(
                f"max_idle must be between 1 and {cap} seconds (PGPAGER_MAX_IDLE_CAP_S)",
                field="max_idle",
            )
        return max_idle

    async def _session(self, handle: str, api_key_id: str | None) -> Session:
        session = await sessions.get(self.db, handle)
        # A handle belongs to the key that opened it; to any other key it does not exist.
        if session is None or (session.api_key_id is not None and session.api_key_id != api_key_id):
            raise HandleNotFound(f"no resumable query with handle {handle!r}")
        return session

    @staticmethod
    def _check_open(session: Session) -> None:
        if session.state in ("stopped", "expired"):
            raise HandleClosed(
                f"this handle is {session.state}: {session.state_reason}",
                state=session.state,
                reason=session.state_reason,
            )

    async def _close(self, handle: str, state: str, reason: str) -> sessions.Closed | None:
        closed = await sessions.close(self.db, handle, state, reason)
        await self.drop_local([handle])
        if closed is not None:
            metrics.handle_events.labels(state).inc()
            log.info("handle %s %s: %s", handle[:8], state, reason)
        return closed

    async def _index_rows(
        self, c: Collection, namespace: str, where: CompiledFilter, estimate: float
    ) -> int:
        """How many rows the index phase serves before the exact phase takes over; 0 when the
        filter (and namespace) match few enough rows for an exact plan from the start.

        Deep in a relaxed-order HNSW walk the order drifts (the graph leads to a farther region
        before a nearer one: recall of the first 10,000 rows of 100,000 was 0.82), and the exact
        phase costs one scan of the matching rows. Switching after ``index_phase_share`` of them
        spreads that scan over the rows already read, and every row past the switch is in exact
        order. The share is of the planner's estimate for the table: for a filtered query an
        upper bound (``estimate``), so the switch comes late rather than early. Whether few
        rows match, see ``pages.few_matching``."""
        cutoff = self.settings.flat_search_cutoff
        if not pages.surely_many(namespace, where, cutoff, estimate):
            async with self.db.connection() as conn:
                if await pages.few_matching(conn, c, namespace, where, cutoff, estimate=estimate):
                    return 0
        share = self.settings.index_phase_share
        return max(MIN_INDEX_ROWS, int(share * max(estimate, cutoff + 1)))

    def _params(self, session: Session, c: Collection) -> tuple[dict[str, Any], Include, Any]:
        q = session.query
        where = compile_filter(q.get("filter"))
        inc = q.get("include", {})
        include = Include(
            bool(inc.get("vectors")), bool(inc.get("metadata")), bool(inc.get("data"))
        )
        vector = np.asarray(q["vector"], dtype=np.float32)
        params = {**search_params(c, vector, session.namespace, where), "session_id": session.id}
        return params, include, where

    async def _declare(
        self,
        session: Session,
        phase: str,
        c: Collection,
        *,
        rehydrate: bool,
        position: int,
        name: str | None = None,
        prefetch: int = 0,
        record_owner: bool = True,
        host: CursorHost | None = None,
    ) -> LiveCursor:
        """A cursor for the handle on the least loaded host, named ``name`` (else a fresh
        name). With ``prefetch`` (index phase only) its first rows are read with the DECLARE
        and wait in the buffer. The handle's row is told its new owner unless it names it
        already (or, ``record_owner`` False, it is not written yet)."""
        params, include, where = self._params(session, c)
        query = cursor_query(c, include, where, phase=phase, rehydrate=rehydrate)
        host, name, rows = await self.hosts.declare(
            query,
            params,
            on_primary=self.settings.handles_on_primary,
            name=name,
            fetch=prefetch,
            host=host,
        )
        live = LiveCursor(
            host=host,
            name=name,
            generation=host.generation,
            phase=phase,
            collection=c,
            session=dataclasses.replace(session, phase=phase),
            position=position,
            # In nearest-first order, as _read keeps it (an index cursor's rows come relaxed).
            buffer=sorted((hit(r) for r in rows), key=nearest_first),
            ended=prefetch > 0 and len(rows) < prefetch,
        )
        self.live[session.id] = live
        owner = (self.settings.instance_id, owner_pid(host), name, phase)
        known = (session.owner_instance, session.owner_pid, session.cursor_name, session.phase)
        if record_owner and owner != known:
            await sessions.set_owner(
                self.db,
                session.id,
                phase=phase,
                owner_instance=self.settings.instance_id,
                owner_pid=owner_pid(host),
                cursor_name=name,
            )
        metrics.handles_active.set(len(self.live))
        if rehydrate:
            metrics.handle_events.labels("rehydrated").inc()
            log.info(
                "handle %s rehydrated on host %d at position %d (%s phase)",
                session.id[:8],
                host.index,
                position,
                phase,
            )
        return live

    async def _rehydrate(self, handle: str, api_key_id: str | None) -> LiveCursor | None:
        """A cursor for a handle whose cursor is not here (restart, lost connection, another
        instance). None if the handle is exhausted; an error if it is closed or overdue."""
        await self.drop_local([handle])
        session = await self._session(handle, api_key_id)
        if session.state == "exhausted":
            return None
        self._check_open(session)
        reason = session.overdue_reason
        if reason is not None:
            await self._close(handle, "expired", reason)
            raise HandleClosed(f"this handle expired: {reason}", state="expired", reason=reason)
        c = await collections.find(self.db, session.collection)
        return await self._declare(
            session, session.phase, c, rehydrate=session.position > 0, position=session.position
        )

    async def _redeclare(self, live: LiveCursor, phase: str, *, rehydrate: bool) -> LiveCursor:
        await self.drop_local([live.session.id])
        return await self._declare(
            live.session, phase, live.collection, rehydrate=rehydrate, position=live.position
        )

    async def _continue(self, live: LiveCursor, k: int) -> Page:
        handle = live.session.id
        out: list[Hit] = []
        try:
            live, exhausted = await self._fill(live, k, out)
            if exhausted:
                await self._close(handle, "exhausted", "every matching row was delivered")
        except Exception:
            # The cursor (and its window) may have read rows that were not recorded: drop it, so
            # that the next call rehydrates from what was recorded, with no gap.
            live = self.live.get(handle, live)
            await self.drop_local([handle])
            if not out:
                raise
            # Rows recorded as delivered must reach the caller, or they would be lost for good.
            log.warning(
                "handle %s: returning the %d rows recorded before an error",
                handle[:8],
                len(out),
                exc_info=True,
            )
            exhausted = False
        # A batch that spans the switch to the exact phase holds rows the index missed, closer
        # than its last ones: sorting keeps every batch in non-decreasing distance.
        out.sort(key=nearest_first)
        return Page(handle, out, "exhausted" if exhausted else "active", live.position)

    async def _fill(self, live: LiveCursor, k: int, out: list[Hit]) -> tuple[LiveCursor, bool]:
        """Read and record up to ``k`` rows into ``out``. Returns the handle's cursor (a new one
        if it was declared again) and whether the handle is exhausted."""
        handle = live.session.id
        retried = False
        index_rows = live.session.query.get("index_rows")
        while len(out) < k:
            if live.phase == "index" and index_rows and live.position >= index_rows:
                # Deep enough that the index walk drifts: exact order for the rest.
                live = await self._redeclare(live, "exact", rehydrate=False)
            need = k - len(out)
            try:
                batch, ended = await self._read(live, need)
            except CursorLost:
                if retried:
                    raise
                retried = True
                live = await self._redeclare(live, live.phase, rehydrate=True)
                continue
            if ended and live.phase == "index":
                # The HNSW scan is over; what it missed comes from the exact phase.
                live = await self._redeclare(live, "exact", rehydrate=False)
                continue
            if batch:
                active, fresh = await self.deliveries.record(handle, [h.id for h in batch])
                if not active:
                    await self._closed_meanwhile(live)
                out.extend(h for h in batch if h.id in fresh)
                live.position += len(fresh)
                if len(fresh) < len(batch):
                    # Someone else delivered some of these (another instance had the handle).
                    live.position = await sessions.count_delivered(self.db, handle)
            if ended:
                return live, True
        return live, False

    async def _closed_meanwhile(self, live: LiveCursor) -> None:
        """The delivery record refused: the handle was closed (CLI, sweeper, another instance) or
        ran past its limits since its cursor was read. Always raises."""
        handle = live.session.id
        await self.drop_local([handle])
        session = await self._session(handle, live.session.api_key_id)
        reason = session.overdue_reason if session.state == "active" else None
        if reason is not None:
            await self._close(handle, "expired", reason)
            raise HandleClosed(f"this handle expired: {reason}", state="expired", reason=reason)
        self._check_open(session)
        raise HandleClosed(f"this handle is {session.state}", state=session.state)

    async def _read(self, live: LiveCursor, need: int) -> tuple[list[Hit], bool]:
        """Up to ``need`` rows in distance order, and whether the cursor has ended."""
        if live.phase == "exact":
            # Exact order needs no window; reading ahead still saves the round trip.
            if len(live.buffer) < need and not live.ended:
                want = need - len(live.buffer) + READ_AHEAD
                rows = await live.host.fetch(live.name, want)
                live.buffer.extend(hit(r) for r in rows)
                live.ended = len(rows) < want
            batch, live.buffer = live.buffer[:need], live.buffer[need:]
            return batch, live.ended and not live.buffer
        want = need + WINDOW - len(live.buffer)
        ended = live.ended
        if want > 0 and not ended:
            want += READ_AHEAD
            rows = await live.host.fetch(live.name, want)
            live.buffer.extend(hit(r) for r in rows)
            ended = len(rows) < want
            # The window stays sorted between reads: only a read makes it need sorting again.
            live.buffer.sort(key=nearest_first)
        if ended:
            # Buffered rows are not delivered yet: the exact phase will return them in order.
            live.buffer.clear()
            return [], True
        batch, live.buffer = live.buffer[:need], live.buffer[need:]
        return batch, False
