"""The metadata filter language (Upstash Vector's SQL-like syntax).

``parse_filter`` turns filter text into a small AST; ``compile_filter`` turns it into a boolean
SQL expression over a jsonb column whose every user-supplied value is a bound parameter.
The language is described for users in ``docs/filter-language.md``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal, TypeAlias, cast

from psycopg import sql
from psycopg.sql import Composable
from psycopg.types.json import Jsonb

from pgpager.errors import InvalidFilter

MAX_FILTER_LENGTH: Final = 10_000
"""Longest filter text accepted, in characters."""

MAX_DEPTH: Final = 64
"""Deepest nesting of parentheses accepted."""

MAX_PATH_STEPS: Final = 32
"""Most steps (keys and indexes) in one field path."""

MAX_INDEX: Final = 2**31 - 1
"""Largest array index (or distance from the end) accepted: PostgreSQL's int4."""

MAX_EXPONENT: Final = 1000
"""Numbers must lie within 10**±MAX_EXPONENT (zero aside), well inside PostgreSQL's numeric."""

Scalar: TypeAlias = str | Decimal | bool
"""A literal value. Numbers are Decimals so that they compare exactly as PostgreSQL's numeric."""

Step: TypeAlias = str | int
"""One step of a path: an object key, or an array index (negative counts from the end)."""

Path: TypeAlias = tuple[Step, ...]

CompareOp: TypeAlias = Literal["=", "!=", "<", "<=", ">", ">="]


# --- AST -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """``path op value``."""

    path: Path
    op: CompareOp
    value: Scalar


@dataclass(frozen=True)
class Glob:
    """``path [NOT] GLOB 'pattern'``."""

    path: Path
    pattern: str
    negated: bool = False


@dataclass(frozen=True)
class In:
    """``path [NOT] IN (value, ...)``."""

    path: Path
    values: tuple[Scalar, ...]
    negated: bool = False


@dataclass(frozen=True)
class Contains:
    """``path [NOT] CONTAINS value``: the field is an array with (without) an equal element."""

    path: Path
    value: Scalar
    negated: bool = False


@dataclass(frozen=True)
class HasField:
    """``HAS [NOT] FIELD path``."""

    path: Path
    negated: bool = False


@dataclass(frozen=True)
class And:
    """All operands hold."""

    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """At least one operand holds."""

    operands: tuple[Node, ...]


Node: TypeAlias = Comparison | Glob | In | Contains | HasField | And | Or


@dataclass(frozen=True)
class CompiledFilter:
    """A filter as SQL: splice ``sql`` into a WHERE clause and pass ``params`` with the query.

    ``sql`` is TRUE or FALSE for every row whose metadata is not SQL NULL; where the metadata
    column is NULL some GIN-servable forms yield NULL, which WHERE treats as no match. That is
    the same answer as for an empty object ``{}``, which is how NULL metadata is defined to
    behave (so ``HAS NOT FIELD x`` matches it).
    """

    sql: Composable
    params: dict[str, Any]

    @property
    def matches_all(self) -> bool:
        """No filter was given (an empty or blank one): every row matches."""
        return self.sql is _TRUE


# --- tokens ----------------------------------------------------------------------------------
TokenKind: TypeAlias = Literal["ident", "string", "number", "op", "punct", "end"]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: TokenKind
    text: str  # the source text of the token (for strings: including the quotes)
    pos: int  # 0-based offset into the filter text
    value: Any = None  # str for strings, Decimal for numbers

    def keyword(self) -> str | None:
        """The keyword this identifier spells; ASCII only, since a dotless i upper-cases to I."""
        if self.kind == "ident" and self.text.isascii():
            return self.text.upper()
        return None

    def describe(self) -> str:
        if self.kind == "end":
            return "end of input"
        shown = self.text if len(self.text) <= 30 else self.text[:27] + "..."
        if self.kind == "string":
            return f"the string {shown}"
        if self.kind == "number":
            return f"the number {shown}"
        return f"'{shown}'"


_IDENT = re.compile(r"(?:[^\W\d]|\$)(?:\w|\$)*")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_OPERATORS = ("!=", "<=", ">=", "=", "<", ">")
_PUNCTUATION = "()[],.#"
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t"}  # fmt: skip
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")


def _fail(pos: int, message: str) -> InvalidFilter:
    return InvalidFilter(f"filter: at position {pos + 1}, {message}", position=pos + 1)


def _expected(what: str, token: _Token) -> InvalidFilter:
    return _fail(token.pos, f"expected {what} but found {token.describe()}")


