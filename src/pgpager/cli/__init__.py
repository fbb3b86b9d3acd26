"""The ``pgpager`` command: serve, load, and the admin commands, one module per command group.
Commands are thin: they parse, call one service, and render. Errors print one line (a
traceback only with ``-v``)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from pgpager.cli import bench, collections, db, handles, load, queries, serve, status
from pgpager.cli.common import Obj, env


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


for command in (
    serve.serve,
    load.load,
    db.db,
    handles.handles,
    queries.queries,
    collections.collections,
    status.status,
    bench.bench,
):
    cli.add_command(command)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
