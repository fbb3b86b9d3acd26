"""The delivery record finds its handles by primary key, not by scanning every active handle.

The record (``record_deliveries``, migration 0009) looked its handles up with ``id = ANY(handles)
AND state = 'active'``. The second condition is the predicate of the partial index of active
handles (migration 0007), and the plan made for the function (once per connection, generic)
could take that index: with 2,000 handles open, each record read all 2,000 index entries and
their rows to keep one (0.48 ms instead of 0.07 ms in pg_stat_statements), and a start's and
every ``next``'s cost grew with the number of handles open. It happened whenever the index's
statistics were older than its contents (a burst of starts after a quiet time), and the plan
stayed for the connection's life. The ids are now looked up first, in a materialized CTE with
no other condition, so the only index that can serve it is the primary key; and the function
plans without sequential scans (every table it reads is reached by key): a plan made while the
sessions table was empty, or believed so, read all of it on every call.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

from pgpager.migrations import revision_module

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


# 0009's function, made a replacement; upgrade() changes its lookup and its planner settings.
RECORD_DELIVERIES_0009 = revision_module(
    "0009_delivery_record_planned_once.py"
).RECORD_DELIVERIES.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
LOOKUP_0009 = """
            WITH s AS (
                SELECT id FROM pgpager.query_sessions
                WHERE id = ANY(handles) AND state = 'active'
                  AND pgpager.handle_overdue(created_at, last_used_at, max_idle_s,
                                             max_lifetime_s) IS NULL
            ), ins AS ("""
LOOKUP = """
            WITH byid AS MATERIALIZED (
                -- By primary key, and only then by state (migration 0012).
                SELECT id, state, created_at, last_used_at, max_idle_s, max_lifetime_s
                FROM pgpager.query_sessions
                WHERE id = ANY(handles)
            ), s AS (
                SELECT id FROM byid
                WHERE state = 'active'
                  AND pgpager.handle_overdue(created_at, last_used_at, max_idle_s,
                                             max_lifetime_s) IS NULL
            ), ins AS ("""
PLANNED = """
        SET plan_cache_mode = force_generic_plan
"""


def upgrade() -> None:
    assert RECORD_DELIVERIES_0009.count(LOOKUP_0009) == RECORD_DELIVERIES_0009.count(PLANNED) == 1
    op.execute(
        RECORD_DELIVERIES_0009.replace(LOOKUP_0009, LOOKUP).replace(
            PLANNED, PLANNED + "        SET enable_seqscan = off\n"
        )
    )


def downgrade() -> None:
    op.execute(RECORD_DELIVERIES_0009)
