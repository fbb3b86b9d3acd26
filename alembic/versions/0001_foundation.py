"""Foundation: the vector extension, schemas pgpager and pgpager_data, the collections table.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute("CREATE SCHEMA IF NOT EXISTS pgpager")
    op.execute("CREATE SCHEMA IF NOT EXISTS pgpager_data")
    op.create_table(
        "collections",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("dimension", sa.Integer, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("hnsw_m", sa.Integer, nullable=False, server_default="16"),
        sa.Column("hnsw_ef_construction", sa.Integer, nullable=False, server_default="64"),
        sa.Column("embedding_model", sa.Text),
        sa.Column("table_name", sa.Text, nullable=False, unique=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(
            "metric IN ('cosine', 'euclidean', 'dot_product')", name="metric_known"
        ),
        sa.CheckConstraint("dimension BETWEEN 1 AND 16000", name="dimension_range"),
        schema="pgpager",
    )


def downgrade() -> None:
    op.drop_table("collections", schema="pgpager")
    # Collection tables live in pgpager_data and go with it; the vector extension stays, since
    # other databases objects may use it.
    op.execute("DROP SCHEMA IF EXISTS pgpager_data CASCADE")
    op.execute("DROP SCHEMA IF EXISTS pgpager CASCADE")
