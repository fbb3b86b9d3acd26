"""Alembic environment: the URL comes from pgpager (config attribute) or PGPAGER_DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

from pgpager.migrations import sqlalchemy_url
from pgpager.models import Base

config = context.config
url = config.attributes.get("database_url") or os.environ.get("PGPAGER_DATABASE_URL")
if not url:
    raise SystemExit("set PGPAGER_DATABASE_URL (or run `pgpager db upgrade`)")


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)


def _run(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table_schema="public",
        include_schemas=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
