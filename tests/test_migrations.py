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
