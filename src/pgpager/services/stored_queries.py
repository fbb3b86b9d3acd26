"""Stored queries (Rockset style): run a SQL query or a vector search once, keep its rows in
PostgreSQL, and page them by cursor or offset at the same cost at any depth.

``StoredQueries`` runs the queries of this instance as named asyncio tasks (at most
``stored_query_concurrency`` at once, ``stored_query_concurrency_per_key`` per API key; the rest
wait QUEUED) and fails what is left when the server stops. A query whose instance died is
marked FAILED, never re-run: re-running a query the caller may have given up on would spend the
database's time on nobody's behalf.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import time
import uuid
from contextlib import AbstractAsyncContextManager, aclosing, nullcontext
from dataclasses import dataclass, field
from typing import Any

from pgpager import metrics
from pgpager.errors import (
    Forbidden,
    InvalidCursor,
    InvalidRequest,
    PgpagerError,
    QueryCancelled,
    QueryExpired,
    QueryFailed,
    QueryNotFound,
    QueryNotReady,
    QueryTimeout,
    SqlUnavailable,
)
from pgpager.replicas import Replicas
from pgpager.services import validation
from pgpager.services.auth import Principal
from pgpager.services.embedding import Embedder
from pgpager.settings import Settings
from pgpager.store import collections, sqltext, stored
from pgpager.store.database import Database
from pgpager.store.filters import compile_filter
from pgpager.store.search import Include
from pgpager.tasks import cancel_and_wait

log = logging.getLogger(__name__)


MAX_INITIAL_RESULTS = 100_000
DEFAULT_DOCS = 10_000
MAX_DOCS = 100_000
MAX_OFFSET = 1_000_000_000
MAX_SQL_LENGTH = 1_000_000
MAX_PARAMETERS = 1000
MIN_SCAN_TUPLES = 20_000
"""hnsw.max_scan_tuples of a stored vector search: at least this, or 4 x its limit."""

SHUTDOWN_REASON = "server stopped while the query ran"
DELETED_REASON = "deleted while it ran"
CANCELLED_REASON = "cancelled by its caller"

UNFINISHED = ("QUEUED", "RUNNING")


@dataclass(frozen=True)
class SqlQuery:
    query: str
    parameters: list[Any] = field(default_factory=list)
    """Values bound positionally to ``$1``, ``$2``, ...; or Rockset's named parameters
    (``{"name", "type", "value"}`` objects) bound where the text says ``:name``. Server-side
    either way, never spliced into the text."""
    default_row_limit: int | None = None
    """Keep at most this many rows when the query has no LIMIT of its own (Rockset's
    ``sql.default_row_limit``)."""


@dataclass(frozen=True)
class VectorSearch:
    """A nearest-neighbour search for ``vector``, or for the text ``data`` embedded with the
    collection's model."""

    collection: str
    vector: list[float] | None = None
    data: str | None = None
    limit: int = 10
    filter: str | None = None
    namespace: str | None = None
    include_vectors: bool = False
    include_metadata: bool = False
    include_data: bool = False


@dataclass(frozen=True)
class Started:
    query: stored.StoredQuery
    page: stored.Page
    next_cursor: str | None


@dataclass(frozen=True)
class PageOut:
    page: stored.Page
    total: int
    next_cursor_offset: int
    next_cursor: str | None


