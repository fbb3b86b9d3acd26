"""Stored queries in PostgreSQL: the query rows, their kept results, and the run itself.

A run streams JSON rows from a server-side cursor (a user's SQL on a connection of its API
key's reader role, or a nearest-neighbour search on a service connection) and copies them,
chunk by chunk, into ``stored_query_rows`` on a second connection: memory stays flat at any
size.
Reading a page is a primary-key range read on ``(query_id, ordinal)``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.adapt import Buffer, Loader
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import Format
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pgpager.errors import DatabaseUnavailable, QueryFailed, QueryTimeout, SqlUnavailable
from pgpager.store import pages, sqltext
from pgpager.store.collections import Collection
from pgpager.store.database import Database, connect, translated
from pgpager.store.filters import CompiledFilter
from pgpager.store.queries import query
from pgpager.store.search import SKIP_IDS, SKIP_NOTHING, Include, nearest, params
from pgpager.window import Window, enough

log = logging.getLogger(__name__)

Conn = psycopg.AsyncConnection[Any]
Chunks = AsyncGenerator[list[bytes], None]

READER_GROUP = "pgpager_reader"
"""NOLOGIN: holds the read grants. The SQL of each API key logs in as a member of its own."""
FETCH_ROWS = 10_000
"""Most rows per FETCH from the server-side cursor (and so per COPY write)."""
FETCH_BYTES = 8 * 1024 * 1024
"""About this many bytes of rows per FETCH: big rows are fetched a few at a time."""


class Fetches:
    """How many rows the next FETCH asks for: few at first, then as many as keep a chunk near
    ``FETCH_BYTES`` (at most ``FETCH_ROWS``), so that big rows never pile up in memory."""

    def __init__(self) -> None:
        self.rows = 100

    def adapt(self, chunk_bytes: int) -> None:
        per_row = max(1, chunk_bytes // max(1, self.rows))
        self.rows = max(1, min(FETCH_ROWS, FETCH_BYTES // per_row))


CLIENT_CHECK_MS = 1000
"""How often a reader backend checks that its client is still there (a killed server's
queries stop within this time instead of running to their timeout)."""

DELETE_BATCH = 50_000
"""Rows one DELETE statement removes when a stored query is deleted or expires."""
EXPIRE_ROW_BUDGET = 500_000
"""Most rows one ``expire_stored_queries`` call deletes; a bigger result takes several ticks."""

ORPHAN_REASON = "server stopped while the query ran (its pgpager instance is gone)"

# COPY text format: these bytes would end a field or a line.
_COPY_ESCAPES = ((b"\\", b"\\\\"), (b"\n", b"\\n"), (b"\r", b"\\r"), (b"\t", b"\\t"))


@dataclass(frozen=True)
class Secret:
    cursor_key: bytes
    reader_password: str


@dataclass(frozen=True)
class ReaderLimits:
    """Settings of every reader role in this database, applied at login. The reader cannot
    change them: ``temp_file_limit`` is superuser-only, and readers may not run set_config."""

    temp_file_limit_mb: int
    work_mem_mb: int

    def settings(self) -> dict[str, str]:
        temp = self.temp_file_limit_mb
        return {
            "temp_file_limit": f"{temp}MB" if temp >= 0 else "-1",  # -1: no limit
            "work_mem": f"{self.work_mem_mb}MB",
        }


@dataclass(frozen=True)
class StoredQuery:
    query_id: str
    kind: str
    state: str
    error: str | None
    api_key_id: str | None
    owner_instance: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    expires_at: dt.datetime
    expired: bool
    elapsed_time_ms: int | None
    doc_count: int | None
    size_bytes: int | None
    results_total_doc_count: int | None
    sql_text: str | None = None
    """The SQL as the caller sent it (None for a vector search)."""


@dataclass(frozen=True)
class Page:
    results: bytes
    """The rows as one JSON array, ready to send."""
    count: int


@dataclass(frozen=True)
class Written:
    doc_count: int
    size_bytes: int


class _RawText(Loader):
    """text in binary format is its UTF-8 bytes: keep them as bytes, no decoding."""

    format = Format.BINARY

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


# --- the secret, the reader role, instance liveness -----------------------------------------
async def load_secret(pool: Database, fresh: Secret) -> Secret:
    """The shared secret row; ``fresh`` is stored first if the row is missing."""
    async with pool.connection() as conn:
        await conn.execute(
            query("stored", "ensure_secret"),
            {"cursor_key": fresh.cursor_key.hex(), "reader_password": fresh.reader_password},
        )
        cur = await conn.execute(query("stored", "get_secret"))
        row = await cur.fetchone()
    assert row is not None
    return Secret(cursor_key=bytes.fromhex(row[0]), reader_password=row[1])


def reader_role(key_id: str | None) -> str:
    """The login role of an API key's SQL. Backends of one role cannot cancel, terminate or read
    the query text of another's, so one key cannot touch another key's queries."""
    return f"{READER_GROUP}_{key_id or 'anonymous'}"


async def provision_reader(pool: Database, role: str, password: str, limits: ReaderLimits) -> None:
    """Make ``role`` ready for SQL: created with ``password`` if missing (a member of
    ``pgpager_reader`` and nothing more), ``limits`` set in this database, and checked to be
    sandboxed. SqlUnavailable says what a DBA must do where pgpager's own role cannot."""
    async with pool.connection() as conn:
        try:
            cur = await conn.execute(query("stored", "reader_role_state"), {"role": role})
            row = await cur.fetchone()
            assert row is not None
            dbname, exists, config = row
            if not exists:
                await _create_reader(conn, role, password)
            current = {k: v for k, _, v in (item.partition("=") for item in config)}
            changes = {k: v for k, v in limits.settings().items() if current.get(k) != v}
            if changes:
                await _set_reader_settings(conn, role, dbname, changes)
            cur = await conn.execute(query("stored", "reader_sandbox"), {"role": role})
            check = await cur.fetchone()
        except psycopg.Error as exc:
            raise _reader_unavailable(
                role, _first_line(exc), "see the README, Stored queries"
            ) from exc
    assert check is not None
    privileged, reads, open_functions = check
    if privileged:
        raise _reader_unavailable(
            role,
            "it has privileges a reader must not have (superuser, CREATEROLE, CREATEDB, "
            "REPLICATION, BYPASSRLS or pg_signal_backend)",
            "revoke them, or drop the role and let pgpager create it",
        )
    if not reads:
        raise _reader_unavailable(
            role, f"it is not a member of {READER_GROUP}", f"GRANT {READER_GROUP} TO {role}"
        )
    if open_functions:
        raise _reader_unavailable(
            role,
            f"it may still execute {', '.join(open_functions)}",
            "a superuser must revoke EXECUTE on pgpager.sandbox_functions from PUBLIC "
            "(see the README, Stored queries)",
        )


