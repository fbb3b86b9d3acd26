"""Read replicas (DESIGN 10): PostgreSQL hot standbys that serve cursors and page reads.

The primary takes every write. A replica is *in rotation* while it is reachable, still a
standby, runs with ``hot_standby_feedback = on`` and lags the primary by at most
``replica_max_lag_s``; a monitor checks each one every ``replica_check_s``. Lag is measured in
time from WAL positions alone: each check records the primary's position, and a replica's lag
is the age of the oldest recorded position it has not replayed yet (an idle primary writes
nothing, so an idle replica never counts as lagging).

Read-your-writes: a read that must see what the primary holds now (a cursor that skips the
rows a handle delivered, a page of a stored query completed a moment ago) first takes the
primary's position and waits, briefly, for the replica to replay past it (``caught_up``).
After that a new snapshot on the replica shows every transaction committed before it.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pgpager.errors import ConfigurationError, DatabaseUnavailable
from pgpager.settings import Settings
from pgpager.store import replicas as store
from pgpager.store.database import Database, with_application_name

log = logging.getLogger(__name__)

T = TypeVar("T")

FEEDBACK_HINT = (
    "set hot_standby_feedback = on on the standby (ALTER SYSTEM SET hot_standby_feedback = on; "
    "SELECT pg_reload_conf();), or recovery conflicts cancel the cursors it holds"
)


def describe(url: str) -> str:
    """host:port/dbname of a URL, for logs and errors (never its password)."""
    info = conninfo_to_dict(url)
    host = info.get("host") or "localhost"
    return f"{host}:{info.get('port') or 5432}/{info.get('dbname') or ''}"


@dataclass(eq=False)
class Replica:
    """One hot standby: its pool, how far it has replayed, and why it is out of rotation
    (``None`` while it is in)."""

    url: str
    name: str
    db: Database
    replayed: int | None = None
    lag_s: float = 0.0
    out_reason: str | None = "not checked yet"

    @property
    def in_rotation(self) -> bool:
        return self.out_reason is None


class Replicas:
    """The process's replicas, their monitor, and reads that fall back to the primary."""

    def __init__(self, primary: Database, replicas: list[Replica], settings: Settings) -> None:
        self.primary = primary
        self.replicas = replicas
        self.settings = settings
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._turn = itertools.count()

    @classmethod
    async def open(cls, primary: Database, settings: Settings, application_name: str) -> Replicas:
        """Pools for ``settings.read_urls()``, checked once. A standby found running with
        ``hot_standby_feedback = off`` or not in recovery stops the start with a clear error; one
        that does not answer is logged and joins the rotation when it does."""
        replicas: list[Replica] = []
        for url in settings.read_urls():
            tagged = with_application_name(url, application_name)
            db = Database(
                tagged,
                min_size=0,
                max_size=settings.pool_max_size,
                application_name=application_name,
                timeout_s=settings.pool_timeout_s,
                unavailable_wait_s=settings.db_unavailable_wait_s,
                name=f"{application_name}-replica-{len(replicas)}",
            )
            await db.open(wait=False)
            replicas.append(Replica(tagged, describe(url), db))
        self = cls(primary, replicas, settings)
        try:
            await self.check(startup=True)
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        await asyncio.gather(*(r.db.close() for r in self.replicas), return_exceptions=True)

    # --- the monitor -------------------------------------------------------------------------
    async def check(self, *, startup: bool = False) -> None:
        """One monitor step: the primary's position, then each replica's state and lag."""
        if not self.replicas:
            return
        now = time.monotonic()
        try:
            self._samples.append((now, await store.primary_position(self.primary)))
        except DatabaseUnavailable:
            return  # nothing to compare with; the replicas keep their last verdict
        keep = self.settings.replica_max_lag_s * 2 + self.settings.replica_check_s
        while len(self._samples) > 1 and now - self._samples[0][0] > keep:
            self._samples.popleft()
        for r in self.replicas:
            try:
                state = await store.standby_state(r.db)
            except (DatabaseUnavailable, psycopg.Error) as exc:
                self.take_out(r, f"unreachable: {exc}")
                continue
            if not state.in_recovery or state.replayed is None:
                reason = "not a hot standby (pg_is_in_recovery() is false: promoted?)"
                if startup:
                    raise ConfigurationError(f"PGPAGER_READ_DATABASE_URLS: {r.name} is {reason}")
                self.take_out(r, reason)
                continue
            if not state.feedback:
                reason = f"hot_standby_feedback is off: {FEEDBACK_HINT}"
                if startup:
                    raise ConfigurationError(f"PGPAGER_READ_DATABASE_URLS: {r.name}: {reason}")
                self.take_out(r, reason)
                continue
            r.replayed = max(r.replayed or 0, state.replayed)
            r.lag_s = self._lag(r.replayed, now)
            if r.lag_s > self.settings.replica_max_lag_s:
                self.take_out(
                    r,
                    f"lags {r.lag_s:.1f} s behind the primary (PGPAGER_REPLICA_MAX_LAG_S="
                    f"{self.settings.replica_max_lag_s:g})",
                )
            else:
                self._put_in(r)

    def _lag(self, replayed: int, now: float) -> float:
        """Age of the oldest recorded primary position the replica has not replayed."""
        for at, position in self._samples:
            if position > replayed:
                return now - at
        return 0.0

    def take_out(self, r: Replica, reason: str) -> None:
        if r.out_reason is None or r.out_reason == "not checked yet":
            log.warning("replica %s leaves the rotation: %s", r.name, reason)
        r.out_reason = reason

    def _put_in(self, r: Replica) -> None:
        if r.out_reason is not None:
            log.info("replica %s is in the rotation (lag %.1f s)", r.name, r.lag_s)
        r.out_reason = None

    # --- reads -------------------------------------------------------------------------------
    def rotation(self) -> list[Replica]:
        """The replicas in rotation, starting at a different one on each call."""
        live = [r for r in self.replicas if r.in_rotation]
        if not live:
            return []
        start = next(self._turn) % len(live)
        return live[start:] + live[:start]

    async def position(self) -> int:
        """The primary's WAL position now (for ``caught_up``)."""
        return await store.primary_position(self.primary)

    async def caught_up(self, r: Replica, position: int) -> bool:
        """Whether the replica has replayed past ``position``, waiting up to
        ``replica_max_lag_s`` for it; a replica that does not get there leaves the rotation."""
        if r.replayed is not None and r.replayed >= position:
            return True
        deadline = time.monotonic() + self.settings.replica_max_lag_s
        pause = 0.002
        while True:
            try:
                replayed = await store.replayed(r.db)
            except (DatabaseUnavailable, psycopg.Error) as exc:
                self.take_out(r, f"unreachable: {exc}")
                return False
            if replayed is None:
                self.take_out(r, "not a hot standby (promoted?)")
                return False
            r.replayed = max(r.replayed or 0, replayed)
            if replayed >= position:
                return True
            if time.monotonic() >= deadline:
                self.take_out(
                    r,
                    f"did not replay the primary's latest writes within "
                    f"{self.settings.replica_max_lag_s:g} s (PGPAGER_REPLICA_MAX_LAG_S)",
                )
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.01)

    async def read(
        self, work: Callable[[Database], Awaitable[T]], *, after: int | None = None
    ) -> T:
        """``work`` on a replica in rotation, else on the primary. ``after``: a WAL position the
        replica must have replayed first (read-your-writes). A replica that fails to answer, or
        cancels the read for a recovery conflict, hands the read to the next one."""
        for r in self.rotation():
            if after is not None and not await self.caught_up(r, after):
                continue
            try:
                return await work(r.db)
            except DatabaseUnavailable as exc:
                self.take_out(r, f"unreachable: {exc}")
            except psycopg.errors.SerializationFailure as exc:  # a recovery conflict
                log.info("replica %s cancelled a read (%s); reading elsewhere", r.name, exc)
        return await work(self.primary)