def _check_char(ch: str, pos: int) -> None:
    if ch == "\x00":
        raise _fail(pos, "a filter cannot contain the NUL character")
    if "\ud800" <= ch <= "\udfff":
        raise _fail(pos, "a filter cannot contain an unpaired surrogate character")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        _check_char(ch, i)
        if ch.isspace():
            i += 1
        elif ch in "'\"":
            i = _string(text, i, tokens)
        elif m := _NUMBER.match(text, i):
            tokens.append(_Token("number", m.group(), i, _number(m.group(), i)))
            i = m.end()
        elif m := _IDENT.match(text, i):
            for j in range(i, m.end()):
                _check_char(text[j], j)
            tokens.append(_Token("ident", m.group(), i))
            i = m.end()
        elif op := next((op for op in _OPERATORS if text.startswith(op, i)), None):
            tokens.append(_Token("op", op, i))
            i += len(op)
        elif ch in _PUNCTUATION:
            tokens.append(_Token("punct", ch, i))
            i += 1
        else:
            shown = ch if ch.isprintable() else f"U+{ord(ch):04X}"
            raise _fail(i, f"unexpected character '{shown}'")
    tokens.append(_Token("end", "", n))
    return tokens


def _string(text: str, start: int, tokens: list[_Token]) -> int:
    """Read the quoted string at ``start``, append its token, return the offset after it."""
    quote = text[start]
    out: list[str] = []
    i, n = start + 1, len(text)
    while True:
        if i >= n:
            raise _fail(start, f"this string has no closing {quote}")
        ch = text[i]
        _check_char(ch, i)
        if ch == quote:
            break
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = text[i + 1] if i + 1 < n else ""
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 2
        elif esc == "u":
            code, i = _unicode_escape(text, i)
            out.append(code)
        else:
            shown = f"\\{esc}" if esc else "\\ at the end"
            hint = ""
            if esc and esc in "*?[":
                hint = " (in a GLOB pattern, [*], [?] and [[] match those characters)"
            raise _fail(i, f"unknown escape '{shown}' in a string; use \\\\ for a backslash{hint}")
    tokens.append(_Token("string", text[start : i + 1], start, "".join(out)))
    return i + 1


def _unicode_escape(text: str, i: int) -> tuple[str, int]:
    """Decode ``\\uXXXX`` (or a surrogate pair of them) at ``i``; return it and the next offset."""
    if not _HEX4.fullmatch(text, i + 2, i + 6):
        raise _fail(i, "expected four hexadecimal digits after '\\u'")
    code = int(text[i + 2 : i + 6], 16)
    end = i + 6
    if (
        0xD800 <= code <= 0xDBFF
        and text.startswith("\\u", end)
        and _HEX4.fullmatch(text, end + 2, end + 6)
    ):
        low = int(text[end + 2 : end + 6], 16)
        if 0xDC00 <= low <= 0xDFFF:
            return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)), end + 6
    if code == 0:
        raise _fail(i, "a filter cannot contain the NUL character")
    if 0xD800 <= code <= 0xDFFF:
        raise _fail(i, "a filter cannot contain an unpaired surrogate character")
    return chr(code), end


def _number(text: str, pos: int) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:  # an exponent beyond even Decimal's range
        value = Decimal("Infinity")
    if value.is_zero():
        return Decimal(0)
    if not value.is_finite() or abs(value.adjusted()) > MAX_EXPONENT:
        raise _fail(pos, f"the number {text[:30]} is out of range (at most 1e±{MAX_EXPONENT})")
    return value


