"""Alembic migrations go up and down cleanly, and the packaged location is found."""

from __future__ import annotations

from typing import Any

import psycopg

from pgpager import migrations


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema IN ('pgpager', 'pgpager_data')"
        ).fetchall()
    return {r[0] for r in rows}


def test_up_down_up(fresh_db_url: str) -> None:
    assert migrations.current(fresh_db_url) == migrations.head()
    assert "pgpager.collections" in tables(fresh_db_url)
    assert "pgpager.query_sessions" in tables(fresh_db_url)

    migrations.downgrade(fresh_db_url, "base")
    assert migrations.current(fresh_db_url) is None
    assert tables(fresh_db_url) == set()

    migrations.upgrade(fresh_db_url)
    assert migrations.current(fresh_db_url) == migrations.head()
    assert "pgpager.collections" in tables(fresh_db_url)


def test_each_step_is_reversible(fresh_db_url: str) -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrations.alembic_config(fresh_db_url))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    migrations.downgrade(fresh_db_url, "base")
    for rev in revisions:
        migrations.upgrade(fresh_db_url, rev)
        assert migrations.current(fresh_db_url) == rev
    for rev in reversed(revisions):
        migrations.downgrade(fresh_db_url, "-1")
        assert migrations.current(fresh_db_url) != rev


def test_script_location_has_env() -> None:
    assert (migrations.script_location() / "env.py").exists()


def test_0005_sandbox_is_reversible(fresh_db_url: str) -> None:
    """At 0005 the reader group cannot log in and PUBLIC may not run the sandboxed functions;
    at 0004 both are as before. (The role is cluster-wide: checked right after each step.)"""

    def state() -> tuple[Any, ...]:
        with psycopg.connect(fresh_db_url) as conn:
            row = conn.execute(
                "SELECT rolcanlogin, "
                "has_function_privilege('pgpager_reader', 'pg_notify(text,text)', 'EXECUTE'), "
                "has_function_privilege('pgpager_reader', 'set_config(text,text,boolean)', "
                "'EXECUTE'), "
                "has_function_privilege('pgpager_reader', 'pg_advisory_lock(bigint)', 'EXECUTE') "
                "FROM pg_roles WHERE rolname = 'pgpager_reader'"
            ).fetchone()
        assert row is not None
        return tuple(row)

    migrations.downgrade(fresh_db_url, "0004")
    assert state() == (True, True, True, True)
    migrations.upgrade(fresh_db_url)
    assert state() == (False, False, False, False)


def test_0008_keeps_delivered_ids_with_their_session_both_ways(fresh_db_url: str) -> None:
    """Before 0008 a foreign key deleted a session's delivered ids with it, from 0008 a
    trigger does; going down, ids whose session is gone are dropped so the key can return."""

    def setup(conn: psycopg.Connection[Any], *ids: str) -> None:
        conn.execute(
            "INSERT INTO pgpager.collections (name, dimension, metric, table_name) "
            "VALUES ('c', 3, 'cosine', 'c')"
        )
        for i in ids:
            conn.execute(
                "INSERT INTO pgpager.query_sessions (id, collection, query, max_idle_s, "
                "max_lifetime_s) VALUES (%s, 'c', '{}', 60, 60)",
                [i],
            )
            conn.execute(
                "INSERT INTO pgpager.query_session_rows VALUES (%s, 'r1'), (%s, 'r2')", [i, i]
            )

    def rows(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
        return conn.execute(
            "SELECT session_id, count(*) FROM pgpager.query_session_rows GROUP BY 1 ORDER BY 1"
        ).fetchall()

    for revision in ("0007", "0008"):
        migrations.downgrade(fresh_db_url, "base")
        migrations.upgrade(fresh_db_url, revision)
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            setup(conn, "a", "b")
            conn.execute("DELETE FROM pgpager.query_sessions WHERE id = 'a'")
            assert rows(conn) == [("b", 2)], revision
    # At 0008 ids can outlive their session (deleted by hand while paged): down to 0007 they go.
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO pgpager.query_session_rows VALUES ('gone', 'r1')")
    migrations.downgrade(fresh_db_url, "0007")
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        assert rows(conn) == [("b", 2)]
    migrations.upgrade(fresh_db_url)
