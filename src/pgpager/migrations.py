"""Runs the Alembic migrations from a checkout or from an installed wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool


def script_location() -> Path:
    """The wheel ships the migrations as ``pgpager/alembic``; a checkout has them at the top."""
    packaged = Path(__file__).parent / "alembic"
    if (packaged / "env.py").exists():
        return packaged
    return Path(__file__).resolve().parents[2] / "alembic"


def revision_module(filename: str) -> ModuleType:
    """The migration ``filename`` of the script directory, loaded as a module: a later
    migration that restores an earlier one's function, or builds on it, reads the SQL from
    there instead of a copy."""
    path = script_location() / "versions" / filename
    spec = importlib.util.spec_from_file_location(f"pgpager_revision_{path.stem}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sqlalchemy_url(url: str) -> str:
    """SQLAlchemy needs the driver named: postgresql:// -> postgresql+psycopg://."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def current(database_url: str) -> str | None:
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table_schema": "public"})
            return ctx.get_current_revision()
    finally:
        engine.dispose()


def head() -> str | None:
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()
