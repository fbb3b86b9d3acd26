"""The delivery record as a function whose plan is made once per connection.

Every ``next`` runs the delivery record (``record_deliveries`` in store/sql/sessions.sql). As a
statement of its own it was planned again on every call: PostgreSQL's plan cache compares the
generic plan's estimate with the custom plans' and, for a handle-id array of unknown length,
estimates the generic one dearer, so it never uses it. Planning the statement's five CTEs took
0.3-0.4 ms, about as long as the durable commit after it (side by side on a 2-core machine: one
page's record 0.79-0.98 ms p50 planned per call, 0.47-0.52 ms with a generic plan). Its plan does
not depend on the values (every table is reached by primary key), so the function fixes the
generic one (``plan_cache_mode``, for its own statements only; every other statement keeps the
server's setting).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


RECORD_DELIVERIES = """
        CREATE FUNCTION pgpager.record_deliveries(
            handles text[], owners text[], ids text[], sync_commit boolean DEFAULT true
        ) RETURNS TABLE (handle text, fresh text[])
        LANGUAGE plpgsql
        SET plan_cache_mode = force_generic_plan
        AS $$
        #variable_conflict use_column
        -- Records the ids that pages of handles deliver (owners[i] delivers ids[i]; a page may
        -- deliver none) in one statement, the caller's transaction. Delivered ids go into
        -- query_session_rows, whose primary key makes a second delivery of an id by the same
        -- handle impossible, whatever happens to cursors or instances. Nothing is inserted for
        -- a handle unless it is active and not overdue; one row comes back per such handle,
        -- with the ids that were new for it. The session row is not rewritten on every call:
        -- cursor hosts hold back VACUUM, so each rewrite would leave a dead version behind and
        -- make every later lookup slower. last_used_at is touched at most once a second, and
        -- at least every tenth of max_idle: idle times are never more than 10% (or 1 s)
        -- stale, so a handle used just within its max_idle never expires in use. With
        -- sync_commit false the transaction does not wait for its WAL flush
        -- (PGPAGER_DELIVERY_SYNC_COMMIT); every other write keeps the server's setting.
        BEGIN
            IF NOT sync_commit THEN
                PERFORM set_config('synchronous_commit', 'off', true);
            END IF;
            RETURN QUERY
            WITH s AS (
                SELECT id FROM pgpager.query_sessions
                WHERE id = ANY(handles) AND state = 'active'
                  AND pgpager.handle_overdue(created_at, last_used_at, max_idle_s,
                                             max_lifetime_s) IS NULL
            ), ins AS (
                INSERT INTO pgpager.query_session_rows (session_id, row_id)
                SELECT s.id, d.row_id
                FROM unnest(owners, ids) AS d(session_id, row_id)
                JOIN s ON s.id = d.session_id
                ON CONFLICT DO NOTHING
                RETURNING session_id, row_id
            ), due AS (
                -- Locked in the order of their ids, whatever order the rows lie in: two
                -- records touching the same handles (two instances) wait for each other in
                -- one order, never in a cycle.
                SELECT q.id FROM pgpager.query_sessions q JOIN s ON s.id = q.id
                WHERE q.last_used_at < now() - least(interval '1 second',
                                                     make_interval(secs => q.max_idle_s / 10.0))
                ORDER BY q.id
                FOR NO KEY UPDATE OF q
            ), touched AS (
                UPDATE pgpager.query_sessions q SET last_used_at = now()
                FROM due
                WHERE q.id = due.id
            )
            SELECT s.id,
                   coalesce(array_agg(ins.row_id) FILTER (WHERE ins.row_id IS NOT NULL),
                            ARRAY[]::text[])
            FROM s LEFT JOIN ins ON ins.session_id = s.id
            GROUP BY s.id;
        END
        $$
        """


def upgrade() -> None:
    op.execute(RECORD_DELIVERIES)


def downgrade() -> None:
    op.execute("DROP FUNCTION pgpager.record_deliveries(text[], text[], text[], boolean)")