class Cursors:
    """Opaque, tamper-evident cursors: base64url(query uuid | ordinal | HMAC-SHA256[:16])."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def encode(self, query_id: str, ordinal: int) -> str:
        payload = uuid.UUID(query_id).bytes + ordinal.to_bytes(8, "big")
        token = base64.urlsafe_b64encode(payload + self._mac(payload))
        return token.rstrip(b"=").decode()

    def decode(self, query_id: str, token: str) -> int:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, binascii.Error):
            raw = b""
        if len(raw) != 40 or not hmac.compare_digest(raw[24:], self._mac(raw[:24])):
            raise InvalidCursor(
                "the cursor is not valid: pass a next_cursor exactly as this server returned it"
            )
        if raw[:16] != uuid.UUID(query_id).bytes:
            raise InvalidCursor(
                f"the cursor belongs to another query, not to {query_id}", query_id=query_id
            )
        return int.from_bytes(raw[16:24], "big")

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, b"pgpager-cursor\x00" + payload, hashlib.sha256).digest()[:16]


@dataclass(frozen=True)
class _SqlJob:
    original: str
    """The text as the caller sent it (error positions are given in it)."""
    bound: sqltext.Bound
    row_limit: int | None


@dataclass(frozen=True)
class _SearchJob:
    collection: collections.Collection
    vector: Any
    namespace: str
    where: Any
    include: Include
    limit: int


class StoredQueries:
    """The stored queries this instance runs: named tasks, cancelled and failed at shutdown."""

    def __init__(
        self,
        settings: Settings,
        database_url: str,
        db: Database,
        secret: stored.Secret,
        embedder: Embedder,
        replicas: Replicas | None = None,
    ) -> None:
        self.settings = settings
        self.replicas = replicas
        self.embedder = embedder
        self.database_url = database_url
        self.db = db
        self.secret = secret
        self.cursors = Cursors(secret.cursor_key)
        self.tasks: dict[str, asyncio.Task[PgpagerError | None]] = {}
        self._reasons: dict[str, str] = {}
        self._slots = asyncio.Semaphore(max(1, settings.stored_query_concurrency))
        # One more semaphore per API key (keys come from the settings: a bounded dict), taken
        # before a global slot: a key's queries past its cap wait without holding one.
        self._key_slots: dict[str, asyncio.Semaphore] = {}
        self._readers: set[str] = set()
        """Reader roles provisioned by this process (``stored.provision_reader``)."""
        self._provisioning = asyncio.Lock()
        self._limits = stored.ReaderLimits(
            temp_file_limit_mb=settings.sql_temp_file_limit_mb,
            work_mem_mb=settings.sql_work_mem_mb,
        )

    @property
    def _page_bytes(self) -> int:
        return self.settings.stored_query_max_page_mb * 1024 * 1024

    @property
    def instance_id(self) -> str:
        return self.settings.instance_id

    def submit(
        self, query_id: str, job: _SqlJob | _SearchJob, timeout_ms: int, *, key_id: str | None
    ) -> asyncio.Task[PgpagerError | None]:
        task = asyncio.create_task(
            self._run(query_id, job, timeout_ms, key_id), name=f"pgpager-stored-query-{query_id}"
        )
        self.tasks[query_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(query_id, None))
        return task

    async def cancel(self, query_id: str, reason: str) -> None:
        task = self.tasks.get(query_id)
        if task is None:
            return
        self._reasons[query_id] = reason
        task.cancel()
        await asyncio.wait([task], timeout=self.settings.stop_timeout_s)

    async def close(self) -> None:
        """Cancel the running queries, wait for them, and fail whatever is left."""
        for query_id in self.tasks:
            self._reasons[query_id] = SHUTDOWN_REASON
        await cancel_and_wait(list(self.tasks.values()), self.settings.stop_timeout_s)
        try:
            await stored.fail_instance(self.db, self.instance_id, SHUTDOWN_REASON)
        except Exception:
            log.exception("could not mark this instance's stored queries FAILED")

    def _key_slot(self, key_id: str | None) -> AbstractAsyncContextManager[Any]:
        """At most ``stored_query_concurrency_per_key`` running queries per API key, so that
        one key's slow queries cannot hold every global slot. Without keys there is one
        caller: the global limit alone."""
        if key_id is None:
            return nullcontext()
        slot = self._key_slots.get(key_id)
        if slot is None:
            cap = max(1, self.settings.stored_query_concurrency_per_key)
            slot = self._key_slots[key_id] = asyncio.Semaphore(cap)
        return slot

    async def _run(
        self, query_id: str, job: _SqlJob | _SearchJob, timeout_ms: int, key_id: str | None
    ) -> PgpagerError | None:
        """Run one query to COMPLETED or FAILED. Returns the error instead of raising it, so an
        async query's task never ends with an exception nobody retrieves."""
        started: float | None = None
        try:
            async with self._key_slot(key_id), self._slots:
                if not await stored.mark_running(self.db, query_id):
                    return QueryNotFound(f"stored query {query_id} was deleted before it ran")
                started = time.monotonic()
                async with asyncio.timeout(timeout_ms / 1000):
                    written = await self._execute(query_id, job, timeout_ms, started, key_id)
            if written is None:
                return QueryNotFound(f"stored query {query_id} was deleted while it ran")
            metrics.stored_queries.labels("COMPLETED").inc()
            return None
        except asyncio.CancelledError:
            await self._fail(query_id, self._reasons.pop(query_id, SHUTDOWN_REASON), started)
            raise
        except TimeoutError:
            error: PgpagerError = QueryTimeout(
                f"the query ran past its time limit of {timeout_ms} ms (timeout_ms)",
                timeout_ms=timeout_ms,
            )
        except PgpagerError as exc:
            error = exc
            if isinstance(job, _SqlJob) and "position" in exc.detail:
                line, column = sqltext.line_and_column(job.original, exc.detail["position"])
                exc.detail.update(line=line, column=column)
                exc.message += f" (line {line}, column {column})"
        except Exception:
            log.exception("stored query %s failed unexpectedly", query_id)
            error = PgpagerError("internal error while running the query; see the server log")
        await self._fail(query_id, error.message, started)
        error.detail.setdefault("query_id", query_id)
        return error

    async def _execute(
        self,
        query_id: str,
        job: _SqlJob | _SearchJob,
        timeout_ms: int,
        started: float,
        key_id: str | None,
    ) -> stored.Written | None:
        def elapsed_ms() -> int:
            return int((time.monotonic() - started) * 1000)

        settings = self.settings
        keep = {
            "max_rows": settings.stored_query_max_rows,
            "max_size_mb": settings.stored_query_max_size_mb,
            "max_row_kb": settings.stored_query_max_row_kb,
            "ttl_s": settings.stored_query_ttl_s,
        }
        if isinstance(job, _SqlJob):
            reader = await self._connect_reader(timeout_ms, key_id)
            try:
                rows = stored.sql_rows(
                    reader,
                    job.bound.text,
                    job.bound.values,
                    timeout_ms=timeout_ms,
                    row_limit=job.row_limit,
                    position=job.bound.original_position,
                )
                async with aclosing(rows) as chunks:
                    return await stored.write_rows(
                        self.database_url, query_id, chunks, elapsed_ms=elapsed_ms, **keep
                    )
            finally:
                await reader.close()
        hits = stored.search_rows(
            self.database_url,
            job.collection,
            vector=job.vector,
            namespace=job.namespace,
            where=job.where,
            include=job.include,
            limit=job.limit,
            exact_above=settings.flat_search_cutoff,
            # As offset pagination: the index serves up to query_maximum_results rows.
            index_limit=settings.query_maximum_results,
            ef_search=settings.hnsw_ef_search,
            max_scan_tuples=max(MIN_SCAN_TUPLES, 4 * job.limit),
            timeout_ms=timeout_ms,
        )
        async with aclosing(hits) as chunks:
            return await stored.write_rows(
                self.database_url, query_id, chunks, elapsed_ms=elapsed_ms, **keep
            )

    async def _connect_reader(self, timeout_ms: int, key_id: str | None) -> stored.Conn:
        """A connection as the key's own reader role, created and checked on first use."""
        role = stored.reader_role(key_id)
        configured = self.settings.sql_reader_password
        password = configured or self.secret.reader_password
        await self._provision(role, password)
        try:
            return await stored.connect_reader(
                self.database_url, role, password, timeout_ms=timeout_ms
            )
        except SqlUnavailable:
            # Provisioned again next time: the role may have been dropped meanwhile.
            self._readers.discard(role)
            if configured:
                raise
        # The managed password may never have been set on this role (a DBA created it), or
        # another pgpager database on the cluster set its own: set ours and try again.
        await self._provision(role, password)
        await stored.set_reader_password(self.db, role, password)
        return await stored.connect_reader(self.database_url, role, password, timeout_ms=timeout_ms)

    async def _provision(self, role: str, password: str) -> None:
        if role in self._readers:
            return
        async with self._provisioning:
            if role not in self._readers:
                await stored.provision_reader(self.db, role, password, self._limits)
                self._readers.add(role)

    async def _fail(self, query_id: str, reason: str, started: float | None) -> None:
        """FAILED, unless it has ended meanwhile (cancelled by its caller, say)."""
        elapsed = None if started is None else int((time.monotonic() - started) * 1000)
        try:
            failed = await stored.mark_failed(
                self.db,
                query_id,
                reason,
                ttl_s=self.settings.stored_query_ttl_s,
                elapsed_ms=elapsed,
            )
        except Exception:
            log.exception("could not mark stored query %s FAILED", query_id)
            failed = True
        if failed:
            metrics.stored_queries.labels("FAILED").inc()

    async def run(
        self,
        caller: Principal,
        spec: SqlQuery | VectorSearch,
        *,
        max_initial_results: int = DEFAULT_DOCS,
        run_async: bool = False,
        timeout_ms: int | None = None,
        client_timeout_ms: int | None = None,
    ) -> Started:
        """Start a stored query. Sync: wait for it and return its first rows. Async: return at
        once (state QUEUED or RUNNING), or, with ``client_timeout_ms``, wait that long for it
        and return its first rows if it finished by then."""
        settings = self.settings
        if not 0 <= max_initial_results <= MAX_INITIAL_RESULTS:
            raise InvalidRequest(
                f"max_initial_results must be between 0 and {MAX_INITIAL_RESULTS}",
                field="max_initial_results",
            )
        cap = settings.async_query_timeout_ms if run_async else settings.sql_statement_timeout_ms
        if timeout_ms is None:
            timeout_ms = cap
        if not 1 <= timeout_ms <= cap:
            setting = "ASYNC_QUERY_TIMEOUT_MS" if run_async else "SQL_STATEMENT_TIMEOUT_MS"
            more = "" if run_async else "; run it with async: true for longer"
            raise InvalidRequest(
                f"timeout_ms must be between 1 and {cap} (PGPAGER_{setting}){more}",
                field="timeout_ms",
                limit=cap,
            )
        job, request = await self._job(caller, spec)
        query_id = str(uuid.uuid4())
        # Not expiring while it may still run; the TTL counts from the end of the run.
        keep_s = settings.stored_query_ttl_s + timeout_ms / 1000 + settings.stop_timeout_s
        await stored.insert(
            self.db,
            query_id=query_id,
            kind="sql" if isinstance(spec, SqlQuery) else "vector_search",
            request=request,
            api_key_id=caller.key_id,
            owner_instance=self.instance_id,
            keep_s=keep_s,
        )
        task = self.submit(query_id, job, timeout_ms, key_id=caller.key_id)
        if run_async and not client_timeout_ms:
            return Started(await self._get(query_id), stored.Page(b"[]", 0), None)
        # asyncio.wait, not await: a client that hangs up does not cancel the run (its result
        # stays stored), and an async query is left running past the client's wait.
        wait_s = client_timeout_ms / 1000 if run_async and client_timeout_ms else None
        await asyncio.wait([task], timeout=wait_s)
        if not task.done():
            return Started(await self._get(query_id), stored.Page(b"[]", 0), None)
        if task.cancelled():
            raise await self._ended_early(query_id)
        error = task.result()
        if error is not None:
            raise error
        q = await self._get(query_id)
        page = await stored.read_page(
            self.db, query_id, 0, max_initial_results, max_bytes=self._page_bytes
        )
        total = q.results_total_doc_count or 0
        nxt = self.cursors.encode(query_id, page.count) if page.count < total else None
        return Started(q, page, nxt)

    async def page(
        self,
        caller: Principal,
        query_id: str,
        *,
        cursor: str | None = None,
        docs: int = DEFAULT_DOCS,
        offset: int = 0,
    ) -> PageOut:
        """``docs`` rows from the cursor's position (the first row without one) plus ``offset``."""
        if not 1 <= docs <= MAX_DOCS:
            raise InvalidRequest(f"docs must be between 1 and {MAX_DOCS}", field="docs")
        if not 0 <= offset <= MAX_OFFSET:
            raise InvalidRequest(f"offset must be between 0 and {MAX_OFFSET}", field="offset")
        if self.replicas is not None and self.replicas.replicas:
            served = await self.replicas.read(
                lambda db: self._completed_page(db, caller, query_id, cursor, docs, offset)
            )
            if served is not None:
                return served
        q = await self.current(caller, query_id)
        if q.state in UNFINISHED:
            raise QueryNotReady(
                f"stored query {query_id} is {q.state}: poll GET /v1/queries/{query_id} until it "
                "is COMPLETED",
                query_id=query_id,
                state=q.state,
            )
        if q.state == "CANCELLED":
            raise QueryCancelled(
                f"stored query {query_id} was cancelled, it has no results: {q.error}",
                query_id=query_id,
                state=q.state,
            )
        if q.state == "FAILED":
            raise QueryFailed(
                f"stored query {query_id} failed, it has no results: {q.error}",
                query_id=query_id,
                state=q.state,
            )
        start = (self.cursors.decode(query_id, cursor) if cursor else 0) + offset
        rows = await stored.read_page(
            self.db, query_id, start, start + docs, max_bytes=self._page_bytes
        )
        return self._page_out(q, start, rows)

    async def _completed_page(
        self,
        db: Database,
        caller: Principal,
        query_id: str,
        cursor: str | None,
        docs: int,
        offset: int,
    ) -> PageOut | None:
        """The page, read where ``db`` is (a replica), if the query shows there as COMPLETED,
        unexpired and the caller's: its rows were written in the transaction that completed
        it, so a replica that shows the state has the rows. None otherwise (a lagging replica,
        or a query that is not COMPLETED): the primary answers, with the reason."""
        q = await stored.get(db, query_id)
        if (
            q is None
            or q.state != "COMPLETED"
            or q.expired
            or (caller.key_id is not None and q.api_key_id != caller.key_id)
        ):
            return None
        start = (self.cursors.decode(query_id, cursor) if cursor else 0) + offset
        rows = await stored.read_page(db, query_id, start, start + docs, max_bytes=self._page_bytes)
        return self._page_out(q, start, rows)

    def _page_out(self, q: stored.StoredQuery, start: int, rows: stored.Page) -> PageOut:
        total = q.results_total_doc_count or 0
        nxt = start + rows.count
        return PageOut(
            page=rows,
            total=total,
            next_cursor_offset=nxt,
            next_cursor=self.cursors.encode(q.query_id, nxt) if nxt < total else None,
        )

    async def status(self, caller: Principal, query_id: str) -> stored.StoredQuery:
        return await self.current(caller, query_id)

    async def list_queries(
        self, caller: Principal, *, limit: int = 100, active: bool = False
    ) -> list[stored.StoredQuery]:
        """The caller's unexpired queries (only those QUEUED or RUNNING if ``active``), newest
        first (everyone's when auth is off)."""
        if not 1 <= limit <= 1000:
            raise InvalidRequest("limit must be between 1 and 1000", field="limit")
        return await stored.list_queries(
            self.db,
            api_key_id=caller.key_id,
            everyone=caller.key_id is None,
            limit=limit,
            active=active,
        )

    async def cancel_query(self, caller: Principal, query_id: str) -> stored.StoredQuery:
        """Stop a QUEUED or RUNNING query: it becomes CANCELLED (its record stays until it
        expires, with no rows). A query that has ended is left as it is. The state is set in
        the database first, so a run on another instance keeps nothing when it ends."""
        q = await self.current(caller, query_id, expired_ok=True)
        if q.state in UNFINISHED and await stored.mark_cancelled(
            self.db, query_id, CANCELLED_REASON, ttl_s=self.settings.stored_query_ttl_s
        ):
            metrics.stored_queries.labels("CANCELLED").inc()
            await self.cancel(query_id, CANCELLED_REASON)
        return await self._get(query_id)

    async def _ended_early(self, query_id: str) -> PgpagerError:
        """Why a query this request waited for was stopped before it finished."""
        q = await stored.get(self.db, query_id)
        if q is None:
            return QueryNotFound(f"stored query {query_id} was deleted while it ran")
        if q.state == "CANCELLED":
            return QueryCancelled(
                f"stored query {query_id} was cancelled while it ran", query_id=query_id
            )
        return QueryFailed(
            f"stored query {query_id} stopped before it finished: {q.error}", query_id=query_id
        )

    async def delete(self, caller: Principal, query_id: str) -> stored.StoredQuery:
        """Stop the query if it runs here, and delete it with its rows (expired ones too)."""
        q = await self._get_visible(caller, query_id)
        await self.cancel(query_id, DELETED_REASON)
        await stored.delete(self.db, query_id, batch=stored.DELETE_BATCH)
        return q

    async def _job(
        self, caller: Principal, spec: SqlQuery | VectorSearch
    ) -> tuple[_SqlJob | _SearchJob, dict[str, Any]]:
        if isinstance(spec, SqlQuery):
            if not caller.allows("sql"):
                raise Forbidden("running SQL needs an API key with the 'sql' scope", scope="sql")
            if not spec.query.strip():
                raise InvalidRequest("sql.query must not be empty", field="sql.query")
            if len(spec.query) > MAX_SQL_LENGTH or "\x00" in spec.query:
                raise InvalidRequest(
                    f"sql.query must be at most {MAX_SQL_LENGTH} characters, without NUL",
                    field="sql.query",
                )
            if len(spec.parameters) > MAX_PARAMETERS:
                raise InvalidRequest(
                    f"sql.parameters has {len(spec.parameters)} items; "
                    f"the limit is {MAX_PARAMETERS}",
                    field="sql.parameters",
                )
            named = sqltext.named_parameters(spec.parameters)
            if named is None:
                bound = sqltext.Bound(spec.query, list(spec.parameters))
            else:
                bound = sqltext.bind_named(spec.query, named)
            row_limit = spec.default_row_limit
            if row_limit is not None:
                if row_limit < 1:
                    raise InvalidRequest(
                        "sql.default_row_limit must be at least 1", field="sql.default_row_limit"
                    )
                if sqltext.has_top_level_limit(spec.query):
                    row_limit = None  # the query's own LIMIT rules
            request: dict[str, Any] = {"sql": {"query": spec.query, "parameters": spec.parameters}}
            if spec.default_row_limit is not None:
                request["sql"]["default_row_limit"] = spec.default_row_limit
            return _SqlJob(spec.query, bound, row_limit), request
        if not caller.allows("read"):
            raise Forbidden("a vector search needs an API key with the 'read' scope", scope="read")
        limit_cap = self.settings.stored_query_max_rows
        if not 1 <= spec.limit <= limit_cap:
            raise InvalidRequest(
                f"vector_search.limit must be between 1 and {limit_cap} "
                "(PGPAGER_STORED_QUERY_MAX_ROWS)",
                field="vector_search.limit",
            )
        namespace = validation.namespace(spec.namespace)
        where = compile_filter(spec.filter)
        c = await collections.find(self.db, spec.collection)
        vector = await self.embedder.query_vector(
            c, vector=spec.vector, data=spec.data, field="vector_search.vector"
        )
        include = Include(
            vectors=spec.include_vectors, metadata=spec.include_metadata, data=spec.include_data
        )
        request = {
            "vector_search": {
                "collection": spec.collection,
                # The vector, also for a text query: what ran, not what it was made from.
                "vector": [float(x) for x in vector],
                "filter": spec.filter,
                "namespace": namespace,
                "limit": spec.limit,
                "include_vectors": spec.include_vectors,
                "include_metadata": spec.include_metadata,
                "include_data": spec.include_data,
            }
        }
        return _SearchJob(c, vector, namespace, where, include, spec.limit), request

    async def _get(self, query_id: str) -> stored.StoredQuery:
        q = await stored.get(self.db, query_id)
        if q is None:
            raise QueryNotFound(f"no stored query {query_id}", query_id=query_id)
        return q

    async def _get_visible(self, caller: Principal, query_id: str) -> stored.StoredQuery:
        """The query, if it exists and belongs to the caller: another key's query is not found."""
        try:
            uuid.UUID(query_id)
        except ValueError:
            raise QueryNotFound(f"no stored query {query_id!r}", query_id=query_id) from None
        q = await stored.get(self.db, query_id)
        if q is None or (caller.key_id is not None and q.api_key_id != caller.key_id):
            raise QueryNotFound(f"no stored query {query_id}", query_id=query_id)
        return q

    async def current(
        self, caller: Principal, query_id: str, *, expired_ok: bool = False
    ) -> stored.StoredQuery:
        """The caller's query (unexpired unless ``expired_ok``), with its state made true if
        the instance running it died."""
        q = await self._get_visible(caller, query_id)
        if q.expired and not expired_ok:
            raise QueryExpired(
                f"the results of stored query {query_id} expired at {q.expires_at.isoformat()}; "
                "run the query again",
                query_id=query_id,
            )
        if (
            q.state in UNFINISHED
            and q.owner_instance != self.instance_id
            and await stored.fail_orphaned(
                self.db, self.instance_id, stored.ORPHAN_REASON, query_id
            )
        ):
            q = await self._get(query_id)
        return q
