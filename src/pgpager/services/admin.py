"""Operator views and actions: handles (list, inspect, stop, sweep), stored queries (list,
inspect, delete) and the state of the whole installation. The CLI calls these; an admin HTTP
API can call the same functions. An operator sees every API key's handles and queries."""

from __future__ import annotations

from dataclasses import dataclass

from pgpager import migrations
from pgpager.errors import ConfigurationError, HandleNotFound
from pgpager.services.auth import OPERATOR
from pgpager.services.stored_queries import StoredQueries
from pgpager.services.sweeper import Sweeper, SweepReport
from pgpager.settings import Settings
from pgpager.store import admin as store
from pgpager.store import collections, sessions, stored
from pgpager.store.admin import Backend, Instance, ServerInfo
from pgpager.store.database import SERVER_APPLICATION_PREFIX, Database, server_application_name
from pgpager.store.sessions import Session
from pgpager.store.stored import StoredQuery

STOP_REASON = "stopped by an operator (CLI)"


# --- handles ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandleDetail:
    session: Session
    backend: Backend | None
    cursor: str  # open | closed | none | lost | unknown
    cursor_detail: str


def assess_cursor(session: Session, backend: Backend | None) -> tuple[str, str]:
    """Is the handle's cursor open? ``pg_cursors`` is visible only inside the backend that holds
    the cursor, so this is inferred from ``pg_stat_activity``: the owner's cursor host is alive,
    still in the transaction the cursor was last read in, and holds a snapshot."""
    if session.state != "active":
        return "closed", f"the handle is {session.state}; its cursor is closed"
    pid = session.owner_pid
    if pid is None:
        return "none", "no cursor: the next request declares one (rehydrates from the row)"
    if backend is None:
        return "lost", (
            f"backend {pid} is gone, and the cursor with it: the next request rehydrates the "
            "handle from its row"
        )
    expected = server_application_name(session.owner_instance or "")
    if backend.application_name != expected:
        return "unknown", (
            f"backend {pid} is alive but its application_name is "
            f"{backend.application_name!r}, not {expected!r}"
        )
    if backend.xact_start is None or backend.xact_start > session.last_used_at:
        return "lost", (
            f"backend {pid} is no longer in the transaction the cursor lived in: the next "
            "request rehydrates the handle"
        )
    if backend.backend_xmin is None:
        return "lost", (
            f"backend {pid} holds no snapshot, so no open cursor: the next request "
            "rehydrates the handle"
        )
    return "open", (
        f"backend {pid} of server {session.owner_instance} is in the transaction holding the "
        f"cursor (since {backend.xact_start:%Y-%m-%d %H:%M:%S %Z}) and holds back VACUUM at "
        f"xmin {backend.backend_xmin}"
    )


@dataclass(frozen=True)
class StopOutcome:
    id: str
    stopped: bool
    state: str
    owner_instance: str | None


# --- the installation ----------------------------------------------------------------------
@dataclass(frozen=True)
class Status:
    server: ServerInfo
    schema_revision: str | None
    schema_head: str | None
    collections: int | None
    vectors: int | None
    vectors_counted: str  # "estimate" (statistics) or "exact" (count(*))
    handles: dict[str, int]
    stored_queries: dict[str, int]
    servers: list[Instance]
    handle_owners: dict[str | None, int]

    @property
    def schema_current(self) -> bool:
        return self.schema_revision is not None and self.schema_revision == self.schema_head

    @property
    def orphaned_owners(self) -> list[str]:
        """Instances owning active handles that are not connected: their handles rehydrate on
        the next request to any server."""
        connected = {s.instance for s in self.servers}
        return sorted(o for o in self.handle_owners if o is not None and o not in connected)


