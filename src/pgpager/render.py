"""Rendering for the CLI: rich tables for people, JSON for scripts (and nothing else on stdout)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def console() -> Console:
    # Piped output is not cut to 80 columns: handle ids must survive `| grep`.
    wide = None if sys.stdout.isatty() else 240
    return Console(file=sys.stdout, width=wide, highlight=False, soft_wrap=False)


def show(renderable: Any) -> None:
    c = console()
    if c.is_terminal:
        c.print(renderable)
        return
    # Plain text for pipes and files: no padding at line ends.
    with c.capture() as captured:
        c.print(renderable)
    sys.stdout.write("".join(ln.rstrip() + "\n" for ln in captured.get().splitlines()))
    sys.stdout.flush()


def jsonable(value: Any) -> Any:
    """Dataclasses, datetimes, paths and mappings as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {("" if k is None else str(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(value), indent=2) + "\n")
    sys.stdout.flush()


def table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None
) -> None:
    t = Table(
        *columns, title=title, title_justify="left", box=None, pad_edge=False, header_style="bold"
    )
    for c in t.columns:
        c.no_wrap = True
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    show(t)


def fields(pairs: Iterable[tuple[str, Any]], *, title: str | None = None) -> None:
    """A two-column key/value view."""
    t = Table(show_header=False, title=title, title_justify="left", box=None, pad_edge=False)
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")
    for key, value in pairs:
        t.add_row(key, "-" if value is None or value == "" else str(value))
    show(t)


def line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def duration(seconds: float | None) -> str:
    """Compact human duration: 45s, 12m 03s, 3h 05m, 2d 04h."""
    if seconds is None:
        return "-"
    s = round(seconds)
    sign = "-" if s < 0 else ""
    s = abs(s)
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m {s % 60:02d}s"
    if s < 86_400:
        return f"{sign}{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{sign}{s // 86_400}d {s % 86_400 // 3600:02d}h"


def when(value: dt.datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def size(n: int | None) -> str:
    if n is None:
        return "-"
    f = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if f < 1024 or unit == "TB":
            return f"{f:.0f} {unit}" if unit == "B" else f"{f:.1f} {unit}"
        f /= 1024
    return f"{n} B"
