"""What a running pgpager holds: settings, the pool, and the background parts (cursor hosts,
sweeper). One object, built by the server's lifespan and by the CLI, passed down explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from pgpager.services.resumable import ResumableQueries
from pgpager.services.stored_queries import StoredQueries
from pgpager.settings import ApiKey, Settings
from pgpager.sweeper import Sweeper


@dataclass
class AppContext:
    settings: Settings
    database_url: str
    pool: AsyncConnectionPool
    keys: tuple[ApiKey, ...] = ()
    resumable: ResumableQueries | None = None
    sweeper: Sweeper | None = None
    stored: StoredQueries | None = None
