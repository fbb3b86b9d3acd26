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

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION pgpager.record_deliveries(
            handles text[], owners text[], ids text[], sync_commit boolean DEFAULT true
        ) RETURNS TABLE (handle text, fresh text[])
        LANGUAGE plpgsql
        SET plan_cache_mode = force_generic_plan
        SET enable_seqscan = off
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
    )


def downgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION pgpager.record_deliveries(
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
    )
