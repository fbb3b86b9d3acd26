"""The user's SQL text, read as PostgreSQL's lexer reads it: named parameters (``:name``, as in
Rockset) become ``$n`` and their values are bound, never spliced; a top-level ``LIMIT`` can be
seen; error positions map back to what the user wrote.

Only the lexical level matters here: string constants (``'...'``, ``E'...'``, ``U&'...'``),
quoted identifiers, dollar quoting (``$tag$...$tag$``), ``--`` and nested ``/* */`` comments and
the ``::`` cast are skipped, so a ``:word`` inside any of them is left alone.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.types.numeric import Int8

from pgpager.errors import InvalidRequest

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")

INT8_MIN, INT8_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Token:
    """A piece of the text outside strings and comments: a word, a named parameter
    (``kind == "param"``, ``text`` without the colon) or one other character."""

    kind: str
    text: str
    start: int
    end: int


def tokens(text: str) -> Iterator[Token]:
    """The text's words, named parameters, parentheses and semicolons, with positions; quoted
    and commented parts are skipped. Unterminated quotes or comments end the scan (PostgreSQL
    reports them itself)."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "-" and text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "/" and text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "'":
            escapes = i > 0 and text[i - 1] in "eE" and (i < 2 or not _is_word(text[i - 2]))
            i = _skip_string(text, i + 1, escapes)
        elif c == '"':
            i = _skip_quoted(text, i + 1, '"')
        elif c == "$":
            m = _DOLLAR_TAG.match(text, i)
            if m and (i == 0 or not _is_word(text[i - 1])):
                j = text.find(m.group(0), m.end())
                i = n if j < 0 else j + len(m.group(0))
            else:
                i += 1
                while i < n and text[i].isdigit():
                    i += 1
        elif c == ":":
            if text.startswith("::", i):
                i += 2
                continue
            m = _IDENT.match(text, i + 1)
            if m and (i == 0 or text[i - 1] != ":"):
                yield Token("param", m.group(0), i, m.end())
                i = m.end()
            else:
                i += 1
        elif _is_word(c) and not c.isdigit():
            m = _WORD.match(text, i)
            assert m is not None
            # E'...', U&'...', B'...', X'...' are strings with a prefix: the quote is next.
            yield Token("word", m.group(0), i, m.end())
            i = m.end()
        else:
            if c in "();":
                yield Token(c, c, i, i + 1)
            i += 1


def _is_word(c: str) -> bool:
    return c.isalnum() or c == "_"


def _skip_string(text: str, i: int, escapes: bool) -> int:
    n = len(text)
    while i < n:
        c = text[i]
        if escapes and c == "\\":
            i += 2
        elif c == "'":
            if text.startswith("''", i):
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return n


def _skip_quoted(text: str, i: int, quote: str) -> int:
    n = len(text)
    while i < n:
        if text[i] == quote:
            if text.startswith(quote * 2, i):
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return n


def has_top_level_limit(text: str) -> bool:
    """Whether the statement itself (not a subquery) ends with LIMIT or FETCH FIRST/NEXT."""
    depth = 0
    for t in tokens(text):
        if t.kind == "(":
            depth += 1
        elif t.kind == ")":
            depth = max(0, depth - 1)
        elif depth == 0 and t.kind == "word" and t.text.lower() in ("limit", "fetch"):
            return True
    return False


COMMANDS = frozenset(
    {
        "abort",
        "alter",
        "analyze",
        "begin",
        "call",
        "checkpoint",
        "close",
        "cluster",
        "comment",
        "commit",
        "copy",
        "create",
        "deallocate",
        "declare",
        "delete",
        "discard",
        "do",
        "drop",
        "end",
        "execute",
        "explain",
        "fetch",
        "grant",
        "import",
        "insert",
        "listen",
        "load",
        "lock",
        "merge",
        "move",
        "notify",
        "prepare",
        "reassign",
        "refresh",
        "reindex",
        "release",
        "reset",
        "revoke",
        "rollback",
        "savepoint",
        "security",
        "set",
        "show",
        "start",
        "truncate",
        "unlisten",
        "update",
        "vacuum",
    }
)
"""Words that begin a PostgreSQL statement other than a query."""


