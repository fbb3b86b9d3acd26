"""The ``pgpager`` command: serve, load, and the admin commands. Commands are thin: they parse,
call one service, and render. Errors print one line (a traceback only with ``-v``)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pgpager.errors import ConfigurationError, PgpagerError
from pgpager.settings import ENV_PREFIX, Settings

T = TypeVar("T")
log = logging.getLogger("pgpager")


def env(name: str) -> str:
    return ENV_PREFIX + name.upper()


class Obj:
    """What the root command hands its subcommands."""

    def __init__(self, verbose: bool, overrides: dict[str, Any]) -> None:
        self.verbose = verbose
        self.overrides = overrides

    def settings(self, **more: Any) -> Settings:
        return Settings.from_env(**{**self.overrides, **more})


def fail(message: str, code: int = 1) -> None:
    click.echo(f"pgpager: error: {message}", err=True)
    sys.exit(code)


def run(obj: Obj, fn: Callable[[], T]) -> T:
    """Run ``fn``; domain errors become one line on stderr and exit code 1."""
    try:
        return fn()
    except (PgpagerError, ValueError, OSError) as exc:
        if obj.verbose:
            raise
        message = exc.message if isinstance(exc, PgpagerError) else str(exc)
        fail(message)
        raise AssertionError("unreachable") from None


def run_async(obj: Obj, coro_fn: Callable[[], Awaitable[T]]) -> T:
    return run(obj, lambda: asyncio.run(coro_fn()))  # type: ignore[arg-type]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", is_flag=True, help="Show debug logs and tracebacks.")
@click.option(
    "--database-url",
    envvar=env("database_url"),
    show_envvar=True,
    help="PostgreSQL URL. Unset: the embedded PostgreSQL.",
)
@click.option(
    "--data-dir",
    envvar=env("data_dir"),
    show_envvar=True,
    type=click.Path(path_type=Path),
    help="Data directory of the embedded PostgreSQL.",
)
@click.version_option(package_name="pgpager")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, database_url: str | None, data_dir: Path | None) -> None:
    """pgpager: pagination server for vector search on PostgreSQL + pgvector."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = Obj(verbose, {"database_url": database_url, "data_dir": data_dir})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@cli.command()
@click.option("--host", envvar=env("host"), show_envvar=True, default="127.0.0.1", show_default=True)
@click.option("--port", envvar=env("port"), show_envvar=True, default=8000, show_default=True, type=int)
@click.option(
    "--log-level", envvar=env("log_level"), show_envvar=True, default="info", show_default=True
)
@click.pass_obj
def serve(obj: Obj, host: str, port: int, log_level: str) -> None:
    """Run the HTTP server (on the embedded PostgreSQL unless a database URL is set)."""
    import uvicorn

    from pgpager.http.app import create_app
    from pgpager.runtime import database

    settings = run(obj, lambda: obj.settings(host=host, port=port, log_level=log_level))
    logging.getLogger("pgpager").setLevel(log_level.upper())

    def check() -> None:
        if not settings.keys() and not is_loopback(settings.host):
            raise ConfigurationError(
                f"refusing to serve on {settings.host} without API keys: set PGPAGER_API_KEYS "
                "(e.g. 'a-long-secret:admin') or bind to 127.0.0.1"
            )

    run(obj, check)

    def go() -> None:
        with database(settings, exclusive=True) as url:
            where = settings.database_url and "external PostgreSQL" or f"embedded PostgreSQL in {settings.data_dir}"
            click.echo(f"pgpager: serving on http://{settings.host}:{settings.port} ({where})", err=True)
            # uvicorn re-raises the signal that stopped it once it has shut down; with the
            # default SIGTERM action that would kill us before the embedded server is stopped.
            signal.signal(signal.SIGTERM, lambda signum, frame: None)
            uvicorn.run(
                create_app(settings, url),
                host=settings.host,
                port=settings.port,
                log_level=settings.log_level,
                timeout_graceful_shutdown=10,
            )

    run(obj, go)


@cli.command()
@click.argument("collection")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--namespace", default="", help="Namespace to load into.")
@click.option(
    "--defer-index",
    is_flag=True,
    help="Drop the HNSW index before loading and build it once after (faster for big loads).",
)
@click.pass_obj
def load(obj: Obj, collection: str, file: Path, namespace: str, defer_index: bool) -> None:
    """Bulk-load FILE (.npy: ids are row numbers; .jsonl: id, vector, metadata, data)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from pgpager.database import connect
    from pgpager.runtime import database
    from pgpager.services.loading import count_rows, load_file

    settings = run(obj, obj.settings)

    async def go(url: str) -> int:
        total = count_rows(file)
        conn = await connect(url)
        try:
            with Progress(
                *Progress.get_default_columns()[:-1], BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), transient=False, disable=not sys.stderr.isatty(),
            ) as bar:
                task = bar.add_task(f"loading {file.name}", total=total)
                return await load_file(
                    conn,
                    collection,
                    file,
                    namespace=namespace,
                    max_id_length=settings.max_id_length,
                    defer_index=defer_index,
                    progress=lambda n: bar.advance(task, n),
                )
        finally:
            await conn.close()

    def do() -> int:
        with database(settings) as url:
            return asyncio.run(go(url))

    n = run(obj, do)
    click.echo(f"loaded {n} vectors into {collection}" + (f" (namespace {namespace!r})" if namespace else ""))


@cli.group()
def db() -> None:
    """Database schema migrations."""


@db.command()
@click.option("--revision", default="head", show_default=True)
@click.pass_obj
def upgrade(obj: Obj, revision: str) -> None:
    """Migrate the schema up to REVISION."""
    from pgpager import migrations
    from pgpager.runtime import database

    def do() -> None:
        with database(obj.settings(), migrate=False) as url:
            migrations.upgrade(url, revision)
            click.echo(f"at revision {migrations.current(url)}")

    run(obj, do)


@db.command()
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def downgrade(obj: Obj, revision: str, yes: bool) -> None:
    """Migrate the schema down to REVISION ('base' removes everything pgpager created)."""
    from pgpager import migrations
    from pgpager.runtime import database

    if not yes:
        click.confirm(f"downgrade the schema to {revision}? This can drop data", abort=True)

    def do() -> None:
        with database(obj.settings(), migrate=False) as url:
            migrations.downgrade(url, revision)
            click.echo(f"at revision {migrations.current(url)}")

    run(obj, do)


@db.command()
@click.pass_obj
def current(obj: Obj) -> None:
    """Show the schema revision of the database and the newest one this pgpager knows."""
    from pgpager import migrations
    from pgpager.runtime import database

    def do() -> None:
        with database(obj.settings(), migrate=False) as url:
            click.echo(f"current: {migrations.current(url)}  head: {migrations.head()}")

    run(obj, do)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
