"""The ``pgpager`` command: serve, load, and the admin commands, one module per command group.
Commands are thin: they parse, call one service, and render; they raise on failure, and the root
group's ``main`` is the one place where an error becomes a line on stderr and an exit code."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import psycopg

from pgpager.cli import bench, collections, db, handles, load, models, queries, serve, status
from pgpager.cli.common import Obj, env
from pgpager.errors import PgpagerError

EXIT_CODES = """\b
Exit codes:
  0    ok
  1    operational failure, told in one line 'pgpager: error: ...' (-v adds the traceback)
  2    usage error
  130  interrupted"""

# What goes wrong outside pgpager's control or by the caller's choice: told in one line. Any
# other exception is a bug in pgpager and keeps its traceback.
OPERATIONAL = (PgpagerError, psycopg.Error, OSError, ValueError)


def describe(exc: BaseException) -> str:
    if isinstance(exc, PgpagerError):
        message = exc.message
    elif isinstance(exc, psycopg.Error):
        message = f"database error: {exc}"
    else:
        message = str(exc)
    # One line, whatever the message: psycopg's connection errors span several.
    return " ".join(message.split())


def exit_code(obj: Obj, invoke: Callable[[], Any]) -> int:
    """Run the command line and turn its outcome into the documented exit code."""
    try:
        result = invoke()
    except click.ClickException as exc:  # usage errors (2), unreadable files (1)
        exc.show()
        return exc.exit_code
    except click.Abort as exc:  # click turns Ctrl-C into Abort
        if isinstance(exc.__cause__, KeyboardInterrupt):
            return 130
        click.echo("Aborted!", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo(err=True)
        return 130
    except OPERATIONAL as exc:
        if obj.verbose:
            traceback.print_exc()
        click.echo(f"pgpager: error: {describe(exc)}", err=True)
        return 1
    # --help and --version end in click's Exit, which standalone_mode=False hands back as a code.
    return result if isinstance(result, int) else 0


class Root(click.Group):
    """The root group: its ``main`` is the one error handler of the CLI."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        obj = extra.pop("obj", None) or Obj()
        run = functools.partial(super().main, args, prog_name, complete_var, False, obj=obj)
        sys.exit(exit_code(obj, lambda: run(**extra)))


@click.group(
    cls=Root,
    epilog=EXIT_CODES,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
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
    from pgpager import logs

    logs.configure("debug" if verbose else "warning", "text", access_log=False)
    obj = ctx.ensure_object(Obj)
    obj.verbose = verbose
    obj.overrides = {"database_url": database_url, "data_dir": data_dir}


for command in (
    serve.serve,
    load.load,
    db.db,
    handles.handles,
    queries.queries,
    collections.collections,
    models.models,
    status.status,
    bench.bench,
):
    cli.add_command(command)


def main() -> None:
    """The ``pgpager`` console script (and ``python -m pgpager``)."""
    cli.main()