def first_word(text: str) -> Token | None:
    return next((t for t in tokens(text) if t.kind == "word"), None)


# --- named parameters -------------------------------------------------------------------------
@dataclass(frozen=True)
class NamedParameter:
    """A Rockset query parameter: ``value`` is text, read as ``type``."""

    name: str
    type: str
    value: str | None


def _int(name: str, value: str) -> Int8:
    """Bound as bigint (Rockset's int is 64 bits): psycopg would pick the smallest type."""
    return Int8(_whole(name, value))


def _whole(name: str, value: str) -> int:
    try:
        n = int(value.strip())
    except ValueError:
        raise _bad(name, "int", value, "a whole number such as 42") from None
    if not INT8_MIN <= n <= INT8_MAX:
        raise _bad(name, "int", value, "a whole number that fits in 64 bits")
    return n


def _float(name: str, value: str) -> float:
    try:
        x = float(value.strip())
    except ValueError:
        raise _bad(name, "float", value, "a number such as 1.5") from None
    if math.isnan(x) and value.strip().lower() not in ("nan", "+nan", "-nan"):
        raise _bad(name, "float", value, "a number such as 1.5")
    return x


def _bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "false"):
        return v == "true"
    raise _bad(name, "bool", value, "true or false")


def _string(name: str, value: str) -> str:
    if "\x00" in value:
        raise InvalidRequest(
            f"parameter {name!r}: a string must not contain NUL characters",
            field="sql.parameters",
            parameter=name,
        )
    return value


