"""The runtime: everything that lives as long as a pgpager process, built in one place.

``Runtime.open`` builds the pool, the cursor hosts, every service and, for a server, the
background tasks, and takes them down again in the reverse order. Routes get their service
from it by dependency injection; CLI commands call the same services. ``database`` resolves the
database a process uses: an external URL, or the embedded server.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass

from pgpager import migrations
from pgpager.cursors import CursorHosts
from pgpager.embedded import EmbeddedPostgres
from pgpager.replicas import Replicas
from pgpager.services.admin import Admin
from pgpager.services.auth import Auth
from pgpager.services.collections import Collections
from pgpager.services.embedding import Embedder
from pgpager.services.loading import Loader
from pgpager.services.offset import OffsetPages
from pgpager.services.resumable import ResumableQueries
from pgpager.services.stored_queries import StoredQueries
from pgpager.services.sweeper import Sweeper
from pgpager.services.upstash import UpstashIndex
from pgpager.services.vectors import Vectors
from pgpager.settings import Settings
from pgpager.store import admin as admin_store
from pgpager.store import stored
from pgpager.store.database import (
    Database,
    check_server,
    open_database,
    server_application_name,
    with_application_name,
)
from pgpager.tasks import BackgroundTasks

log = logging.getLogger(__name__)

CLI_APPLICATION_NAME = "pgpager-cli"


@contextmanager
def database(settings: Settings, *, exclusive: bool = False, migrate: bool = True) -> Iterator[str]:
    """Yield a ready database URL: checked for pgvector and, if ``migrate``, at the head revision.

    Without ``settings.database_url`` the embedded server is started (or joined, if another
    process runs it) and stopped again on exit when this process was its last user.
    """
    embedded: EmbeddedPostgres | None = None
    if settings.database_url:
        url = settings.database_url
    else:
        embedded = EmbeddedPostgres(settings.data_dir, exclusive=exclusive)
        url = embedded.start()
    try:
        check_server(url)
        if migrate:
            migrations.upgrade(url)
        yield url
    finally:
        if embedded is not None:
            embedded.stop()


@dataclass(frozen=True)
class Runtime:
    """What a pgpager process holds. Built only by ``Runtime.open``; nothing in it is optional
    and nothing is filled in later."""

    settings: Settings
    database_url: str
    db: Database
    replicas: Replicas
    hosts: CursorHosts
    embedder: Embedder
    auth: Auth
    collections: Collections
    vectors: Vectors
    offset_pages: OffsetPages
    upstash: UpstashIndex
    resumable: ResumableQueries
    stored: StoredQueries
    sweeper: Sweeper
    admin: Admin
    loader: Loader
    tasks: BackgroundTasks

    @classmethod
    @asynccontextmanager
    async def open(
        cls, settings: Settings, database_url: str, *, serve: bool
    ) -> AsyncIterator[Runtime]:
        """The runtime of a server (``serve``: with its background tasks) or of a CLI command
        (a small pool, no background tasks)."""
        if serve:
            application_name = server_application_name(settings.instance_id)
        else:
            application_name = CLI_APPLICATION_NAME
            settings = settings.with_(pool_min_size=1, pool_max_size=2)
        async with AsyncExitStack() as stack:
            # Models load on first use, each once per process; nothing is loaded here.
            embedder = Embedder(settings)
            stack.callback(embedder.close)
            db = await open_database(
                database_url, settings, name=application_name, application_name=application_name
            )
            stack.push_async_callback(db.close)
            # Read replicas serve a server's reads; a CLI command reads the primary.
            if serve:
                replicas = await Replicas.open(db, settings, application_name)
            else:
                replicas = Replicas(db, [], settings)
            stack.push_async_callback(replicas.close)
            # Tagged so that `pgpager handles show` can tell a cursor host's backend apart.
            tagged_url = with_application_name(database_url, application_name)
            hosts = CursorHosts(
                tagged_url, settings.cursor_hosts, settings.hnsw_ef_search, replicas
            )
            stack.push_async_callback(hosts.shutdown)
            resumable = ResumableQueries(db, settings, hosts, tagged_url, embedder)
            runs = StoredQueries(settings, database_url, db, await _secret(db), embedder, replicas)
            offset_pages = OffsetPages(db, settings, embedder, replicas)
            sweeper = Sweeper(db, settings, resumable)
            rt = cls(
                settings=settings,
                database_url=database_url,
                db=db,
                replicas=replicas,
                hosts=hosts,
                embedder=embedder,
                auth=Auth(settings.keys()),
                collections=Collections(db, settings, embedder),
                vectors=Vectors(db, settings, embedder),
                offset_pages=offset_pages,
                upstash=UpstashIndex(db, settings, offset_pages, embedder),
                resumable=resumable,
                stored=runs,
                sweeper=sweeper,
                admin=Admin(db, settings, sweeper, runs),
                loader=Loader(db, settings, embedder),
                tasks=BackgroundTasks(settings.stop_timeout_s),
            )
            if serve:
                await rt._start_serving(stack)
            yield rt

    async def _start_serving(self, stack: AsyncExitStack) -> None:
        """The parts only a server has. Stopped in reverse: background tasks first, then the
        running stored queries, then the instance lock (and the pool and hosts after)."""
        settings = self.settings
        lock = stored.InstanceLock(self.database_url, settings.instance_id)
        await lock.acquire()
        stack.push_async_callback(lock.release)
        stack.push_async_callback(self.stored.close)
        failed = await stored.fail_orphaned_queries(self.db, settings.instance_id)
        if failed:
            log.warning("%d stored queries of stopped servers marked FAILED", failed)
        for line in await self.collections.model_warnings():
            log.warning("%s", line)
        self.tasks.every("instance-lock", settings.liveness_check_s, lock.check)
        self.tasks.every("sweeper", settings.sweep_interval_s, self.sweeper.tick)
        if self.replicas.replicas:
            self.tasks.every("replica-monitor", settings.replica_check_s, self.replicas.check)
        self.tasks.forever(
            "handle-listener",
            self.resumable.follow_notifications,
            retry_s=settings.listener_retry_s,
        )
        stack.push_async_callback(self.tasks.stop)


async def _secret(db: Database) -> stored.Secret:
    """The installation's secret (cursor signing key, reader password), created on first use.
    A database without pgpager's schema (``pgpager status`` before ``db upgrade``) gets a
    throwaway one: nothing there can use it."""
    fresh = stored.Secret(secrets.token_bytes(32), secrets.token_hex(24))
    if await admin_store.schema_revision(db) != migrations.head():
        return fresh
    return await stored.load_secret(db, fresh)
