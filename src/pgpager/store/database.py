"""Connections, and the storage boundary: driver errors become domain errors here, once.

``Database`` is the process's connection pool. Every statement pgpager runs goes through
``Database.connection()`` or ``connect()``; both turn a refused or lost connection, and a pool
that has no connection to give, into ``DatabaseUnavailable`` (HTTP 503 with ``Retry-After``).
The pool checks a connection before lending it, so connections left stale by a PostgreSQL
restart are replaced instead of failing a request, and it reconnects by itself.
"""

from __future__ import annotations

import contextlib
import logging
import select
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import psycopg
from pgvector.psycopg import register_vector_async
from psycopg import errors as pgerrors
from psycopg import postgres
from psycopg.abc import AdaptContext
from psycopg.adapt import Dumper
from psycopg.conninfo import make_conninfo
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from pgpager.errors import (
    CollectionNotFound,
    ConfigurationError,
    DatabaseUnavailable,
    InvalidRequest,
    PgpagerError,
)
from pgpager.settings import Settings
from pgpager.store.queries import query

log = logging.getLogger(__name__)

MIN_PGVECTOR = (0, 8, 0)

# Every connection of a server carries application_name "pgpager:<instance id>", so
# pg_stat_activity shows which servers are running (``pgpager status``) and whose backend a
# handle's cursor lives in (``pgpager handles show``).
SERVER_APPLICATION_PREFIX = "pgpager:"

# SQLSTATEs meaning "this connection is gone or cannot be had": class 08 (connection
# exception), and the operator-intervention states of a server shutting down or starting up.
_GONE_STATES = ("57P01", "57P02", "57P03")

PROBE_AFTER_S = 1.0
"""A request that waited this long for a pooled connection asks PostgreSQL whether it answers."""


def server_application_name(instance_id: str) -> str:
    return SERVER_APPLICATION_PREFIX + instance_id


def with_application_name(url: str, application_name: str) -> str:
    """The same connection string, tagged (works for URLs and key=value strings alike)."""
    return make_conninfo(url, application_name=application_name)


