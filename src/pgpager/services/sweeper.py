"""The sweeper: closes idle handles, reclaims handles whose cursor's backend is gone, purges
closed handles, and expires stored queries. The runtime runs ``sweep_once`` every
``sweep_interval_s`` as a background task; the CLI runs it once (``pgpager handles sweep``).

Each run does bounded work (``sweep_batch_size``) and logs what it did and why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pgpager import metrics
from pgpager.services.resumable import ResumableQueries
from pgpager.settings import Settings
from pgpager.store import sessions, stored
from pgpager.store.database import Database
from pgpager.store.sessions import Closed

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    dry_run: bool = False
    expired: list[Closed] = field(default_factory=list)
    reclaimed: list[str] = field(default_factory=list)
    purged: int = 0
    stored_expired: int = 0
    stored_failed: int = 0
    local_dropped: int = 0

    @property
    def acted(self) -> bool:
        return bool(self.expired or self.reclaimed or self.stored_expired or self.stored_failed)

    def summary(self) -> str:
        verb = "would expire" if self.dry_run else "expired"
        return (
            f"{verb} {len(self.expired)} handles, reclaimed {len(self.reclaimed)} orphaned, "
            f"purged {self.purged} closed rows, expired {self.stored_expired} stored queries, "
            f"failed {self.stored_failed} orphaned stored queries, "
            f"dropped {self.local_dropped} local cursors"
        )


class Sweeper:
    """One sweep of this instance's database (and of this process's cursors)."""

    def __init__(self, db: Database, settings: Settings, resumable: ResumableQueries) -> None:
        self.db = db
        self.settings = settings
        self.resumable = resumable

    async def tick(self) -> None:
        """The background task's work: one sweep, logged when it did something."""
        report = await self.sweep_once()
        if report.acted:
            log.info("sweeper: %s", report.summary())

    async def sweep_once(self, *, dry_run: bool = False) -> SweepReport:
        db, limit = self.db, self.settings.sweep_batch_size
        report = SweepReport(dry_run=dry_run)
        report.expired = await sessions.expire_idle(db, limit, dry_run=dry_run)
        for closed in report.expired:
            log.info(
                "sweeper: %s handle %s: %s",
                "would expire" if dry_run else "expired",
                closed.id[:8],
                closed.reason,
            )
        if dry_run:
            return report
        metrics.sweeps.labels("handle_expired").inc(len(report.expired))
        report.reclaimed = await sessions.reclaim_orphans(db, limit)
        if report.reclaimed:
            log.info(
                "sweeper: %d handles lost their cursor backend; they rehydrate on next use",
                len(report.reclaimed),
            )
        report.purged = await sessions.purge(db, limit, self.settings.closed_handle_retention_s)
        report.stored_expired = await stored.expire_stored_queries(db, limit)
        report.stored_failed = await stored.fail_orphaned_queries(db, self.settings.instance_id)
        metrics.sweeps.labels("stored_query_expired").inc(report.stored_expired)
        # Cursors of handles closed elsewhere (CLI, another instance) or taken over by another
        # instance: the NOTIFY listener usually got there first; this is the backstop.
        report.local_dropped = await self.resumable.drop_closed_elsewhere()
        return report
