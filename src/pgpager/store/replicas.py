"""What pgpager asks about replication: the primary's WAL position and a hot standby's replay
position (``store/sql/replicas.sql``). Positions are compared as integers (``lsn``)."""

from __future__ import annotations

from dataclasses import dataclass

from pgpager.store.database import Database
from pgpager.store.queries import query


def lsn(text: str) -> int:
    """A ``pg_lsn`` text (``16/B374D848``) as an integer that orders like the position."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass(frozen=True)
class StandbyState:
    in_recovery: bool
    replayed: int | None
    feedback: bool


async def primary_position(primary: Database) -> int:
    async with primary.connection() as conn:
        cur = await conn.execute(query("replicas", "primary_position"))
        row = await cur.fetchone()
    assert row is not None
    return lsn(row[0])


async def standby_state(replica: Database) -> StandbyState:
    async with replica.connection() as conn:
        cur = await conn.execute(query("replicas", "standby_state"))
        row = await cur.fetchone()
    assert row is not None
    return StandbyState(bool(row[0]), None if row[1] is None else lsn(row[1]), bool(row[2]))


async def replayed(replica: Database) -> int | None:
    """How far the standby has replayed; None if it is not (or no longer) a standby."""
    async with replica.connection() as conn:
        cur = await conn.execute(query("replicas", "replayed"))
        row = await cur.fetchone()
    return None if row is None or row[0] is None else lsn(row[0])
