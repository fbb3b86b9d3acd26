"""Resumable queries: the sessions table and the ids each handle has delivered.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "query_sessions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column(
            "collection",
            sa.Text,
            sa.ForeignKey("pgpager.collections.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("namespace", sa.Text, nullable=False, server_default=""),
        sa.Column("query", JSONB, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("phase", sa.Text, nullable=False, server_default="index"),
        sa.Column("state", sa.Text, nullable=False, server_default="active"),
        sa.Column("state_reason", sa.Text),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "last_used_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.Column("max_idle_s", sa.Integer, nullable=False),
        sa.Column("max_lifetime_s", sa.Integer, nullable=False),
        sa.Column("owner_instance", sa.Text),
        sa.Column("owner_pid", sa.Integer),
        sa.Column("cursor_name", sa.Text),
        sa.Column("api_key_id", sa.Text),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "state IN ('active', 'exhausted', 'stopped', 'expired')", name="state_known"
        ),
        sa.CheckConstraint("phase IN ('index', 'exact')", name="phase_known"),
        schema="pgpager",
        # Every `next` updates position and last_used_at. With no index on those columns and
        # room left on each page, the updates are HOT: no index entries, no bloat with depth.
        postgresql_with={"fillfactor": 50},
    )
    op.create_table(
        "query_session_rows",
        sa.Column(
            "session_id",
            sa.Text,
            sa.ForeignKey("pgpager.query_sessions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("row_id", sa.Text, primary_key=True),
        schema="pgpager",
    )


def downgrade() -> None:
    op.drop_table("query_session_rows", schema="pgpager")
    op.drop_table("query_sessions", schema="pgpager")