class Admin:
    """Operator views and actions; an operator sees every API key's handles and queries."""

    def __init__(
        self, db: Database, settings: Settings, sweeper: Sweeper, stored: StoredQueries
    ) -> None:
        self.db = db
        self.settings = settings
        self.sweeper = sweeper
        self.stored = stored

    async def ping(self) -> None:
        """Whether PostgreSQL answers (``DatabaseUnavailable`` if not)."""
        await self.db.ping()

    async def require_schema(self) -> str:
        """The schema revision, if it is the one this pgpager was built for; else a clear error."""
        revision = await store.schema_revision(self.db)
        head = migrations.head()
        if revision is None:
            raise ConfigurationError(
                "the database has no pgpager schema yet: run 'pgpager db upgrade' "
                "(or start 'pgpager serve', which migrates)"
            )
        if revision != head:
            raise ConfigurationError(
                f"the database schema is at revision {revision} but this pgpager expects {head}: "
                "run 'pgpager db upgrade' with the newer of the two pgpager versions"
            )
        return revision

    async def list_handles(
        self,
        *,
        collection: str | None = None,
        state: str | None = None,
        owner: str | None = None,
        idle_over_s: float | None = None,
        limit: int = 1000,
    ) -> list[Session]:
        return await sessions.list_sessions(
            self.db,
            collection=collection,
            state=state,
            owner=owner,
            idle_over_s=idle_over_s,
            limit=limit,
        )

    async def get_handle(self, handle: str) -> Session:
        session = await sessions.get(self.db, handle)
        if session is None:
            raise HandleNotFound(f"no resumable query with handle {handle!r}")
        return session

    async def handle_detail(self, handle: str) -> HandleDetail:
        session = await self.get_handle(handle)
        backend = None
        if session.owner_pid is not None:
            backend = (await store.backends(self.db, [session.owner_pid])).get(session.owner_pid)
        cursor, detail = assess_cursor(session, backend)
        return HandleDetail(session, backend, cursor, detail)

    async def find_handles(self, handles: list[str]) -> list[Session]:
        """The sessions of these handles; every one must exist."""
        found: list[Session] = []
        missing: list[str] = []
        for h in handles:
            s = await sessions.get(self.db, h)
            if s is None:
                missing.append(h)
            else:
                found.append(s)
        if missing:
            raise HandleNotFound(
                f"no resumable query with handle {', '.join(repr(m) for m in missing)}",
                handles=missing,
            )
        return found

    async def stop_handles(
        self, handles: list[str], reason: str = STOP_REASON
    ) -> list[StopOutcome]:
        """Mark active and exhausted handles stopped, as a client's stop does; their servers
        hear it (NOTIFY) and close the cursors.

        A handle that is already closed is left as it is and reported with its state."""
        out: list[StopOutcome] = []
        for h in handles:
            closed = await sessions.close(self.db, h, "stopped", reason)
            if closed is not None:
                out.append(StopOutcome(h, True, "stopped", closed.owner_instance))
                continue
            s = await self.get_handle(h)
            out.append(StopOutcome(h, False, s.state, s.owner_instance))
        return out

    async def sweep(self, *, dry_run: bool) -> SweepReport:
        """One sweep from outside a server: this process holds no cursors; servers close theirs
        when they hear of the closed handles."""
        return await self.sweeper.sweep_once(dry_run=dry_run)

    async def status(self, *, exact: bool = False) -> Status:
        server = await store.server_info(self.db)
        revision = await store.schema_revision(self.db)
        head = migrations.head()
        servers = await store.server_instances(self.db, SERVER_APPLICATION_PREFIX)
        if revision is None:
            return Status(server, None, head, None, None, "estimate", {}, {}, servers, {})
        cols = await collections.list_all(self.db)
        rows = await (store.exact_rows(self.db, cols) if exact else store.estimated_rows(self.db))
        return Status(
            server=server,
            schema_revision=revision,
            schema_head=head,
            collections=len(cols),
            vectors=sum(rows.values()),
            vectors_counted="exact" if exact else "estimate",
            handles=await store.session_counts(self.db),
            stored_queries=await stored.state_counts(self.db),
            servers=servers,
            handle_owners=await store.handle_owners(self.db),
        )

    async def list_stored_queries(self, *, limit: int = 100) -> list[StoredQuery]:
        """Every API key's unexpired stored queries, newest first."""
        return await self.stored.list_queries(OPERATOR, limit=limit)

    async def stored_query(self, query_id: str) -> StoredQuery:
        """One stored query of any key, expired or not, with its state made true."""
        return await self.stored.current(OPERATOR, query_id, expired_ok=True)

    async def delete_stored_query(self, query_id: str) -> StoredQuery:
        """Delete a stored query and its rows. A server still running it finds it gone when it
        writes its rows, and stops."""
        return await self.stored.delete(OPERATOR, query_id)