async def _create_reader(conn: Conn, role: str, password: str) -> None:
    try:
        await conn.execute(
            query("stored", "create_reader_role", role=role, password=sql.Literal(password))
        )
    except (pgerrors.DuplicateObject, pgerrors.UniqueViolation):
        pass  # another server created it meanwhile
    except psycopg.Error as exc:
        raise _reader_unavailable(
            role,
            f"pgpager's database role cannot create it ({_first_line(exc)})",
            f"give pgpager's role CREATEROLE and ADMIN on {READER_GROUP}, or create the role: "
            f"CREATE ROLE {role} LOGIN PASSWORD '<PGPAGER_SQL_READER_PASSWORD>' "
            f"IN ROLE {READER_GROUP}",
        ) from exc


async def _set_reader_settings(conn: Conn, role: str, dbname: str, changes: dict[str, str]) -> None:
    """Role settings apply at login, before any of the reader's SQL runs. They are set per
    database: another pgpager database on the cluster keeps its own limits for the same key.
    (The statements carry no comment: a DBA may be told to run them.)"""
    statements = [
        query(
            "stored",
            "set_reader_setting",
            role=role,
            dbname=dbname,
            setting=name,
            value=sql.Literal(value),
        )
        for name, value in changes.items()
    ]
    try:
        async with conn.transaction():
            for statement in statements:
                await conn.execute(statement)
    except psycopg.Error as exc:
        raise _reader_unavailable(
            role,
            f"pgpager's database role cannot set its {', '.join(changes)} ({_first_line(exc)})",
            "as a superuser: " + "; ".join(st.as_string(conn) for st in statements),
        ) from exc


