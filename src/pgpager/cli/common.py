"""What every command shares: the root's options (``Obj``), running a command against the
runtime, confirmations, and the shared options and parameter types."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
import psycopg

from pgpager.errors import PgpagerError
from pgpager.settings import ENV_PREFIX, Settings

if TYPE_CHECKING:
    from pgpager.runtime import Runtime

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
    # One line, whatever the message: psycopg's connection errors span several.
    click.echo(f"pgpager: error: {' '.join(message.split())}", err=True)
    sys.exit(code)


def run(obj: Obj, fn: Callable[[], T]) -> T:
    """Run ``fn``; domain and database errors become one line on stderr and exit code 1."""
    try:
        return fn()
    except (PgpagerError, psycopg.Error, ValueError, OSError) as exc:
        if obj.verbose:
            raise
        if isinstance(exc, PgpagerError):
            message = exc.message
        elif isinstance(exc, psycopg.Error):
            message = f"database error: {exc}"
        else:
            message = str(exc)
        fail(message)
        raise AssertionError("unreachable") from None


def run_async(obj: Obj, coro_fn: Callable[[], Awaitable[T]]) -> T:
    return run(obj, lambda: asyncio.run(coro_fn()))  # type: ignore[arg-type]


def with_runtime(
    obj: Obj,
    fn: Callable[[Runtime], Awaitable[T]],
    *,
    schema: bool = True,
    migrate: bool = False,
    **overrides: Any,
) -> T:
    """Run ``fn(runtime)`` against the server's database (the embedded one is joined if a server
    runs it, started for the while otherwise). ``schema``: require the schema at this
    pgpager's revision first (``migrate``: bring it there). ``overrides``: settings given as
    command options."""
    from pgpager.runtime import Runtime, database

    settings = run(obj, lambda: obj.settings(**overrides))

    async def go(url: str) -> T:
        async with Runtime.open(settings, url, serve=False) as rt:
            if schema:
                await rt.admin.require_schema()
            return await fn(rt)

    def do() -> T:
        with database(settings, migrate=migrate) as url:
            return asyncio.run(go(url))

    return run(obj, do)


def confirm(question: str, yes: bool) -> None:
    """Ask before a destructive action; without a terminal to ask on, refuse (never hang)."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question} needs confirmation, but stdin is not a terminal: pass --yes")
    try:
        ok = click.confirm(f"{question}?", default=False, err=True)
    except click.Abort:
        ok = False
        click.echo("", err=True)
    if not ok:
        fail("not confirmed; nothing was changed")


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (and nothing else) on stdout."
)
yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


class Duration(click.ParamType[float, Any]):
    """A duration: 90, 90s, 10m, 2h, 1d or combined (1h30m)."""

    name = "duration"
    UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
    PART = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower().replace(" ", "")
        parts = self.PART.findall(text)
        if (
            not text
            or "".join(n + u for n, u in parts) != text
            or (len(parts) > 1 and any(u == "" for _, u in parts))
        ):
            self.fail(
                f"{value!r} is not a duration: use e.g. 90s, 10m, 2h, 1d or 1h30m", param, ctx
            )
        return sum(float(n) * self.UNITS[u or "s"] for n, u in parts)