# --- parser ----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def peek(self, ahead: int) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def is_punct(self, ch: str) -> bool:
        return self.tok.kind == "punct" and self.tok.text == ch

    def expect_punct(self, ch: str, what: str) -> _Token:
        if not self.is_punct(ch):
            raise _expected(what, self.tok)
        return self.take()

    def parse(self) -> Node:
        node = self.disjunction()
        if self.tok.kind != "end":
            raise _expected("AND, OR or end of input", self.tok)
        return node

    def disjunction(self) -> Node:
        operands = [self.conjunction()]
        while self.tok.keyword() == "OR":
            self.take()
            operands.append(self.conjunction())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def conjunction(self) -> Node:
        operands = [self.primary()]
        while self.tok.keyword() == "AND":
            self.take()
            operands.append(self.primary())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def primary(self) -> Node:
        tok = self.tok
        if self.is_punct("("):
            if self.depth >= MAX_DEPTH:
                raise _fail(tok.pos, f"parentheses are nested more than {MAX_DEPTH} deep")
            self.take()
            self.depth += 1
            node = self.disjunction()
            self.depth -= 1
            self.expect_punct(")", "AND, OR or ')'")
            return node
        if tok.keyword() == "HAS":
            # HAS FIELD x / HAS NOT FIELD x; otherwise 'has' is an ordinary field name.
            if self.peek(1).keyword() == "FIELD":
                self.i += 2
                return HasField(self.path())
            if self.peek(1).keyword() == "NOT" and self.peek(2).keyword() == "FIELD":
                self.i += 3
                return HasField(self.path(), negated=True)
        if tok.kind != "ident":
            raise _expected("a field name, HAS FIELD, HAS NOT FIELD or '('", tok)
        return self.condition(self.path())

    def path(self) -> Path:
        first = self.take()
        if first.kind != "ident":
            raise _expected("a field name", first)
        steps: list[Step] = [first.text]
        while True:
            if len(steps) == MAX_PATH_STEPS and (self.is_punct(".") or self.is_punct("[")):
                raise _fail(self.tok.pos, f"a field path has more than {MAX_PATH_STEPS} steps")
            if self.is_punct("."):
                self.take()
                key = self.take()
                if key.kind != "ident":
                    raise _expected("a field name after '.'", key)
                steps.append(key.text)
            elif self.is_punct("["):
                self.take()
                steps.append(self.index())
                self.expect_punct("]", "']'")
            else:
                return tuple(steps)

    def index(self) -> int:
        if self.is_punct("#"):
            self.take()
            tok = self.take()
            if tok.kind != "number" or not re.fullmatch(r"-[0-9]+", tok.text) or tok.value == 0:
                raise _expected("'-' and a whole number of at least 1 after '#' (as in [#-1])", tok)
            sign = -1
        else:
            tok = self.take()
            if tok.kind != "number" or not re.fullmatch(r"[0-9]+", tok.text):
                raise _expected("an array index: a whole number, or #-N to count from the end", tok)
            sign = 1
        value = abs(int(tok.value))
        if value > MAX_INDEX:
            raise _fail(tok.pos, f"the array index {tok.text[:30]} is too large")
        return sign * value

    def condition(self, path: Path) -> Node:
        tok = self.take()
        if tok.kind == "op":
            op = cast(CompareOp, tok.text)  # the tokenizer makes "op" tokens of these only
            if op in ("=", "!="):
                return Comparison(path, op, self.value(f"after '{op}'"))
            number = self.take()
            if number.kind != "number":
                raise _expected(f"a number after '{op}' (only numbers can be ordered)", number)
            return Comparison(path, op, number.value)
        negated = tok.keyword() == "NOT"
        if negated:
            tok = self.take()
        keyword = tok.keyword()
        after = "NOT " + (keyword or "") if negated else keyword
        if keyword == "GLOB":
            pattern = self.take()
            if pattern.kind != "string":
                raise _expected(f"a quoted pattern after {after}", pattern)
            try:
                glob_to_regex(pattern.value)
            except ValueError as exc:
                raise _fail(pattern.pos, f"invalid GLOB pattern: {exc}") from None
            return Glob(path, pattern.value, negated)
        if keyword == "IN":
            self.expect_punct("(", f"'(' after {after}")
            values = [self.value(f"in the list after {after}")]
            while self.is_punct(","):
                self.take()
                values.append(self.value("after ','"))
            self.expect_punct(")", "',' or ')'")
            return In(path, tuple(values), negated)
        if keyword == "CONTAINS":
            return Contains(path, self.value(f"after {after}"), negated)
        if negated:
            raise _expected("GLOB, IN or CONTAINS after NOT", tok)
        raise _expected(
            "an operator (=, !=, <, <=, >, >=, GLOB, IN, CONTAINS or NOT ...) after the field name",
            tok,
        )

    def value(self, where: str) -> Scalar:
        tok = self.take()
        if tok.kind in ("string", "number"):
            value: Scalar = tok.value
            return value
        if tok.keyword() in ("TRUE", "FALSE"):
            return tok.keyword() == "TRUE"
        raise _expected(f"a value {where} (a quoted string, a number, true or false)", tok)


def parse_filter(text: str) -> Node:
    """Parse filter text into its AST; raise InvalidFilter naming the position of a mistake."""
    if len(text) > MAX_FILTER_LENGTH:
        raise _fail(
            MAX_FILTER_LENGTH,
            f"the filter is longer than the maximum of {MAX_FILTER_LENGTH} characters",
        )
    tokens = _tokenize(text)
    if tokens[0].kind == "end":
        raise _expected("a condition", tokens[0])
    return _Parser(tokens).parse()


