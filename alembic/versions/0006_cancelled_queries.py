"""Stored queries can be CANCELLED: a Rockset client's cancel_query (DELETE on the Rockset
paths) stops a running query and keeps its record, so its state tells what happened.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("state_known", "stored_queries", schema="pgpager", type_="check")
    op.create_check_constraint(
        "state_known",
        "stored_queries",
        "state IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')",
        schema="pgpager",
    )


def downgrade() -> None:
    op.execute(
        "UPDATE pgpager.stored_queries SET state = 'FAILED', error = 'cancelled' "
        "WHERE state = 'CANCELLED'"
    )
    op.drop_constraint("state_known", "stored_queries", schema="pgpager", type_="check")
    op.create_check_constraint(
        "state_known",
        "stored_queries",
        "state IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED')",
        schema="pgpager",
    )
