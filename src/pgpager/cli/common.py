"""What every command shares: the root's options (``Obj``), running a command against the
runtime, confirmations, and the shared options and parameter types. Commands just raise: the
root's ``main`` turns errors into one line and an exit code."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pgpager.errors import PgpagerError
from pgpager.settings import ENV_PREFIX, Settings

if TYPE_CHECKING:
    from pgpager.runtime import Runtime

T = TypeVar("T")


def env(name: str) -> str:
    return ENV_PREFIX + name.upper()


@dataclass
class Obj:
    """What the root command hands its subcommands. ``main`` creates it before the root's
    options are parsed (so that it can tell whether ``-v`` was given); the root fills it in."""

    verbose: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)

    def settings(self, **more: Any) -> Settings:
        return Settings.from_env(**{**self.overrides, **more})


class NotConfirmed(PgpagerError):
    """Not confirmed; nothing was changed."""

    code = "not_confirmed"


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

    settings = obj.settings(**overrides)

    async def go(url: str) -> T:
        async with Runtime.open(settings, url, serve=False) as rt:
            if schema:
                await rt.admin.require_schema()
            return await fn(rt)

    with database(settings, migrate=migrate) as url:
        return asyncio.run(go(url))


def confirm(question: str, yes: bool) -> None:
    """Ask before a destructive action; without a terminal to ask on, refuse (never hang)."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise NotConfirmed(
            f"{question} needs confirmation, but stdin is not a terminal: pass --yes"
        )
    try:
        ok = click.confirm(f"{question}?", default=False, err=True)
    except click.Abort:
        ok = False
        click.echo("", err=True)
    if not ok:
        raise NotConfirmed("not confirmed; nothing was changed")


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
