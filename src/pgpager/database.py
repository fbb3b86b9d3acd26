"""Connections: resolving the database URL, checking pgvector, and the async pool."""

from __future__ import annotations

import logging

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from pgpager.errors import ConfigurationError, DatabaseUnavailable
from pgpager.settings import Settings

log = logging.getLogger(__name__)

MIN_PGVECTOR = (0, 8, 0)

# Every connection of a server carries application_name "pgpager:<instance id>", so
# pg_stat_activity shows which servers are running (``pgpager status``) and whose backend a
# handle's cursor lives in (``pgpager handles show``).
SERVER_APPLICATION_PREFIX = "pgpager:"


def server_application_name(instance_id: str) -> str:
    return SERVER_APPLICATION_PREFIX + instance_id


def with_application_name(url: str, application_name: str) -> str:
    """The same connection string, tagged (works for URLs and key=value strings alike)."""
    return make_conninfo(url, application_name=application_name)


def check_server(url: str) -> None:
    """Fail with one clear line if the server is unreachable or pgvector is missing or too old."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            installed = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()
            available = conn.execute(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}".strip()) from exc
    version = installed[0] if installed else (available[0] if available else None)
    if version is None:
        raise ConfigurationError(
            "the PostgreSQL server has no pgvector extension: install pgvector >= 0.8 "
            "(e.g. the pgvector/pgvector Docker image, or apt install postgresql-NN-pgvector), "
            "or unset PGPAGER_DATABASE_URL to use the embedded PostgreSQL"
        )
    if _version_tuple(version) < MIN_PGVECTOR:
        hint = "ALTER EXTENSION vector UPDATE" if installed else "upgrade the pgvector package"
        raise ConfigurationError(
            f"pgvector {version} is too old: pgpager needs >= 0.8 ({hint})"
        )


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


async def configure_connection(conn: psycopg.AsyncConnection[object]) -> None:
    await register_vector_async(conn)


async def open_pool(
    url: str, settings: Settings, *, name: str = "pgpager", application_name: str | None = None
) -> AsyncConnectionPool:
    app_name = application_name or server_application_name(settings.instance_id)
    pool: AsyncConnectionPool = AsyncConnectionPool(
        url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        kwargs={"autocommit": True, "application_name": app_name},
        configure=configure_connection,
        open=False,
        name=name,
    )
    await pool.open(wait=True, timeout=30)
    return pool


async def connect(url: str) -> psycopg.AsyncConnection[object]:
    """A connection the pool does not own (cursor hosts, LISTEN)."""
    conn: psycopg.AsyncConnection[object] = await psycopg.AsyncConnection.connect(
        url, autocommit=True
    )
    await configure_connection(conn)
    return conn