def _reader_unavailable(role: str, why: str, fix: str) -> SqlUnavailable:
    return SqlUnavailable(
        f"stored SQL queries are unavailable: the reader role {role} is not ready: {why}; "
        f"to fix: {fix}",
        role=role,
    )


async def set_reader_password(pool: Database, role: str, password: str) -> None:
    try:
        async with pool.connection() as conn:
            await conn.execute(
                query("stored", "set_reader_password", role=role, password=sql.Literal(password))
            )
    except psycopg.Error as exc:
        raise SqlUnavailable(
            f"stored SQL queries are unavailable: cannot set the password of {role} "
            f"({_first_line(exc)}); set PGPAGER_SQL_READER_PASSWORD to its password"
        ) from exc


async def connect_reader(database_url: str, role: str, password: str, *, timeout_ms: int) -> Conn:
    """A connection whose session user is the reader ``role``, so no SQL can switch back."""
    params = conninfo_to_dict(database_url)
    params.update(
        user=role,
        password=password,
        application_name="pgpager-stored-sql",
        options=(
            f"-c statement_timeout={timeout_ms} -c default_transaction_read_only=on "
            "-c search_path=pgpager_data"
        ),
    )
    try:
        conninfo = make_conninfo("", **params)
        conn: Conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as exc:
        raise SqlUnavailable(
            f"stored SQL queries are unavailable: cannot log in as {role} "
            f"({_first_line(exc)}); see the README on stored queries"
        ) from exc
    await conn.set_read_only(True)
    if conn.info.server_version >= 140000:
        await conn.execute(
            query("stored", "reader_client_check", check_ms=sql.Literal(CLIENT_CHECK_MS))
        )
    return conn


class InstanceLock:
    """The connection whose advisory lock says that this instance is alive, so that other
    instances do not take it for dead and fail its stored queries. ``check`` takes the lock
    again when the connection dropped (a database restart)."""

    def __init__(self, database_url: str, instance_id: str) -> None:
        self.database_url = database_url
        self.instance_id = instance_id
        self._conn: Conn | None = None

    async def acquire(self) -> None:
        conn = await connect(self.database_url, "PostgreSQL (instance lock)")
        try:
            with translated():
                await conn.execute(
                    query("stored", "lock_instance"), {"instance_id": self.instance_id}
                )
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def check(self) -> None:
        if self._conn is not None and not self._conn.closed:
            try:
                with translated():
                    await self._conn.execute(query("admin", "ping"))
                return
            except DatabaseUnavailable:
                log.warning("instance lock: connection lost, taking the lock again")
        await self.release()
        await self.acquire()

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


# --- the queries table ------------------------------------------------------------------------
async def insert(
    pool: Database,
    *,
    query_id: str,
    kind: str,
    request: dict[str, Any],
    api_key_id: str | None,
    owner_instance: str,
    keep_s: float,
) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            query("stored", "insert_query"),
            {
                "query_id": query_id,
                "kind": kind,
                "request": Jsonb(request),
                "api_key_id": api_key_id,
                "owner_instance": owner_instance,
                "keep_s": keep_s,
            },
        )


async def mark_running(pool: Database, query_id: str) -> bool:
    async with pool.connection() as conn:
        cur = await conn.execute(query("stored", "mark_running"), {"query_id": query_id})
        return cur.rowcount == 1


async def mark_failed(
    pool: Database, query_id: str, error: str, *, ttl_s: float, elapsed_ms: int | None
) -> bool:
    async with pool.connection() as conn:
        cur = await conn.execute(
            query("stored", "mark_failed"),
            {"query_id": query_id, "error": error, "ttl_s": ttl_s, "elapsed_time_ms": elapsed_ms},
        )
        return cur.rowcount == 1