def _date(name: str, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise _bad(name, "date", value, "a date such as 2024-05-31") from None


def _datetime(name: str, value: str) -> dt.datetime:
    try:
        d = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise _bad(name, "datetime", value, "a date and time such as 2024-05-31T12:30:00") from None
    if d.tzinfo is not None:
        raise _bad(
            name, "datetime", value, "a date and time without a time zone (use type timestamp)"
        )
    return d


def _time(name: str, value: str) -> dt.time:
    try:
        t = dt.time.fromisoformat(value.strip())
    except ValueError:
        raise _bad(name, "time", value, "a time such as 12:30:00") from None
    if t.tzinfo is not None:
        raise _bad(name, "time", value, "a time without a time zone")
    return t


def _timestamp(name: str, value: str) -> dt.datetime:
    """An instant: ISO 8601 with an offset (``Z`` for UTC); without one it is UTC, as in
    Rockset."""
    try:
        d = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise _bad(name, "timestamp", value, "an instant such as 2024-05-31T12:30:00Z") from None
    return d if d.tzinfo is not None else d.replace(tzinfo=dt.UTC)


def _bytes(name: str, value: str) -> bytes:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _bad(name, "bytes", value, "base64 text") from None


def _microseconds(name: str, value: str) -> dt.timedelta:
    return dt.timedelta(microseconds=_whole(name, value))


_READERS: dict[str, Any] = {
    "int": _int,
    "float": _float,
    "bool": _bool,
    "boolean": _bool,
    "string": _string,
    "date": _date,
    "datetime": _datetime,
    "time": _time,
    "timestamp": _timestamp,
    "bytes": _bytes,
    "microsecond_interval": _microseconds,
}
TYPES = (*_READERS, "null")
"""The Rockset scalar types a parameter may have."""


def _bad(name: str, type_: str, value: str, expected: str) -> InvalidRequest:
    shown = value if len(value) <= 60 else value[:57] + "..."
    return InvalidRequest(
        f"parameter {name!r} has type {type_} but its value {shown!r} is not {expected}",
        field="sql.parameters",
        parameter=name,
    )


def typed_value(p: NamedParameter) -> Any:
    """The parameter's value as the Python value psycopg binds with the matching type."""
    kind = p.type.strip().lower()
    if kind == "null":
        return None
    reader = _READERS.get(kind)
    if reader is None:
        raise InvalidRequest(
            f"parameter {p.name!r} has type {p.type!r}; the types are " + ", ".join(TYPES),
            field="sql.parameters",
            parameter=p.name,
        )
    if p.value is None:
        raise InvalidRequest(
            f"parameter {p.name!r} has no value; give one, or use type null",
            field="sql.parameters",
            parameter=p.name,
        )
    return reader(p.name, p.value)


@dataclass(frozen=True)
class Bound:
    """The text with ``$n`` in place of each ``:name``, the values in ``$n`` order, and how to
    turn a position in the new text back into one in the user's."""

    text: str
    values: list[Any]
    _shifts: tuple[tuple[int, int], ...] = ()
    """(position in the new text where a replacement ends, characters added so far)."""

    def original_position(self, position: int) -> int:
        """A 1-based position in ``text`` as a 1-based position in the user's text."""
        ends = [end for end, _ in self._shifts]
        k = bisect_right(ends, position - 1)
        return position - (self._shifts[k - 1][1] if k else 0)


def bind_named(text: str, parameters: Sequence[NamedParameter]) -> Bound:
    """Replace each ``:name`` with ``$n`` (the same name, the same n). A name used but not
    given, given but not used, or given twice is an error naming it."""
    by_name: dict[str, NamedParameter] = {}
    for p in parameters:
        if not _IDENT.fullmatch(p.name):
            raise InvalidRequest(
                f"parameter name {p.name!r} is not a name: use letters, digits and _, "
                "not starting with a digit",
                field="sql.parameters",
                parameter=p.name,
            )
        if p.name in by_name:
            raise InvalidRequest(
                f"parameter {p.name!r} is given twice", field="sql.parameters", parameter=p.name
            )
        by_name[p.name] = p
    numbers: dict[str, int] = {}
    values: list[Any] = []
    out: list[str] = []
    shifts: list[tuple[int, int]] = []
    last = 0
    added = 0
    for t in tokens(text):
        if t.kind != "param":
            continue
        given = by_name.get(t.text)
        if given is None:
            raise InvalidRequest(
                f"the query uses :{t.text} but sql.parameters has no parameter named {t.text!r}",
                field="sql.parameters",
                parameter=t.text,
            )
        if t.text not in numbers:
            values.append(typed_value(given))
            numbers[t.text] = len(values)
        placeholder = f"${numbers[t.text]}"
        out.append(text[last : t.start])
        out.append(placeholder)
        added += len(placeholder) - (t.end - t.start)
        shifts.append((sum(map(len, out)), added))
        last = t.end
    unused = [name for name in by_name if name not in numbers]
    if unused:
        raise InvalidRequest(
            "sql.parameters names "
            + ", ".join(repr(u) for u in unused)
            + f" but the query does not use {'it' if len(unused) == 1 else 'them'} "
            f"(write :{unused[0]} where the value goes, or drop the parameter)",
            field="sql.parameters",
            parameter=unused[0],
        )
    out.append(text[last:])
    return Bound("".join(out), values, tuple(shifts))


def named_parameters(items: Sequence[Any]) -> list[NamedParameter] | None:
    """``items`` as Rockset named parameters if they are (objects of name, type and value),
    None if they are positional values (bound to ``$1``, ``$2``, ...). Mixing is an error."""
    named = [_is_named(x) for x in items]
    if not any(named):
        return None
    if not all(named):
        raise InvalidRequest(
            "sql.parameters mixes named parameters ({name, type, value}) with positional "
            "values: use one kind (named for :name, positional for $1, $2, ...)",
            field="sql.parameters",
        )
    return [NamedParameter(x["name"], x["type"], _text(x.get("value"))) for x in items]


def _text(value: Any) -> str | None:
    """Rockset sends every value as text; a JSON number or boolean is taken as its text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value is None else str(value)


def _is_named(x: Any) -> bool:
    return (
        isinstance(x, dict)
        and {"name", "type"} <= x.keys() <= {"name", "type", "value"}
        and isinstance(x["name"], str)
        and isinstance(x["type"], str)
        and isinstance(x.get("value"), str | int | float | None)
    )


def line_and_column(text: str, position: int) -> tuple[int, int]:
    """A 1-based character position as a 1-based (line, column)."""
    before = text[: max(0, position - 1)]
    line = before.count("\n") + 1
    return line, position - (before.rfind("\n") + 1)
