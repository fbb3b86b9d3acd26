"""The partial index of active handles is keyed by the handle's id, not by its owner.

Migration 0007's index (``owner_instance`` WHERE ``state = 'active'``) matched every statement
that looks one handle up with ``id = ... AND state = 'active'`` (a cursor's new owner, the
closed-handles check, the delivery record before 0012). When its statistics were taken while
few handles were active (VACUUM or ANALYZE at a quiet moment), the planner believed it empty and
read it instead of the primary key: with 2,000 handles open, setting a handle's owner read all
2,000 (1.6 ms instead of a few microseconds). Keyed by ``id``, the same index answers such a
lookup with one descent whatever the statistics say, and still holds only the active handles
for the cap's count and the sweeper's scans (which read all active handles either way).
``id`` never changes and ``state`` only when a handle closes: the per-page update of
``last_used_at`` stays a HOT update.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "query_sessions_active_id_idx",
        "query_sessions",
        ["id"],
        schema="pgpager",
        postgresql_where=sa.text("state = 'active'"),
    )
    op.drop_index("query_sessions_active_idx", "query_sessions", schema="pgpager")


def downgrade() -> None:
    op.create_index(
        "query_sessions_active_idx",
        "query_sessions",
        ["owner_instance"],
        schema="pgpager",
        postgresql_where=sa.text("state = 'active'"),
    )
    op.drop_index("query_sessions_active_id_idx", "query_sessions", schema="pgpager")
