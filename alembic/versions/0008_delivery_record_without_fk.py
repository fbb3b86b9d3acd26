"""The delivery record without a foreign key: a handle's delivered ids go when its session row
goes, by a trigger instead.

Every ``next`` inserts a page's ids into ``query_session_rows``. With the foreign key to
``query_sessions`` each inserted id ran PostgreSQL's referential check (a lookup of the session
row that locks it ``FOR KEY SHARE``): ten per page, 0.03-0.12 ms of a page's 0.3-0.4 ms
durable insert on a 2-core machine, measured side by side. The insert already reads the
session row (only an active, not overdue handle records anything), so the check added no
protection to pgpager's own writes. What the key also did, deleting a session's ids with it
(the sweeper's purge of closed handles, or a psql user's ``DELETE``), a statement-level
trigger now does. The one difference: a session row deleted by hand while its handle is
being paged can leave that page's ids behind, unread (nothing looks them up but their
session); with the key the ``next`` would have failed instead.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FK = "query_session_rows_session_id_fkey"


def upgrade() -> None:
    op.drop_constraint(FK, "query_session_rows", schema="pgpager", type_="foreignkey")
    op.execute(
        """
        CREATE FUNCTION pgpager.forget_delivered_rows() RETURNS trigger
        LANGUAGE plpgsql
        AS $$
        BEGIN
            DELETE FROM pgpager.query_session_rows r USING gone WHERE r.session_id = gone.id;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER query_sessions_forget_delivered_rows
        AFTER DELETE ON pgpager.query_sessions
        REFERENCING OLD TABLE AS gone
        FOR EACH STATEMENT EXECUTE FUNCTION pgpager.forget_delivered_rows()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER query_sessions_forget_delivered_rows ON pgpager.query_sessions")
    op.execute("DROP FUNCTION pgpager.forget_delivered_rows()")
    # Ids left behind by a session deleted while it was paged would refuse the key.
    op.execute(
        """
        DELETE FROM pgpager.query_session_rows r
        WHERE NOT EXISTS (SELECT 1 FROM pgpager.query_sessions q WHERE q.id = r.session_id)
        """
    )
    op.create_foreign_key(
        FK,
        "query_session_rows",
        "query_sessions",
        ["session_id"],
        ["id"],
        source_schema="pgpager",
        referent_schema="pgpager",
        ondelete="CASCADE",
    )
