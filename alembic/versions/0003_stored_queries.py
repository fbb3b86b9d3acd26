"""Stored queries: the queries, their kept rows, the cursor secret, and the SQL reader role.

``pgpager_reader`` is a LOGIN role (cluster-wide, as all roles are) that may read the collection
tables in ``pgpager_data`` and nothing of ``pgpager``. Stored SQL queries connect as this role,
so the user's SQL cannot SET ROLE or set_config() its way back to the service role. Creating
it needs CREATEROLE; without that the migration goes on and SQL queries answer 503 until a DBA
creates the role (see the README).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stored_queries",
        sa.Column("query_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("request", JSONB, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default="QUEUED"),
        sa.Column("error", sa.Text),
        sa.Column("api_key_id", sa.Text),
        sa.Column("owner_instance", sa.Text),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("elapsed_time_ms", sa.BigInteger),
        sa.Column("doc_count", sa.BigInteger),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("results_total_doc_count", sa.BigInteger),
        sa.CheckConstraint("kind IN ('sql', 'vector_search')", name="kind_known"),
        sa.CheckConstraint(
            "state IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED')", name="state_known"
        ),
        schema="pgpager",
    )
    op.create_index(
        "stored_queries_owner_idx",
        "stored_queries",
        ["api_key_id", "created_at"],
        schema="pgpager",
    )
    op.create_index(
        "stored_queries_expires_idx", "stored_queries", ["expires_at"], schema="pgpager"
    )
    op.create_index(
        "stored_queries_unfinished_idx",
        "stored_queries",
        ["owner_instance"],
        schema="pgpager",
        postgresql_where=sa.text("state IN ('QUEUED', 'RUNNING')"),
    )
    op.create_table(
        "stored_query_rows",
        sa.Column(
            "query_id",
            UUID(as_uuid=False),
            sa.ForeignKey("pgpager.stored_queries.query_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("ordinal", sa.BigInteger, primary_key=True),
        sa.Column("row", JSONB, nullable=False),
        schema="pgpager",
    )
    op.create_table(
        "stored_query_secret",
        sa.Column("id", sa.Boolean, primary_key=True, server_default=sa.true()),
        sa.Column("cursor_key", sa.Text, nullable=False),
        sa.Column("reader_password", sa.Text, nullable=False),
        sa.CheckConstraint("id", name="one_row"),
        schema="pgpager",
    )
    # Shared by every instance and kept across restarts, so cursors stay valid everywhere.
    password = secrets.token_hex(24)
    op.execute(
        sa.text(
            "INSERT INTO pgpager.stored_query_secret (cursor_key, reader_password) "
            "VALUES (:key, :password)"
        ).bindparams(key=secrets.token_hex(32), password=password)
    )
    # The DO block reads the password from a transaction-local setting: no SQL is formatted.
    op.execute(
        sa.text("SELECT set_config('pgpager.reader_password', :password, true)").bindparams(
            password=password
        )
    )
    op.execute(
        """
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgpager_reader') THEN
                BEGIN
                    EXECUTE 'CREATE ROLE pgpager_reader LOGIN NOSUPERUSER NOCREATEDB '
                        || 'NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS PASSWORD '
                        || quote_literal(current_setting('pgpager.reader_password'));
                    ALTER ROLE pgpager_reader SET default_transaction_read_only = on;
                    ALTER ROLE pgpager_reader SET search_path = pgpager_data;
                EXCEPTION WHEN insufficient_privilege THEN
                    RAISE NOTICE 'pgpager: no role pgpager_reader (needs CREATEROLE): no SQL';
                END;
            END IF;
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgpager_reader') THEN
                GRANT USAGE ON SCHEMA pgpager_data TO pgpager_reader;
                GRANT SELECT ON ALL TABLES IN SCHEMA pgpager_data TO pgpager_reader;
                -- Collection tables created later by this (the service) role.
                ALTER DEFAULT PRIVILEGES IN SCHEMA pgpager_data
                    GRANT SELECT ON TABLES TO pgpager_reader;
            END IF;
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgpager_reader') THEN
                ALTER DEFAULT PRIVILEGES IN SCHEMA pgpager_data
                    REVOKE SELECT ON TABLES FROM pgpager_reader;
                REVOKE SELECT ON ALL TABLES IN SCHEMA pgpager_data FROM pgpager_reader;
                REVOKE USAGE ON SCHEMA pgpager_data FROM pgpager_reader;
                -- The role is cluster-wide: other databases may still grant it something.
                BEGIN
                    DROP ROLE pgpager_reader;
                EXCEPTION WHEN dependent_objects_still_exist OR insufficient_privilege THEN
                    RAISE NOTICE 'pgpager: role pgpager_reader kept (still used elsewhere)';
                END;
            END IF;
        END
        $$
        """
    )
    op.drop_table("stored_query_secret", schema="pgpager")
    op.drop_table("stored_query_rows", schema="pgpager")
    op.drop_index("stored_queries_unfinished_idx", table_name="stored_queries", schema="pgpager")
    op.drop_index("stored_queries_expires_idx", table_name="stored_queries", schema="pgpager")
    op.drop_index("stored_queries_owner_idx", table_name="stored_queries", schema="pgpager")
    op.drop_table("stored_queries", schema="pgpager")
