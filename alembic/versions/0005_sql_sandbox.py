"""The SQL sandbox between API keys: a login role per key, and no functions that reach out of
one's own query.

- ``pgpager_reader`` becomes a NOLOGIN group that keeps the read grants. Stored SQL logs in as
  a role of its own per API key, ``pgpager_reader_<key id>``, a member of the group, created by
  pgpager on first use: PostgreSQL lets a backend cancel or terminate only backends of roles
  whose privileges it has, so one key can no longer stop another key's queries.
- EXECUTE on the functions that act beyond one's own query (``pgpager.sandbox_functions``:
  NOTIFY to the servers' channel, ``set_config`` for limits like ``work_mem``, advisory locks,
  transaction ids, WAL messages) is revoked from PUBLIC in this database and granted to the
  role running the migration and the database owner (superusers need no grant).

Revoking EXECUTE on ``pg_catalog`` functions needs a superuser. Without one the migration goes
on with a notice; stored SQL then answers 503 until a superuser revokes them (see the README).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The roles that keep EXECUTE: whoever migrates, and the database owner (the usual service and
# backup roles). Superusers bypass function privileges and get no grant.
_KEEPERS = """
    SELECT rolname FROM pg_roles
    WHERE NOT rolsuper
      AND (rolname = current_user
           OR oid = (SELECT datdba FROM pg_database WHERE datname = current_database()))
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE VIEW pgpager.sandbox_functions AS
        SELECT p.oid::regprocedure AS function
        FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'pg_catalog'::regnamespace
          AND (p.proname IN ('pg_notify', 'set_config', 'txid_current', 'pg_current_xact_id',
                             'pg_logical_emit_message')
               OR p.proname ~ '^pg_(try_)?advisory_')
        """
    )
    op.execute(
        f"""
        DO $$
        DECLARE
            f regprocedure;
            keeper text;
        BEGIN
            FOR f IN SELECT function FROM pgpager.sandbox_functions LOOP
                EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
                FOR keeper IN {_KEEPERS} LOOP
                    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, keeper);
                END LOOP;
            END LOOP;
            IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                RAISE NOTICE 'pgpager: only a superuser can revoke EXECUTE on '
                    'pgpager.sandbox_functions from PUBLIC; stored SQL is unavailable until one '
                    'does (see the README)';
            END IF;
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgpager_reader') THEN
                BEGIN
                    ALTER ROLE pgpager_reader NOLOGIN;
                EXCEPTION WHEN insufficient_privilege THEN
                    RAISE NOTICE 'pgpager: role pgpager_reader can still log in (needs CREATEROLE)';
                END;
            END IF;
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DO $$
        DECLARE
            f regprocedure;
            keeper text;
            reader text;
        BEGIN
            FOR f IN SELECT function FROM pgpager.sandbox_functions LOOP
                EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
                FOR keeper IN {_KEEPERS} LOOP
                    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %I', f, keeper);
                END LOOP;
            END LOOP;
            -- The per-key login roles pgpager created. Roles are cluster-wide: a pgpager
            -- database elsewhere on the cluster creates the ones it needs again on first use.
            FOR reader IN
                SELECT m.rolname
                FROM pg_auth_members AS a
                JOIN pg_roles AS m ON m.oid = a.member
                WHERE a.roleid = (SELECT oid FROM pg_roles WHERE rolname = 'pgpager_reader')
                  AND m.rolname LIKE 'pgpager\\_reader\\_%'
            LOOP
                BEGIN
                    EXECUTE format('ALTER ROLE %I IN DATABASE %I RESET ALL',
                                   reader, current_database());
                    EXECUTE format('DROP ROLE %I', reader);
                EXCEPTION WHEN dependent_objects_still_exist OR insufficient_privilege THEN
                    RAISE NOTICE 'pgpager: role % kept', reader;
                END;
            END LOOP;
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgpager_reader') THEN
                BEGIN
                    ALTER ROLE pgpager_reader LOGIN;
                EXCEPTION WHEN insufficient_privilege THEN
                    RAISE NOTICE 'pgpager: role pgpager_reader left NOLOGIN (needs CREATEROLE)';
                END;
            END IF;
        END
        $$
        """
    )
    op.execute("DROP VIEW pgpager.sandbox_functions")