async def mark_cancelled(pool: Database, query_id: str, reason: str, *, ttl_s: float) -> bool:
    """CANCELLED if it was still QUEUED or RUNNING; False if it had ended."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            query("stored", "mark_cancelled"),
            {"query_id": query_id, "reason": reason, "ttl_s": ttl_s},
        )
        return cur.rowcount == 1


async def fail_instance(pool: Database, instance_id: str, error: str) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(
            query("stored", "fail_instance"), {"instance_id": instance_id, "error": error}
        )
        return cur.rowcount


async def fail_orphaned(
    pool: Database, instance_id: str, error: str, query_id: str | None = None
) -> list[str]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            query("stored", "fail_orphaned"),
            {"instance_id": instance_id, "error": error, "query_id": query_id},
        )
        return [r[0] for r in await cur.fetchall()]


async def get(pool: Database, query_id: str) -> StoredQuery | None:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query("stored", "get_query"), {"query_id": query_id})
        row = await cur.fetchone()
    return None if row is None else StoredQuery(**row)


async def list_queries(
    pool: Database, *, api_key_id: str | None, everyone: bool, limit: int, active: bool = False
) -> list[StoredQuery]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            query("stored", "list_queries"),
            {"api_key_id": api_key_id, "all": everyone, "limit": limit, "active": active},
        )
        return [StoredQuery(**r) for r in await cur.fetchall()]


async def state_counts(pool: Database) -> dict[str, int]:
    """Stored queries by state (for ``pgpager status``)."""
    async with pool.connection() as conn:
        cur = await conn.execute(query("stored", "state_counts"))
        return {r[0]: int(r[1]) for r in await cur.fetchall()}


async def read_page(
    pool: Database, query_id: str, start: int, stop: int, *, max_bytes: int
) -> Page:
    """Rows ``start`` .. ``stop`` as one JSON array, cut short (never below one row) where it
    would pass ``max_bytes``: the caller continues from the count it got."""
    params = {"query_id": query_id, "start": start, "stop": stop, "max_bytes": max_bytes}
    async with pool.connection() as conn:
        cur = await conn.execute(query("stored", "read_page"), params)
        row = await cur.fetchone()
    assert row is not None
    return Page(results=row[0].encode(), count=int(row[1]))


async def expired(pool: Database, limit: int) -> list[str]:
    async with pool.connection() as conn:
        cur = await conn.execute(query("stored", "select_expired"), {"limit": limit})
        return [r[0] for r in await cur.fetchall()]


async def delete(
    pool: Database, query_id: str, *, batch: int, budget: int | None = None
) -> tuple[bool, int]:
    """Delete the rows ``batch`` at a time (each statement short), then the query.

    Stops after ``budget`` rows; returns (query deleted, rows deleted).
    """
    spent = 0
    async with pool.connection() as conn:
        while budget is None or spent < budget:
            n = batch if budget is None else min(batch, budget - spent)
            cur = await conn.execute(
                query("stored", "delete_rows_batch"), {"query_id": query_id, "batch": n}
            )
            spent += cur.rowcount
            if cur.rowcount < n:
                cur = await conn.execute(query("stored", "delete_query"), {"query_id": query_id})
                return cur.rowcount == 1, spent
    return False, spent


async def expire_stored_queries(pool: Database, limit: int) -> int:
    """Delete up to ``limit`` expired queries with their rows: at most ``EXPIRE_ROW_BUDGET``
    rows per call, in statements of ``DELETE_BATCH``, so a sweeper tick stays short. A bigger
    result is finished by later calls (its pages answer 410 meanwhile). Returns the queries
    deleted."""
    budget = EXPIRE_ROW_BUDGET
    deleted = 0
    for query_id in await expired(pool, limit):
        if budget <= 0:
            break
        gone, spent = await delete(pool, query_id, batch=min(DELETE_BATCH, budget), budget=budget)
        budget -= spent
        deleted += gone
    return deleted


async def fail_orphaned_queries(pool: Database, instance_id: str) -> int:
    """Mark FAILED the QUEUED/RUNNING queries of other instances that no longer hold their
    liveness lock (``lock_instance``): a killed server's queries. Returns how many."""
    return len(await fail_orphaned(pool, instance_id, ORPHAN_REASON))


