"""A start's cap check and first-page record as one function, committed in the same round trip.

A start writes its handle's row while its cursor is declared; once the first page is read it
took the cap's lock, counted the active handles and recorded the page's ids (one pipelined
round trip), and then, the count under the cap, committed (a second round trip, the one that
waits for the WAL flush). Refused by SQL instead (the function removes the row it would have
admitted and answers NULL), the COMMIT goes in the same pipeline as the check: one round trip
after the first page, not two.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


ADMIT_HANDLE = """
        CREATE FUNCTION pgpager.admit_handle(handle text, ids text[], cap integer)
        RETURNS text[]
        LANGUAGE plpgsql
        SET plan_cache_mode = force_generic_plan
        AS $$
        -- Called in the transaction that inserted the handle's row, once its first page
        -- (ids) is known. Starts take turns on a transaction lock, so the count (its own
        -- statement: its snapshot is taken once the lock is held) sees every start that held
        -- the lock before, and every later start sees this one: a burst cannot overshoot the
        -- cap. Over the cap the row is deleted and NULL comes back, so the caller's COMMIT
        -- commits nothing; under it the page is recorded (record_deliveries) and its ids that
        -- were new for the handle come back.
        DECLARE
            recorded text[];
        BEGIN
            PERFORM pg_advisory_xact_lock(hashtext('pgpager.handle_cap'), 0);
            IF (SELECT count(*) FROM pgpager.query_sessions WHERE state = 'active') > cap THEN
                DELETE FROM pgpager.query_sessions WHERE id = handle;
                RETURN NULL;
            END IF;
            SELECT r.fresh INTO recorded
            FROM pgpager.record_deliveries(
                ARRAY[handle], array_fill(handle, ARRAY[cardinality(ids)]), ids, true
            ) AS r;
            RETURN coalesce(recorded, ARRAY[]::text[]);
        END
        $$
        """


def upgrade() -> None:
    op.execute(ADMIT_HANDLE)


def downgrade() -> None:
    op.execute("DROP FUNCTION pgpager.admit_handle(text, text[], integer)")
