"""Named SQL queries, kept in ``store/sql/*.sql`` files.

A file holds blocks introduced by ``-- name: query_name``. Queries that touch a collection's
table contain ``{table}`` (and sometimes other ``{identifier}`` slots), filled in with
``psycopg.sql.Identifier``; everything a user sends is a bound ``%(name)s`` parameter.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

from psycopg import sql

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@cache
def _load(group: str) -> dict[str, str]:
    text = resources.files("pgpager.store").joinpath("sql", f"{group}.sql").read_text()
    parts = _NAME.split(text)
    return {parts[i]: _without_comments(parts[i + 1]) for i in range(1, len(parts), 2)}


def _without_comments(block: str) -> str:
    """The query without its full-line comments: they are for readers of the file, and text in
    them (a ``{slot}``, a ``%(name)s``) must not be taken for part of the query."""
    lines = [line for line in block.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip()


def query(group: str, name: str, **identifiers: Any) -> sql.Composed | sql.SQL:
    """The named query of ``store/sql/<group>.sql``; ``identifiers`` fill its ``{slots}``.

    Values may be strings (quoted as identifiers) or ready ``sql.Composable`` pieces.
    """
    template = sql.SQL(_load(group)[name])
    if not identifiers:
        return template
    return template.format(
        **{
            k: v if isinstance(v, sql.Composable) else sql.Identifier(v)
            for k, v in identifiers.items()
        }
    )