# --- running ----------------------------------------------------------------------------------
async def sql_rows(
    conn: Conn,
    text: str,
    parameters: Sequence[Any],
    *,
    timeout_ms: int,
    row_limit: int | None = None,
    position: Callable[[int], int] = lambda p: p,
) -> Chunks:
    """The user's SQL as chunks of JSON object rows, read through a NO SCROLL cursor.

    ``conn`` is a reader connection (``connect_reader``). Parameters are bound server-side
    as ``$1, $2, ...``; the text itself is never rewritten by the client here. At most
    ``row_limit`` rows if given. ``position`` maps an error position in ``text`` back to the
    text the user wrote (named parameters change it).
    """
    user_sql = _strip(text)
    declare = query("stored", "declare_sql", user_sql=sql.SQL(user_sql))
    # Error positions count from the start of the DECLARE: make them count in the user's text.
    shift = declare.as_string(conn).index(user_sql) if user_sql else 0
    values = [_param(p) for p in parameters]
    left = row_limit
    try:
        async with conn.transaction():
            await _reader_session(conn, timeout_ms)
            cur = psycopg.AsyncRawCursor(conn)
            cur.adapters.register_loader("text", _RawText)
            # binary=True makes psycopg use the extended protocol even without parameters:
            # the server then refuses a text holding more than one statement.
            await cur.execute(declare, values, binary=True)
            fetch = Fetches()
            while left is None or left > 0:
                n = fetch.rows if left is None else min(fetch.rows, left)
                await cur.execute(query("stored", "fetch", n=sql.Literal(n)), binary=True)
                rows = await cur.fetchall()
                if rows:
                    yield [r[0] for r in rows]
                if left is not None:
                    left -= len(rows)
                if len(rows) < n:
                    break
                fetch.adapt(sum(len(r[0]) for r in rows))
    except psycopg.Error as exc:
        failure = _Failure(exc, shift)
        if isinstance(exc, pgerrors.SyntaxError) and not conn.closed:
            failure = await _parsed_alone(conn, user_sql, values, timeout_ms) or failure
        raise _query_error(
            failure.error,
            timeout_ms,
            shift=failure.shift,
            length=len(user_sql),
            position=position,
        ) from exc


@dataclass(frozen=True)
class _Failure:
    error: psycopg.Error
    shift: int
    """Characters before the user's text in the statement that failed."""


async def _parsed_alone(
    conn: Conn, user_sql: str, values: list[Any], timeout_ms: int
) -> _Failure | None:
    """The cursor's DECLARE failed with a syntax error, whose position may point into the
    wrapper around the user's text. Parse the text alone (``PREPARE``, never run): its own
    syntax error, counted in its own terms; or, if it parses, a clearer error saying it is
    not a query a cursor can run. None if the connection fails meanwhile."""
    prepare = query("stored", "parse_sql", user_sql=sql.SQL(user_sql))
    prefix = prepare.as_string(conn).index(user_sql)
    try:
        async with conn.transaction(force_rollback=True):
            await _reader_session(conn, timeout_ms)
            cur = psycopg.AsyncRawCursor(conn)
            # The extended protocol, as for the cursor: several statements are refused.
            await cur.execute(prepare, values, binary=True)
            await cur.execute(query("stored", "deallocate_parse"))
    except pgerrors.SyntaxError as alone:
        at = alone.diag.statement_position
        first = sqltext.first_word(user_sql)
        if (
            at is not None
            and first is not None
            and int(at) - prefix == first.start + 1
            and first.text.lower() in sqltext.COMMANDS
        ):
            return _Failure(NotACursorQuery(NOT_A_CURSOR_QUERY), 0)  # CREATE, SET, ...
        return _Failure(alone, prefix)
    except (psycopg.OperationalError, psycopg.InterfaceError):
        return None
    except psycopg.Error:
        pass  # it parses; analysis failed (an INSERT into a missing table, say)
    return _Failure(NotACursorQuery(NOT_A_CURSOR_QUERY), 0)


NOT_A_CURSOR_QUERY = (
    "the SQL is not a query a cursor can run: send one SELECT, VALUES, TABLE or "
    "WITH ... SELECT statement (not INSERT, UPDATE, DELETE, a utility statement, or several "
    "statements)"
)


class NotACursorQuery(pgerrors.SyntaxError):
    """The user's text is valid SQL but not a query a cursor can run."""