def connection_lost(exc: BaseException) -> bool:
    """Whether a driver error means the connection is gone (or could not be made), as opposed
    to a statement that failed on a working connection."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _GONE_STATES


async def check_idle_connection(conn: psycopg.AsyncConnection[Any]) -> None:
    """The pool's check before it lends a connection, without a round trip when it can.

    An idle connection has nothing to read: PostgreSQL speaks only when asked. Anything
    waiting on its socket (the goodbye of a server that stopped or restarted, the end of the
    stream, a notice) means it may be gone, and then the full check runs (an empty query, as
    psycopg_pool's own check does); it fails on a dead connection, which the pool then
    replaces. A connection that is quiet and was fine when it went back to the pool is lent
    as it is: one round trip saved on every checkout (a statement that finds it dead after all
    is a 503, as it always was)."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        await AsyncConnectionPool.check_connection(conn)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def domain_error(exc: BaseException, what: str = "PostgreSQL") -> PgpagerError | None:
    """The domain error a driver error stands for, or None if it is a bug of pgpager's:
    a lost or refused connection, a table dropped meanwhile (a collection), or a value that
    PostgreSQL refuses (a NUL character in text, a number out of range)."""
    if connection_lost(exc):
        return DatabaseUnavailable(f"{what} is unavailable: {_first_line(exc)}")
    if isinstance(exc, pgerrors.UndefinedTable):
        return CollectionNotFound("the collection does not exist (it was dropped meanwhile)")
    if isinstance(exc, psycopg.DataError):
        return InvalidRequest(f"PostgreSQL refused a value of this request: {_first_line(exc)}")
    return None


@contextlib.contextmanager
def translated(what: str = "PostgreSQL") -> Iterator[None]:
    """Raise driver errors that stand for a domain error (``domain_error``) as that error."""
    try:
        yield
    except (psycopg.Error, PoolTimeout) as exc:
        error = domain_error(exc, what)
        if error is None:
            raise
        raise error from exc


class Database(AsyncConnectionPool[psycopg.AsyncConnection[Any]]):
    """The pool, with the storage boundary on ``connection()``.

    While PostgreSQL is known to be down (a connection failed within the last
    ``unavailable_wait_s`` x 10 seconds), a request waits at most ``unavailable_wait_s`` for a
    connection instead of ``timeout_s``: callers get a quick 503, not a hung request.
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int,
        max_size: int,
        application_name: str,
        timeout_s: float,
        unavailable_wait_s: float,
        name: str = "pgpager",
    ) -> None:
        super().__init__(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True, "application_name": application_name},
            configure=configure_connection,
            check=check_idle_connection,
            # Give up a failed background reconnection soon: the next request that needs a
            # connection starts a new attempt at once, instead of waiting out a long backoff.
            reconnect_timeout=max(1.0, unavailable_wait_s * 4),
            timeout=timeout_s,
            open=False,
            name=name,
        )
        self.url = url
        self.timeout_s = timeout_s
        self.unavailable_wait_s = unavailable_wait_s
        self._down_at: float | None = None
        self._last_error = ""
        self._probed_at = 0.0

    @property
    def unavailable(self) -> bool:
        down = self._down_at
        return down is not None and time.monotonic() - down < self.unavailable_wait_s * 10

    def _went_down(self, exc: BaseException) -> None:
        if self._down_at is None:
            log.warning("PostgreSQL became unavailable: %s", _first_line(exc))
        self._down_at = time.monotonic()
        if not isinstance(exc, PoolTimeout):
            self._last_error = _first_line(exc)

    def _came_back(self) -> None:
        if self._down_at is not None:
            log.info("PostgreSQL is available again")
            self._down_at = None

    async def getconn(self, timeout: float | None = None) -> psycopg.AsyncConnection[Any]:  # noqa: ASYNC109
        """A connection within ``timeout`` (``timeout_s``), waited for in slices: after each
        slice without one, PostgreSQL is asked directly (at most once a second) whether it
        answers. If it does not, the wait ends at once (``PoolTimeout``, a 503), instead of
        lasting the whole timeout; a pool that is only busy is waited for to the end."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout_s)
        while True:
            step = self.unavailable_wait_s if self.unavailable else PROBE_AFTER_S
            wait = max(0.001, min(step, deadline - time.monotonic()))
            try:
                return await super().getconn(timeout=wait)
            except PoolTimeout:
                if time.monotonic() >= deadline or self.unavailable or not await self._answers():
                    raise

    async def _answers(self) -> bool:
        """Whether PostgreSQL accepts a connection (asked at most once a second)."""
        now = time.monotonic()
        if now - self._probed_at >= PROBE_AFTER_S:
            self._probed_at = now
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=2
                )
                await conn.close()
            except psycopg.OperationalError as exc:
                self._went_down(exc)
        return not self.unavailable

    @contextlib.asynccontextmanager
    async def connection(  # the pool's own signature
        self,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        wait = timeout if timeout is not None else self.timeout_s
        try:
            async with super().connection(timeout=wait) as conn:
                self._came_back()
                yield conn
        except PoolTimeout as exc:
            cause = f": {self._last_error}" if self._last_error else ""
            if self.unavailable:
                raise DatabaseUnavailable(f"PostgreSQL is unavailable{cause}") from exc
            raise DatabaseUnavailable(
                f"no database connection within {wait:g} s: all {self.max_size} connections are "
                "busy (PGPAGER_POOL_MAX_SIZE, PGPAGER_POOL_TIMEOUT_S)"
            ) from exc
        except psycopg.Error as exc:
            error = domain_error(exc)
            if error is None:
                raise
            if isinstance(error, DatabaseUnavailable):
                self._went_down(exc)
            raise error from exc

    async def ping(self) -> None:
        """One round trip; raises ``DatabaseUnavailable`` if PostgreSQL cannot be reached."""
        async with self.connection() as conn:
            await conn.execute(query("admin", "ping"))


def check_server(url: str) -> None:
    """Fail with one clear line if the server is unreachable or pgvector is missing or too old."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute(query("admin", "pgvector_version")).fetchone()
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}".strip()) from exc
    installed, available = row if row else (None, None)
    version = installed or available
    if version is None:
        raise ConfigurationError(
            "the PostgreSQL server has no pgvector extension: install pgvector >= 0.8 "
            "(e.g. the pgvector/pgvector Docker image, or apt install postgresql-NN-pgvector), "
            "or unset PGPAGER_DATABASE_URL to use the embedded PostgreSQL"
        )
    if _version_tuple(version) < MIN_PGVECTOR:
        hint = "ALTER EXTENSION vector UPDATE" if installed else "upgrade the pgvector package"
        raise ConfigurationError(f"pgvector {version} is too old: pgpager needs >= 0.8 ({hint})")


def ensure_database(admin_url: str, name: str) -> None:
    """Create database ``name`` on the server of ``admin_url`` unless it exists."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute(query("admin", "database_exists"), {"name": name}).fetchone() is None:
            conn.execute(query("admin", "create_database", database=name))


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def load_json(data: bytes | bytearray | memoryview | str) -> Any:
    """json and jsonb values as Python objects; one that nests deeper than a decoder can go
    (easy to write with SQL) stays its JSON text, which responses pass on verbatim."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    try:
        return msgspec.json.decode(raw)
    except RecursionError:
        return msgspec.Raw(raw)


class TextArray(list[str]):
    """Strings sent as one ``text[]`` parameter (the ids of the delivery record, on every
    ``next``). psycopg's generic list dumper works out an element type for each list it sends:
    about 20 us for ten ids, against 2 us for ``TextArrayDumper``."""


class TextArrayDumper(Dumper):
    r"""The array's text form with every element quoted: inside quotes only ``"`` and ``\``
    are escaped, which writes any string PostgreSQL's text can hold (no NUL)."""

    oid = postgres.types["text"].array_oid

    def __init__(self, cls: type, context: AdaptContext | None = None) -> None:
        super().__init__(cls, context)
        self.encoding = self.connection.info.encoding if self.connection else "utf-8"

    def dump(self, obj: Any) -> bytes:
        quoted = ('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in obj)
        return ("{" + ",".join(quoted) + "}").encode(self.encoding)


async def configure_connection(conn: psycopg.AsyncConnection[Any]) -> None:
    await register_vector_async(conn)
    conn.adapters.register_dumper(TextArray, TextArrayDumper)
    set_json_loads(load_json, conn)
    set_json_dumps(msgspec.json.encode, conn)  # writes a Raw (see load_json) back verbatim


async def open_database(
    url: str, settings: Settings, *, name: str = "pgpager", application_name: str | None = None
) -> Database:
    """The pool of a server (or of the CLI, with smaller sizes), open and connected."""
    db = Database(
        url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        application_name=application_name or server_application_name(settings.instance_id),
        timeout_s=settings.pool_timeout_s,
        unavailable_wait_s=settings.db_unavailable_wait_s,
        name=name,
    )
    try:
        await db.open(wait=True, timeout=settings.pool_timeout_s)
    except PoolTimeout as exc:
        await db.close()
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL within {settings.pool_timeout_s:g} s "
            "(PGPAGER_POOL_TIMEOUT_S)"
        ) from exc
    return db


async def connect(url: str, what: str = "PostgreSQL") -> psycopg.AsyncConnection[Any]:
    """A connection the pool does not own (cursor hosts, LISTEN, liveness), autocommit."""
    with translated(what):
        conn: psycopg.AsyncConnection[Any] = await psycopg.AsyncConnection.connect(
            url, autocommit=True
        )
        await configure_connection(conn)
    return conn
