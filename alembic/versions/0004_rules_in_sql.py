"""Rules that live once, in SQL: the score of a distance, and when a handle is overdue.

``pgpager.score(metric, distance)`` is the 0..1 similarity every query style reports (Upstash's
formulas). ``pgpager.handle_overdue(...)`` says why an active handle should be expired (its
lifetime or its idle time ran out), or NULL; the sweeper, ``next`` and the status views all ask
it. Both are plain SQL functions that PostgreSQL inlines.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION pgpager.score(metric text, distance float8) RETURNS float8
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$
            SELECT CASE metric
                WHEN 'cosine' THEN greatest(0.0, least(1.0, 1.0 - distance / 2.0))
                WHEN 'euclidean' THEN 1.0 / (1.0 + distance * distance)
                ELSE greatest(0.0, least(1.0, (1.0 - distance) / 2.0))
            END
        $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION pgpager.handle_overdue(
            created_at timestamptz, last_used_at timestamptz, max_idle_s int, max_lifetime_s int
        ) RETURNS text
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $$
            SELECT CASE
                WHEN created_at + make_interval(secs => max_lifetime_s) < now()
                    THEN format('reached the maximum lifetime of %s s', max_lifetime_s)
                WHEN last_used_at + make_interval(secs => max_idle_s) < now()
                    THEN format('idle for more than %s s', max_idle_s)
            END
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION pgpager.handle_overdue(timestamptz, timestamptz, int, int)")
    op.execute("DROP FUNCTION pgpager.score(text, float8)")
