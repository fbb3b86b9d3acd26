"""The cap on active handles without a count of them on every start.

A start's cap check counted the active handles under a lock that every start takes in turn:
with 2,000 handles open the count took 0.45 ms (an index-only scan whose heap fetches the cursor
hosts' old snapshots keep from being skipped), with 10,000 about 2.3 ms, so a start slowed with
every handle open and starts server-wide could not exceed about 400 a second.

Now every admission draws a number from a sequence while it holds the lock. A server that counted
``active`` handles when the sequence stood at ``admissions`` knows, at a later admission that drew
``n``, that at most ``active + (n - admissions)`` handles are active: every start that drew a
number up to ``admissions`` had finished when that count was made (it holds the lock until it
commits or rolls back), and every handle admitted since drew one of the numbers after. Closed
handles only make the bound loose. The count is made again only when that bound passes the cap
(or the server has none, or an old one): far from the cap a start reads no handle at all.

``admit_handle(handle, ids, cap)`` of migration 0010 stays for servers not yet upgraded; it
draws from the sequence too, so their admissions are never missed by the bound.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

from pgpager.migrations import revision_module

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE pgpager.handle_admissions AS bigint")
    op.execute(
        """
        CREATE FUNCTION pgpager.admit_handle_bounded(
            handle text, ids text[], cap integer, admissions bigint, active bigint
        ) RETURNS TABLE (fresh text[], counted_at bigint, counted bigint)
        LANGUAGE plpgsql
        SET plan_cache_mode = force_generic_plan
        AS $$
        -- Called in the transaction that inserted the handle's row, once its first page (ids)
        -- is known; the caller's COMMIT follows in the same round trip. (admissions, active):
        -- the caller's last count, NULL if it has none. Starts take turns on a transaction
        -- lock; each draws a number from handle_admissions while it holds it. The active
        -- handles are counted (a statement of its own: its snapshot is taken once the lock is
        -- held) only when the bound from the last count passes the cap. Over the cap the row is
        -- deleted and fresh is NULL, so the COMMIT commits nothing; under it the page is
        -- recorded (record_deliveries) and fresh holds its ids that were new for the handle.
        -- counted_at and counted: the count this answer rests on, for the caller to keep.
        DECLARE
            drawn bigint;
        BEGIN
            PERFORM pg_advisory_xact_lock(hashtext('pgpager.handle_cap'), 0);
            drawn := nextval('pgpager.handle_admissions');
            counted_at := admissions;
            counted := active;
            IF admissions IS NULL OR active + (drawn - admissions) > cap THEN
                counted_at := drawn;
                SELECT count(*) INTO counted
                FROM pgpager.query_sessions WHERE state = 'active';
                IF counted > cap THEN
                    DELETE FROM pgpager.query_sessions WHERE id = handle;
                    fresh := NULL;
                    RETURN NEXT;
                    RETURN;
                END IF;
            END IF;
            SELECT r.fresh INTO fresh
            FROM pgpager.record_deliveries(
                ARRAY[handle], array_fill(handle, ARRAY[cardinality(ids)]), ids, true
            ) AS r;
            fresh := coalesce(fresh, ARRAY[]::text[]);
            RETURN NEXT;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE OR REPLACE FUNCTION pgpager.admit_handle(handle text, ids text[], cap integer)
        RETURNS text[]
        LANGUAGE sql
        AS $$
        -- Migration 0010's signature, for servers not yet upgraded: counts every time.
        SELECT fresh FROM pgpager.admit_handle_bounded(handle, ids, cap, NULL, NULL)
        $$
        """
    )


def downgrade() -> None:
    # 0010's function again (its text, made a replacement).
    admit_handle = revision_module("0010_handle_admitted_in_one_statement.py").ADMIT_HANDLE
    op.execute(admit_handle.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.execute("DROP FUNCTION pgpager.admit_handle_bounded(text, text[], integer, bigint, bigint)")
    op.execute("DROP SEQUENCE pgpager.handle_admissions")