# --- GLOB ------------------------------------------------------------------------------------
def glob_to_regex(pattern: str) -> str:
    """Translate a GLOB pattern into an anchored PostgreSQL regular expression (ARE).

    ``*`` is any run of characters, ``?`` one character, ``[abc]``/``[a-z]`` one of a set and
    ``[^...]``/``[!...]`` one character not in it; a ``]`` first in a set and a ``-`` first or
    last are literal. Every character other than an ASCII letter or digit is written as a
    ``\\U`` escape, so nothing in the pattern can act as a regex metacharacter.
    Raises ValueError for an unclosed ``[`` or a range that runs backwards.
    """
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if out[-1] != ".*":
                out.append(".*")
            i += 1
        elif ch == "?":
            out.append(".")
            i += 1
        elif ch == "[":
            negated, ranges, i = parse_glob_set(pattern, i)
            body = "".join(
                _regex_char(lo) if lo == hi else f"{_regex_char(lo)}-{_regex_char(hi)}"
                for lo, hi in ranges
            )
            out.append(f"[{'^' if negated else ''}{body}]")
        else:
            out.append(_regex_char(ch))
            i += 1
    out.append("$")
    return "".join(out)


def parse_glob_set(pattern: str, start: int) -> tuple[bool, list[tuple[str, str]], int]:
    """Read the ``[...]`` set at ``start``: (negated, inclusive ranges, offset after ``]``).

    As in SQLite, a ``-`` between two characters makes a range, a leading ``]`` is literal
    and never starts a range, and a ``-`` that cannot make a range is literal.
    """
    i, n = start + 1, len(pattern)
    negated = i < n and pattern[i] in "^!"
    i += negated
    ranges: list[tuple[str, str]] = []
    if i < n and pattern[i] == "]":
        ranges.append(("]", "]"))
        i += 1
    prior: str | None = None  # the last single character, which a following '-' can extend
    while i < n and pattern[i] != "]":
        ch = pattern[i]
        if ch == "-" and prior is not None and i + 1 < n and pattern[i + 1] != "]":
            hi = pattern[i + 1]
            if hi < prior:
                raise ValueError(f"the range '{prior}-{hi}' runs backwards")
            ranges[-1] = (prior, hi)
            prior = None
            i += 2
        else:
            ranges.append((ch, ch))
            prior = ch
            i += 1
    if i >= n:
        raise ValueError(f"the '[' at offset {start + 1} of the pattern has no closing ']'")
    return negated, ranges, i + 1


def _regex_char(ch: str) -> str:
    if ch.isascii() and ch.isalnum():
        return ch
    return f"\\U{ord(ch):08x}"


# --- compiler --------------------------------------------------------------------------------
_SCALAR_TYPES = sql.SQL("('string', 'number', 'boolean')")