async def search_rows(
    database_url: str,
    c: Collection,
    *,
    vector: np.ndarray[Any, np.dtype[np.float32]],
    namespace: str,
    where: CompiledFilter,
    include: Include,
    limit: int,
    exact_above: int,
    index_limit: int,
    ef_search: int,
    max_scan_tuples: int,
    timeout_ms: int,
) -> Chunks:
    """The ``limit`` nearest rows as chunks of JSON hits ({id, score, distance, ...}).

    Exact order when ``limit`` exceeds ``index_limit`` or the namespace and filter match at
    most ``exact_above`` rows; otherwise the HNSW stream (iterative scan, relaxed order) through
    the re-sorting window, as offset pages read it, completed from the exact order of the rows
    it did not deliver if it ends early. One snapshot for all of it.
    """
    values = params(c, vector, namespace, where)
    conn = await connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute(query("pages", "begin_snapshot"))
            await conn.execute(
                query("stored", "statement_timeout"), {"timeout_ms": str(timeout_ms)}
            )
            exact = limit > index_limit or await pages.few_matching(
                conn, c, namespace, where, exact_above
            )
            if not exact:
                await pages.use_hnsw(
                    conn,
                    ef_search=ef_search,
                    max_scan_tuples=max_scan_tuples,
                    scan_mem_multiplier=2.0,
                )
            if exact:
                async for chunk in _search_cursor(
                    conn, c, where, include, True, SKIP_NOTHING, limit, values
                ):
                    yield [doc for _, doc, _ in chunk]
                return
            # The stream through the re-sorting window (pgpager.window), as offset pages read
            # it, until ``limit`` rows are decided or the stream ends.
            window: Window[tuple[str, bytes]] = Window()
            sent: list[str] = []
            # The first read is what ``limit`` rows need: past ef_search rows, HNSW searches again.
            stream = _search_cursor(
                conn, c, where, include, False, SKIP_NOTHING, None, values, enough(limit), 1000
            )
            async with contextlib.aclosing(stream):
                async for chunk in stream:
                    keyed = ((rid.decode(), doc, distance) for rid, doc, distance in chunk)
                    out = window.feed((d, key, (key, doc)) for key, doc, d in keyed)
                    out = out[: limit - len(sent)]
                    sent += [key for key, _ in out]
                    if out:
                        yield [doc for _, doc in out]
                    if len(sent) == limit:
                        return
            # The stream ended: what the window holds, then the exact order of the rest.
            out = window.drain()[: limit - len(sent)]
            sent += [key for key, _ in out]
            if out:
                yield [doc for _, doc in out]
            if len(sent) < limit:
                await pages.use_sort(conn)
                tail = {**values, "skip_ids": sent}
                async for chunk in _search_cursor(
                    conn, c, where, include, True, SKIP_IDS, limit - len(sent), tail
                ):
                    yield [doc for _, doc, _ in chunk]
    except psycopg.Error as exc:
        raise _query_error(exc, timeout_ms) from exc
    finally:
        await conn.close()


async def _search_cursor(
    conn: Conn,
    c: Collection,
    where: CompiledFilter,
    include: Include,
    exact: bool,
    skip: str,
    limit: int | None,
    values: dict[str, Any],
    first: int = FETCH_ROWS,
    then: int = FETCH_ROWS,
) -> AsyncGenerator[list[tuple[bytes, bytes, float]], None]:
    """(id, JSON hit, distance) per row: ``first`` rows, then chunks of ``then``; ``limit``
    None: no limit (an index stream read as far as it is fetched)."""
    select = nearest(c, include=include, where=where, exact=exact, skip=skip, limit_offset=True)
    declare = query("stored", "declare_search", nearest=select)
    async with conn.cursor() as cur:
        cur.adapters.register_loader("text", _RawText)
        await cur.execute(declare, {**values, "limit": limit, "offset": 0})
        n = min(first, FETCH_ROWS)
        while True:
            await cur.execute(query("stored", "fetch", n=sql.Literal(n)), binary=True)
            rows = await cur.fetchall()
            if rows:
                yield [(r[0], r[1], r[2]) for r in rows]
            if len(rows) < n:
                break
            n = min(then, FETCH_ROWS)
        await cur.execute("CLOSE pgpager_stored")


