"""Group commit of delivery records: the pages resumable queries serve at the same moment are
recorded in one statement and one commit (``record_deliveries`` in store/sql/sessions.sql)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import errors as pgerrors

from pgpager import metrics
from pgpager.store import sessions
from pgpager.store.database import Database

log = logging.getLogger(__name__)

IN_FLIGHT = 1
"""Records running at once. A page that finds none running is recorded at once, alone: one
client waits for nothing more than its own commit. Pages that come while one runs wait for it to
end and are then recorded together, one commit (one WAL flush, one statement, one round trip)
for all of them. Side by side at 2-64 clients, 1 did as well as 2 or 4, and better at 4-8."""
MAX_IDS = 10_000
"""Most ids one record takes (a page larger than this is recorded alone)."""


@dataclass(frozen=True)
class _Page:
    handle: str
    ids: Sequence[str]
    recorded: asyncio.Future[set[str] | None]


class Deliveries:
    """Records the ids that pages deliver. Every page still gets its answer only once its own
    record is committed (and flushed, unless PGPAGER_DELIVERY_SYNC_COMMIT is false): what a
    shared commit changes is how many pages wait for one flush, not what any of them waits for.
    """

    def __init__(self, db: Database, *, sync_commit: bool) -> None:
        self.db = db
        self.sync_commit = sync_commit
        self._waiting: deque[_Page] = deque()
        self._runners = 0
        """Records running, counted down in the same step as a runner finds nothing waiting (a
        task's done callback comes a loop turn later: a page queued in between would strand)."""
        self._tasks: set[asyncio.Task[None]] = set()

    async def record(self, handle: str, ids: Sequence[str]) -> tuple[bool, set[str]]:
        """Whether the handle is still active (and not overdue), and which of ``ids`` are new
        for it: only those may be sent. One page of a handle at a time (the caller holds the
        handle's lock)."""
        if not self._waiting and self._runners < IN_FLIGHT:
            # Nothing to share a commit with: recorded here, with no task and no hand-over.
            self._runners += 1
            try:
                recorded = await self._record_pages([(handle, ids)])
            finally:
                self._runners -= 1
                if self._waiting and self._runners < IN_FLIGHT:
                    self._start()  # pages came while this ran and found no free runner
            fresh = recorded.get(handle)
        else:
            page = _Page(handle, ids, asyncio.get_running_loop().create_future())
            self._waiting.append(page)
            if self._runners < IN_FLIGHT:
                self._start()
            fresh = await page.recorded
        return (False, set()) if fresh is None else (True, fresh)

    def _start(self) -> None:
        self._runners += 1
        task = asyncio.create_task(self._run(), name="pgpager-delivery-record")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        """Records what waits, a batch at a time, until nothing does. A failed record fails
        each of its pages' callers (who drop their cursors and rehydrate from what was
        recorded), never the pages of the next batch."""
        try:
            await self._record_waiting()
        except asyncio.CancelledError:
            if self._runners == 1:
                # The server is stopping: nobody will record what still waits.
                while self._waiting:
                    self._waiting.popleft().recorded.cancel()
            raise
        finally:
            self._runners -= 1

    async def _record_waiting(self) -> None:
        while self._waiting:
            batch = self._take()
            try:
                recorded = await self._record(batch)
            except BaseException as exc:
                for p in batch:
                    if p.recorded.done():
                        continue
                    if isinstance(exc, asyncio.CancelledError):
                        p.recorded.cancel()
                    else:
                        p.recorded.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for p in batch:
                if not p.recorded.done():  # its caller may have gone (a cancelled request)
                    p.recorded.set_result(recorded.get(p.handle))

    async def _record(self, batch: Sequence[_Page]) -> dict[str, set[str]]:
        pages = [(p.handle, p.ids) for p in batch]
        try:
            return await self._record_pages(pages)
        except pgerrors.DeadlockDetected:
            # Another writer (psql; rarely another instance's record: records lock session
            # rows in id order) held one of these handles' rows while waiting for another:
            # rolled back, nothing recorded. Each page alone takes one handle's lock, as every
            # record did before they were shared.
            if len(pages) == 1:
                raise
            log.info(
                "delivery record of %d pages hit a deadlock: recording them one by one", len(pages)
            )
        recorded: dict[str, set[str]] = {}
        for page in pages:
            recorded |= await self._record_pages([page])
        return recorded

    async def _record_pages(self, pages: list[tuple[str, Sequence[str]]]) -> dict[str, set[str]]:
        recorded = await sessions.record_deliveries(self.db, pages, sync_commit=self.sync_commit)
        metrics.delivery_record_pages.observe(len(pages))
        return recorded

    def _take(self) -> list[_Page]:
        """The next batch: pages in arrival order up to ``MAX_IDS`` ids, one page per handle."""
        batch: list[_Page] = []
        handles: set[str] = set()
        later: list[_Page] = []
        ids = 0
        while self._waiting:
            page = self._waiting[0]
            if batch and ids + len(page.ids) > MAX_IDS:
                break
            self._waiting.popleft()
            if page.handle in handles:
                later.append(page)
                continue
            batch.append(page)
            handles.add(page.handle)
            ids += len(page.ids)
        self._waiting.extendleft(reversed(later))
        return batch