def _dump_json(obj: Any) -> str:
    """json.dumps that writes Decimals as exact JSON numbers."""
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_dump_json(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(_dump_json(v) for v in obj) + "]"
    return json.dumps(obj, ensure_ascii=False)


def _nest(path: Path, leaf: Any) -> Any:
    for key in reversed(path):
        leaf = {key: leaf}
    return leaf


class _Compiler:
    def __init__(self, column: Composable, prefix: str) -> None:
        self.column = column
        self.prefix = prefix
        self.params: dict[str, Any] = {}

    def param(self, value: Any) -> sql.Placeholder:
        name = f"{self.prefix}{len(self.params)}"
        self.params[name] = value
        return sql.Placeholder(name)

    def jsonb(self, value: Any) -> Composable:
        return sql.SQL("{}::jsonb").format(self.param(Jsonb(value, dumps=_dump_json)))

    def contains(self, path: Path, leaf: Any) -> Composable:
        """``column @> {"a": {"b": leaf}}``: the form a GIN index on the column serves."""
        return sql.SQL("({} @> {})").format(self.column, self.jsonb(_nest(path, leaf)))

    def value_at(self, path: Path) -> Composable:
        """The jsonb at ``path``, or SQL NULL where there is none.

        ``#>`` reads a numeric path element as an object key when it meets an object, so each
        index step is guarded to apply only to an array. (Keys are identifiers, which never
        read as numbers, so a key step never indexes an array.)
        """
        p = self.param([str(step) for step in path])
        whole = sql.SQL("({} #> {}::text[])").format(self.column, p)
        guards = [
            sql.SQL("jsonb_typeof({} #> ({}::text[])[1:{}]) = 'array'").format(
                self.column, p, sql.Literal(k)
            )
            for k, step in enumerate(path)
            if isinstance(step, int)
        ]
        if not guards:
            return whole
        return sql.SQL("(CASE WHEN {} THEN {} END)").format(sql.SQL(" AND ").join(guards), whole)

    def compile(self, node: Node) -> Composable:
        match node:
            case And(operands) | Or(operands):
                joiner = sql.SQL(" AND " if isinstance(node, And) else " OR ")
                return sql.SQL("({})").format(joiner.join(self.compile(n) for n in operands))
            case Comparison():
                return self.comparison(node)
            case Glob(path, pattern, negated):
                v = self.value_at(path)
                op = sql.SQL("!~" if negated else "~")
                regex = self.param(glob_to_regex(pattern))
                return sql.SQL(
                    "COALESCE(jsonb_typeof({v}) = 'string'"
                    " AND ({v} #>> '{{}}') {op} {re}::text, FALSE)"
                ).format(v=v, op=op, re=regex)
            case In(path, values, negated):
                if not negated and all(isinstance(s, str) for s in path):
                    return sql.SQL("({})").format(
                        sql.SQL(" OR ").join(self.contains(path, x) for x in values)
                    )
                v = self.value_at(path)
                listed = sql.SQL(", ").join(self.jsonb(x) for x in values)
                if not negated:
                    return sql.SQL("COALESCE({} IN ({}), FALSE)").format(v, listed)
                return sql.SQL(
                    "COALESCE(jsonb_typeof({v}) IN {types} AND {v} NOT IN ({listed}), FALSE)"
                ).format(v=v, types=_SCALAR_TYPES, listed=listed)
            case Contains(path, value, negated):
                if not negated and all(isinstance(s, str) for s in path):
                    return self.contains(path, [value])
                v = self.value_at(path)
                test = sql.SQL("NOT " if negated else "")
                return sql.SQL(
                    "COALESCE(jsonb_typeof({v}) = 'array' AND {test}({v} @> {arr}), FALSE)"
                ).format(v=v, test=test, arr=self.jsonb([value]))
            case HasField(path, negated):
                if not negated and len(path) == 1:
                    # `?` alone would also match a string element of a top-level array.
                    return sql.SQL(
                        "({col} ? {key}::text AND jsonb_typeof({col}) = 'object')"
                    ).format(col=self.column, key=self.param(path[0]))
                return sql.SQL("({} IS {}NULL)").format(
                    self.value_at(path), sql.SQL("" if negated else "NOT ")
                )
        raise TypeError(f"not a filter node: {node!r}")  # pragma: no cover

    def comparison(self, node: Comparison) -> Composable:
        path, op, value = node.path, node.op, node.value
        if op == "=":
            if all(isinstance(s, str) for s in path):
                return self.contains(path, value)
            return sql.SQL("COALESCE({} = {}, FALSE)").format(
                self.value_at(path), self.jsonb(value)
            )
        v = self.value_at(path)
        if op == "!=":
            return sql.SQL("COALESCE(jsonb_typeof({v}) IN {types} AND {v} <> {x}, FALSE)").format(
                v=v, types=_SCALAR_TYPES, x=self.jsonb(value)
            )
        # The cast runs only on numbers: CASE, because AND does not fix an evaluation order.
        return sql.SQL(
            "COALESCE(CASE WHEN jsonb_typeof({v}) = 'number' THEN ({v})::numeric {op} {x}::numeric"
            " END, FALSE)"
        ).format(v=v, op=sql.SQL(op), x=self.param(value))


_TRUE: Final = sql.SQL("TRUE")
_METADATA: Final = sql.Identifier("metadata")


def compile_filter(
    text: str | None,
    *,
    column: Composable = _METADATA,
    prefix: str = "f",
) -> CompiledFilter:
    """Compile filter text to a boolean SQL expression over the jsonb ``column``.

    Parameters are named ``{prefix}0``, ``{prefix}1``, ... so the expression can join a larger
    query that has parameters of its own. An empty or blank filter is TRUE.
    Raises InvalidFilter (with the position) when the text is not a valid filter.
    """
    if text is None or (len(text) <= MAX_FILTER_LENGTH and not text.strip()):
        return CompiledFilter(_TRUE, {})
    compiler = _Compiler(column, prefix)
    expression = compiler.compile(parse_filter(text))
    return CompiledFilter(expression, compiler.params)