async def write_rows(
    database_url: str,
    query_id: str,
    chunks: AsyncIterator[list[bytes]],
    *,
    max_rows: int,
    max_size_mb: int,
    max_row_kb: int,
    ttl_s: float,
    elapsed_ms: Callable[[], int],
) -> Written | None:
    """COPY the chunks into ``stored_query_rows`` and mark the query COMPLETED, in one
    transaction on a connection of its own. None if the query was deleted or failed meanwhile.
    """
    prefix = query_id.encode() + b"\t"
    n = 0
    size = 0
    conn = await connect(database_url)
    try:
        async with conn.transaction():
            async with conn.cursor() as cur, cur.copy(query("stored", "copy_rows")) as copy:
                async for chunk in chunks:
                    if n + len(chunk) > max_rows:
                        raise QueryFailed(
                            f"the result has more than {max_rows} rows, the most a stored "
                            "query keeps (PGPAGER_STORED_QUERY_MAX_ROWS); narrow the query",
                            limit=max_rows,
                        )
                    buf = bytearray()
                    for line in chunk:
                        size += len(line)
                        if len(line) > max_row_kb * 1024:
                            raise QueryFailed(
                                f"row {n + 1} of the result is {len(line) // 1024:,} KB of JSON; "
                                f"a stored query keeps rows of at most {max_row_kb:,} KB "
                                "(PGPAGER_STORED_QUERY_MAX_ROW_KB): select fewer or smaller "
                                "columns",
                                limit_kb=max_row_kb,
                            )
                        if b"\\" in line or b"\n" in line or b"\r" in line or b"\t" in line:
                            for raw, escaped in _COPY_ESCAPES:
                                line = line.replace(raw, escaped)
                        buf += prefix
                        buf += b"%d\t" % n
                        buf += line
                        buf += b"\n"
                        n += 1
                    if size > max_size_mb * 1024 * 1024:
                        # Rows are few but big: the row count alone does not bound the disk.
                        raise QueryFailed(
                            f"the result is larger than {max_size_mb} MB, the most a stored "
                            "query keeps (PGPAGER_STORED_QUERY_MAX_SIZE_MB); narrow the query",
                            limit_mb=max_size_mb,
                        )
                    await copy.write(buf)
            cur2 = await conn.execute(
                query("stored", "mark_completed"),
                {
                    "query_id": query_id,
                    "ttl_s": ttl_s,
                    "elapsed_time_ms": elapsed_ms(),
                    "doc_count": n,
                    "size_bytes": size,
                },
            )
            if cur2.rowcount != 1:
                raise _Abandoned()
    except _Abandoned:
        return None
    except pgerrors.ForeignKeyViolation:
        return None  # the query was deleted while it ran
    finally:
        await conn.close()
    return Written(doc_count=n, size_bytes=size)


class _Abandoned(Exception):
    """The query row left the RUNNING state while the rows were written: keep nothing."""


async def _reader_session(conn: Conn, timeout_ms: int) -> None:
    await conn.execute(query("stored", "reader_session", timeout_ms=sql.Literal(timeout_ms)))
    if conn.info.server_version >= 170000:
        await conn.execute(
            query("stored", "reader_transaction_timeout", timeout_ms=sql.Literal(timeout_ms))
        )


def _strip(text: str) -> str:
    """Trailing semicolons would end the subquery early: drop them (and whitespace)."""
    text = text.rstrip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def _param(value: Any) -> Any:
    if isinstance(value, dict) or (
        isinstance(value, list) and any(isinstance(v, dict | list) for v in value)
    ):
        return Jsonb(value)
    return value


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _query_error(
    exc: psycopg.Error,
    timeout_ms: int,
    *,
    shift: int = 0,
    length: int = 0,
    position: Callable[[int], int] = lambda p: p,
) -> QueryFailed | QueryTimeout:
    if isinstance(exc, pgerrors.QueryCanceled | pgerrors.TransactionTimeout):
        return QueryTimeout(
            f"the query ran past its time limit of {timeout_ms} ms (timeout_ms)",
            timeout_ms=timeout_ms,
        )
    if isinstance(exc, NotACursorQuery):
        return QueryFailed(f"the query failed: {NOT_A_CURSOR_QUERY}", sqlstate="42601")
    diag = exc.diag
    message = diag.message_primary or _first_line(exc)
    if isinstance(exc, pgerrors.ConfigurationLimitExceeded) and "temp_file_limit" in message:
        message += (
            ": a stored SQL query may write only so much to temporary files "
            "(PGPAGER_SQL_TEMP_FILE_LIMIT_MB; sorts, hashes and set-returning functions in FROM "
            "spill there past work_mem); narrow the query"
        )
    detail: dict[str, Any] = {"sqlstate": exc.sqlstate}
    if diag.statement_position and length:
        at = int(diag.statement_position) - shift
        if 1 <= at <= length + 1:  # length + 1: at the end of the text
            detail["position"] = position(at)
    if diag.message_hint:
        detail["hint"] = diag.message_hint
    return QueryFailed(f"the query failed: {message}", **detail)
