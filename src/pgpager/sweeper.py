"""The sweeper: one background task per server that closes idle handles, reclaims handles whose
cursor's backend is gone, purges closed handles, and expires stored queries.

Each tick re-arms before it works, does bounded work, logs what it did and why, and survives
its own errors. ``sweep_once()`` is the same work, callable from tests and the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psycopg
from psycopg_pool import AsyncConnectionPool

from pgpager import metrics
from pgpager.database import connect
from pgpager.settings import Settings
from pgpager.store import sessions
from pgpager.store.sessions import CHANNEL, RECYCLE, Closed

if TYPE_CHECKING:
    from pgpager.services.resumable import ResumableQueries

log = logging.getLogger(__name__)

# Closed handles stay visible (a late `next` gets 410 with the reason) this long.
CLOSED_RETENTION_S = 86_400


@dataclass
class SweepReport:
    dry_run: bool = False
    expired: list[Closed] = field(default_factory=list)
    reclaimed: list[str] = field(default_factory=list)
    purged: int = 0
    stored_expired: int = 0
    stored_failed: int = 0
    local_dropped: int = 0

    def summary(self) -> str:
        verb = "would expire" if self.dry_run else "expired"
        return (
            f"{verb} {len(self.expired)} handles, reclaimed {len(self.reclaimed)} orphaned, "
            f"purged {self.purged} closed rows, expired {self.stored_expired} stored queries, "
            f"failed {self.stored_failed} orphaned stored queries, "
            f"dropped {self.local_dropped} local cursors"
        )


async def sweep_once(
    pool: AsyncConnectionPool,
    settings: Settings,
    *,
    resumable: ResumableQueries | None = None,
    dry_run: bool = False,
) -> SweepReport:
    limit = settings.sweep_batch_size
    report = SweepReport(dry_run=dry_run)
    report.expired = await sessions.expire_idle(pool, limit, dry_run=dry_run)
    for closed in report.expired:
        log.info(
            "sweeper: %s handle %s: %s",
            (report.dry_run and "would expire") or "expired",
            closed.id[:8],
            closed.reason,
        )
    if dry_run:
        return report
    metrics.sweeps.labels("handle_expired").inc(len(report.expired))
    report.reclaimed = await sessions.reclaim_orphans(pool, limit)
    if report.reclaimed:
        log.info(
            "sweeper: %d handles lost their cursor backend; they rehydrate on next use",
            len(report.reclaimed),
        )
    report.purged = await sessions.purge(pool, limit, CLOSED_RETENTION_S)
    report.stored_expired, report.stored_failed = await _stored_queries(pool, settings, limit)
    metrics.sweeps.labels("stored_query_expired").inc(report.stored_expired)
    if resumable is not None:
        # Cursors of handles closed elsewhere (CLI, another instance) or taken over by another
        # instance: LISTEN usually got there first; this is the backstop.
        mine = list(resumable.live)
        gone = await sessions.closed_among(pool, mine, settings.instance_id)
        report.local_dropped = await resumable.drop_local(gone)
    return report


async def _stored_queries(
    pool: AsyncConnectionPool, settings: Settings, limit: int
) -> tuple[int, int]:
    from pgpager.store import stored

    expired = await stored.expire_stored_queries(pool, limit)
    failed = await stored.fail_orphaned_queries(pool, settings.instance_id)
    return expired, failed


class Sweeper:
    """Runs ``sweep_once`` every ``sweep_interval_s`` seconds until stopped."""

    def __init__(
        self, pool: AsyncConnectionPool, settings: Settings, resumable: ResumableQueries | None
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.resumable = resumable
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pgpager-sweeper")

    async def _run(self) -> None:
        interval = self.settings.sweep_interval_s
        deadline = time.monotonic()
        while True:
            deadline += interval  # re-arm first: a slow tick does not push the schedule back
            try:
                report = await sweep_once(self.pool, self.settings, resumable=self.resumable)
                if report.expired or report.reclaimed or report.stored_expired:
                    log.info("sweeper: %s", report.summary())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweeper tick failed; trying again next tick")
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            deadline = max(deadline, time.monotonic() - interval)

    async def stop(self, wait_s: float = 10.0) -> None:
        if self._task is None:
            return
        self._task.cancel()
        done, _ = await asyncio.wait({self._task}, timeout=wait_s)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                log.error("sweeper ended with an error: %r", t.exception())
        self._task = None


class HandleListener:
    """LISTENs for handles closed anywhere and closes this instance's cursor for them at once."""

    def __init__(self, url: str, resumable: ResumableQueries) -> None:
        self.url = url
        self.resumable = resumable
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pgpager-handle-listener")

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                conn = await connect(self.url)
                try:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.ready.set()
                    backoff = 0.5
                    async for note in conn.notifies():
                        if note.payload == RECYCLE:
                            await self.resumable.recycle_hosts()
                        elif note.payload in self.resumable.live:
                            await self.resumable.drop_local([note.payload])
                            log.info("handle %s was closed elsewhere; closed its cursor",
                                     note.payload[:8])
                finally:
                    await conn.close()
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as exc:
                log.warning("handle listener: %s; reconnecting in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def stop(self, wait_s: float = 5.0) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=wait_s)
            self._task = None
