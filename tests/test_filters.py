"""The metadata filter language: parser, errors, SQL safety, and agreement of the compiled SQL,
run by PostgreSQL, with the pure-Python reference in ``filter_reference``.

The property tests run a multiple of the active Hypothesis profile's ``max_examples``
(15x for the equivalence test: 1,500 examples of up to 20 documents under the default profile).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path as FilePath
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from pgpager.errors import InvalidFilter
from pgpager.store.filters import (
    MAX_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_PATH_STEPS,
    And,
    Comparison,
    CompiledFilter,
    Contains,
    Glob,
    HasField,
    In,
    Node,
    Or,
    Path,
    Scalar,
    compile_filter,
    glob_to_regex,
    parse_filter,
)
from tests.filter_reference import evaluate, glob_items, glob_match, load, render


def _examples(multiple: int) -> settings:
    return settings(
        max_examples=max(10, multiple * settings().max_examples),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


Conn = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def conn(pg_url: str) -> Iterator[Conn]:
    with psycopg.connect(pg_url, autocommit=True) as c:
        yield c


def run(conn: Conn, compiled: CompiledFilter, docs: list[str | None]) -> list[Any]:
    """The filter's value on each document (JSON text; None for SQL NULL metadata)."""
    query = sql.SQL(
        "SELECT {} FROM unnest(%(docs)s::text[]::jsonb[]) WITH ORDINALITY AS t(metadata, n)"
        " ORDER BY n"
    ).format(compiled.sql)
    return [row[0] for row in conn.execute(query, {"docs": docs, **compiled.params})]


def matches(conn: Conn, text: str, *docs: Any) -> list[bool]:
    """Which of ``docs`` (Python values; None for SQL NULL metadata) the filter matches."""
    texts = [None if d is None else json.dumps(d) for d in docs]
    got = run(conn, compile_filter(text), texts)
    expected = [evaluate(parse_filter(text), load(t)) for t in texts]
    assert [v is True for v in got] == expected, "the reference disagrees with PostgreSQL"
    return expected


# --- parser ----------------------------------------------------------------------------------
def test_and_binds_tighter_than_or() -> None:
    a, b, c = (Comparison((k,), "=", Decimal(1)) for k in "abc")
    assert parse_filter("a = 1 OR b = 1 AND c = 1") == Or((a, And((b, c))))
    assert parse_filter("a = 1 AND b = 1 OR c = 1") == Or((And((a, b)), c))
    assert parse_filter("a = 1 AND (b = 1 OR c = 1)") == And((a, Or((b, c))))
    assert parse_filter("((a = 1))") == a


def test_every_operator() -> None:
    p = ("x",)
    cases: dict[str, Node] = {
        "x = 'a'": Comparison(p, "=", "a"),
        "x != 'a'": Comparison(p, "!=", "a"),
        "x < 1": Comparison(p, "<", Decimal(1)),
        "x <= 1": Comparison(p, "<=", Decimal(1)),
        "x > 1": Comparison(p, ">", Decimal(1)),
        "x >= 1": Comparison(p, ">=", Decimal(1)),
        "x GLOB 'a*'": Glob(p, "a*"),
        "x NOT GLOB 'a*'": Glob(p, "a*", negated=True),
        "x IN ('a', 2, true)": In(p, ("a", Decimal(2), True)),
        "x NOT IN (false)": In(p, (False,), negated=True),
        "x CONTAINS 'a'": Contains(p, "a"),
        "x NOT CONTAINS 3": Contains(p, Decimal(3), negated=True),
        "HAS FIELD x": HasField(p),
        "HAS NOT FIELD x": HasField(p, negated=True),
    }
    for text, node in cases.items():
        assert parse_filter(text) == node, text


def test_keywords_are_case_insensitive() -> None:
    assert parse_filter("x not glob 'a' and HaS nOt FiElD y or x In (TRUE, False)") == Or(
        (
            And((Glob(("x",), "a", negated=True), HasField(("y",), negated=True))),
            In(("x",), (True, False)),
        )
    )


def test_keywords_can_be_field_names() -> None:
    assert parse_filter("has = 1 AND in NOT IN (2) OR or CONTAINS 3") == Or(
        (
            And((Comparison(("has",), "=", Decimal(1)), In(("in",), (Decimal(2),), True))),
            Contains(("or",), Decimal(3)),
        )
    )
    assert parse_filter("HAS FIELD field") == HasField(("field",))
    assert parse_filter("has NOT GLOB 'x'") == Glob(("has",), "x", negated=True)


def test_paths() -> None:
    def path(text: str) -> Any:
        return parse_filter(f"HAS FIELD {text}").path  # type: ignore[union-attr]

    assert path("a.b[0].c[#-1][12]") == ("a", "b", 0, "c", -1, 12)
    assert path("$x._y9.größe") == ("$x", "_y9", "größe")
    assert path("a[ # -3 ]") == ("a", -3)


def test_string_escapes() -> None:
    text = r"""x = 'it\'s \"q\" \\ \/ \n\t\r\b\f é \u00e9 \ud83d\ude00 "bare"'"""
    assert parse_filter(text) == Comparison(("x",), "=", 'it\'s "q" \\ / \n\t\r\b\f é é 😀 "bare"')
    assert parse_filter('x = "it\'s"') == Comparison(("x",), "=", "it's")
    assert parse_filter("x = ''") == Comparison(("x",), "=", "")


def test_numbers() -> None:
    def value(text: str) -> Any:
        node = parse_filter(f"x = {text}")
        assert isinstance(node, Comparison)
        return node.value

    assert value("42") == 42
    assert value("-7") == -7
    assert value("2.50") == Decimal("2.5")
    assert value("1.5e3") == 1500
    assert value("1E-2") == Decimal("0.01")
    assert value("-2.5E+2") == -250
    assert value("0.1") == Decimal("0.1")  # exact, not the float 0.1
    assert value("1e1000") == Decimal("1e1000")
    assert isinstance(value("true"), bool) and value("TRUE") is True and value("false") is False


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("a = ", 5, "expected a value after '='"),
        ("a = 1 AND", 10, "expected a field name, HAS FIELD, HAS NOT FIELD or '(' but found end"),
        ("a == 1", 4, "found '='"),
        ("(a = 1", 7, "expected AND, OR or ')' but found end of input"),
        ("a = 1)", 6, "expected AND, OR or end of input but found ')'"),
        ("a = 1 b = 2", 7, "expected AND, OR or end of input but found 'b'"),
        ("a = 'abc", 5, "has no closing '"),
        ('a = "abc', 5, 'has no closing "'),
        ("a < 'x'", 5, "expected a number after '<'"),
        ("a >= true", 6, "expected a number after '>='"),
        ("a[-1] = 1", 3, "expected an array index"),
        ("a[#-0] = 1", 4, "at least 1"),
        ("a[#1] = 1", 4, "after '#'"),
        ("a[1.5] = 1", 3, "expected an array index"),
        ("a[0 = 1", 5, "expected ']'"),
        ("a[2147483648] = 1", 3, "too large"),
        ("a. = 1", 4, "expected a field name after '.'"),
        ("a.1 = 2", 3, "expected a field name after '.'"),
        ("a GLOB 'x[a'", 8, "no closing ']'"),
        ("a GLOB '[z-a]'", 8, "runs backwards"),
        ("a GLOB 5", 8, "expected a quoted pattern after GLOB"),
        ("a NOT GLOB x", 12, "expected a quoted pattern after NOT GLOB"),
        ("a NOT = 1", 7, "expected GLOB, IN or CONTAINS after NOT"),
        ("a IN ()", 7, "expected a value in the list after IN"),
        ("a IN (1, )", 10, "expected a value after ','"),
        ("a IN (1 2)", 9, "expected ',' or ')'"),
        ("a IN 1", 6, "expected '(' after IN"),
        ("a CONTAINS", 11, "expected a value after CONTAINS"),
        ("a", 2, "expected an operator"),
        ("a LIKE 'x'", 3, "expected an operator"),
        ("HAS FIELD", 10, "expected a field name but found end of input"),
        ("HAS NOT FIELD 'x'", 15, "expected a field name but found the string 'x'"),
        ("= 1", 1, "expected a field name"),
        ("()", 2, "expected a field name"),
        ("a = @", 5, "unexpected character '@'"),
        ("a = -", 5, "unexpected character '-'"),
        ("a = 1e5000", 5, "out of range"),
        ("a = 1e-1001", 5, "out of range"),
        ("a = 1e99999999999999999999999", 5, "out of range"),
        ("a = -1e-99999999999999999999999", 5, "out of range"),
        ("a = 'x\\qy'", 7, "unknown escape '\\q'"),
        ("a GLOB 'x\\*'", 10, "[*]"),
        ("a = 'x\\u12'", 7, "four hexadecimal digits"),
        ("a = 'x\\u0000'", 7, "NUL"),
        ("a = 'x\x00'", 7, "NUL"),
        ("a\x00 = 1", 2, "NUL"),
        ("a = 'x\\ud800'", 7, "surrogate"),
        ("a = 'x\\udc00\\ud800'", 7, "surrogate"),
        ("a = 'x\ud800'", 7, "surrogate"),
        ("a = \x07", 5, "U+0007"),
    ],
)
def test_errors_name_the_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(InvalidFilter) as info:
        compile_filter(text)
    err = info.value
    assert err.message.startswith(f"filter: at position {position}, "), err.message
    assert fragment in err.message, err.message
    assert err.detail == {"position": position}
    assert err.status == 422


def test_error_message_reads_well() -> None:
    with pytest.raises(InvalidFilter) as info:
        compile_filter("genre = 'x' AND year =")
    assert info.value.message == (
        "filter: at position 23, expected a value after '=' (a quoted string, a number,"
        " true or false) but found end of input"
    )


def test_empty_filter_is_true() -> None:
    for text in (None, "", "   ", "\n\t "):
        compiled = compile_filter(text)
        assert compiled.params == {}
        assert compiled.sql.as_string() == "TRUE"


def test_limits(conn: Conn) -> None:
    deep = "(" * MAX_DEPTH + "a = 1" + ")" * MAX_DEPTH
    assert run(conn, compile_filter(deep), ['{"a": 1}']) == [True]
    with pytest.raises(InvalidFilter, match=f"position {MAX_DEPTH + 1}, .*nested more than"):
        compile_filter("(" + deep + ")")
    with pytest.raises(InvalidFilter, match="nested more than"):
        compile_filter("(" * 5000)  # never a RecursionError
    with pytest.raises(InvalidFilter, match="longer than the maximum"):
        compile_filter("a = '" + "x" * MAX_FILTER_LENGTH + "'")
    with pytest.raises(InvalidFilter, match="longer than the maximum"):
        compile_filter(" " * (MAX_FILTER_LENGTH + 1))
    steps = "a" + ".a" * (MAX_PATH_STEPS - 2) + "[0]"
    assert parse_filter(f"HAS FIELD {steps}") == HasField(("a",) * (MAX_PATH_STEPS - 1) + (0,))
    with pytest.raises(InvalidFilter, match=f"position {len(steps) + 1}, .*more than 32 steps"):
        compile_filter(f"{steps}.b = 1")

    # The largest filters PostgreSQL must still run without complaint.
    wide = " OR ".join(f"a{i} = {i}" for i in range(1000))[:MAX_FILTER_LENGTH].rsplit(" OR ", 1)[0]
    long_path = "a" + ".a" * 30 + "[0] = 1 OR " + " OR ".join(["a[0][#-1].b = 1"] * 450)
    sets = "x GLOB '" + "[^a-z]" * 1600 + "'"
    stars = "x NOT GLOB '" + "*a" * 4900 + "'"
    for text in (wide, long_path, sets, stars):
        assert len(text) <= MAX_FILTER_LENGTH
        run(conn, compile_filter(text), ['{"a0": 0}', json.dumps({"x": "b" * 5000})])


# --- semantics, one decision at a time -------------------------------------------------------
def test_equality(conn: Conn) -> None:
    docs = [{"x": 1}, {"x": 1.0}, {"x": "1"}, {"x": True}, {"x": [1]}, {"x": {"y": 1}}, {}, None]
    assert matches(conn, "x = 1", *docs) == [True, True] + [False] * 6
    assert matches(conn, "x = 1.00", *docs) == [True, True] + [False] * 6
    assert matches(conn, "x = '1'", *docs) == [False, False, True] + [False] * 5
    assert matches(conn, "x = true", *docs) == [False, False, False, True] + [False] * 4
    # != needs a string, number or boolean there; a different type is simply not equal.
    assert matches(conn, "x != 1", *docs) == [False, False, True, True] + [False] * 4
    big = {"x": 12345678901234567890123456789}
    assert matches(conn, "x = 12345678901234567890123456789", big, {"x": 1.2345678901234568e28})
    assert matches(conn, "x = 1.2345678901234568e28", big) == [False]


def test_ordering_is_for_numbers_only(conn: Conn) -> None:
    docs = [{"x": 5}, {"x": 5.5}, {"x": "3"}, {"x": True}, {"x": None}, {"x": [1]}, {}, None]
    assert matches(conn, "x < 5.25", *docs) == [True] + [False] * 7
    assert matches(conn, "x >= 5", *docs) == [True, True] + [False] * 6
    assert matches(conn, "x > -1e300", *docs) == [True, True] + [False] * 6


def test_missing_fields_and_null_metadata(conn: Conn) -> None:
    docs = [{"x": None}, {}, None, [], "x", 5, ["x"], {"y": {"x": 1}}]
    assert matches(conn, "HAS FIELD x", *docs) == [True] + [False] * 7
    assert matches(conn, "HAS NOT FIELD x", *docs) == [False] + [True] * 7
    for text in ("x != 1", "x NOT IN (1)", "x NOT GLOB 'a'", "x NOT CONTAINS 1", "x < 1"):
        assert matches(conn, text, *docs) == [False] * 8, text


def test_negations_need_the_right_type(conn: Conn) -> None:
    docs = [{"x": "abc"}, {"x": 5}, {"x": ["abc"]}, {"x": [5]}, {"x": {"abc": 1}}]
    assert matches(conn, "x NOT GLOB 'z*'", *docs) == [True, False, False, False, False]
    assert matches(conn, "x NOT CONTAINS 'abc'", *docs) == [False, False, False, True, False]
    assert matches(conn, "x NOT IN ('z', 1)", *docs) == [True, True, False, False, False]


def test_contains(conn: Conn) -> None:
    docs = [
        {"tags": ["new", "sale"]},
        {"tags": "new"},
        {"tags": [["new"]]},
        {"tags": [{"new": 1}]},
        {"tags": [1.0, True]},
        {"t": {"tags": ["new"]}},
    ]
    assert matches(conn, "tags CONTAINS 'new'", *docs) == [True] + [False] * 5
    assert matches(conn, "tags CONTAINS 1", *docs) == [False] * 4 + [True, False]
    assert matches(conn, "t.tags CONTAINS 'new'", *docs) == [False] * 5 + [True]


def test_array_indexes(conn: Conn) -> None:
    docs = [
        {"s": [0.1, 0.7]},
        {"s": [0.9, 0.2]},
        {"s": {"0": 0.9, "-1": 0.9}},  # an object with numeric keys is not an array
        {"s": 0.9},  # nor is a scalar (PostgreSQL's '5'::jsonb -> 0 would say 5)
        {"s": []},
    ]
    assert matches(conn, "s[#-1] > 0.5", *docs) == [True, False, False, False, False]
    assert matches(conn, "s[0] > 0.5", *docs) == [False, True, False, False, False]
    assert matches(conn, "s[#-2] = 0.1", *docs) == [True] + [False] * 4
    assert matches(conn, "s[2] = 0.1 OR s[#-3] = 0.1", *docs) == [False] * 5
    assert matches(conn, "HAS FIELD s[0]", *docs) == [True, True, False, False, False]
    nested = {"a": [{"b": ["x", "y"]}, {"b": ["z"]}]}
    assert matches(conn, "a[1].b[#-1] = 'z' AND a[0].b CONTAINS 'y'", nested) == [True]


def test_glob(conn: Conn) -> None:
    names = ["Jane", "john", "J", "Jo\nhn", "J*", "a.b", "[x]", "", 5]
    docs = [{"n": x} for x in names]

    def glob(pattern: str) -> list[str]:
        text = "n GLOB " + json.dumps(pattern)
        return [str(n) for n, hit in zip(names, matches(conn, text, *docs), strict=True) if hit]

    assert glob("J*") == ["Jane", "J", "Jo\nhn", "J*"]  # case-sensitive; * spans newlines
    assert glob("J?") == ["J*"]
    assert glob("[Jj]o*") == ["john", "Jo\nhn"]
    assert glob("[^J]*") == ["john", "a.b", "[x]"]
    assert glob("[!J]*") == ["john", "a.b", "[x]"]
    assert glob("J[*]") == ["J*"]
    assert glob("a.b") == ["a.b"]  # '.' is not a wildcard
    assert glob("?.?") == ["a.b"]
    assert glob("[[]x]") == ["[x]"]
    assert glob("[]x[]*") == ["[x]"]
    assert glob("") == [""]
    assert glob("*") == ["Jane", "john", "J", "Jo\nhn", "J*", "a.b", "[x]", ""]


def test_glob_translation_escapes_everything() -> None:
    assert glob_to_regex("a.b") == "^a\\U0000002eb$"
    assert glob_to_regex("**x?") == "^.*x.$"
    assert glob_to_regex("[^a-c\\]") == "^[^a-c\\U0000005c]$"
    assert glob_to_regex("[!]]") == "^[^\\U0000005d]$"


@given(st.text(alphabet="ab*?[]^!-\\é", max_size=10), st.text(alphabet="ab[]^!-\\é", max_size=6))
@_examples(3)
def test_glob_validity_and_meaning_agree(conn: Conn, pattern: str, value: str) -> None:
    try:
        glob_items(pattern)
    except ValueError:
        with pytest.raises(InvalidFilter, match="invalid GLOB pattern"):
            compile_filter("x GLOB " + json.dumps(pattern))
        return
    compiled = compile_filter("x GLOB " + json.dumps(pattern))
    assert run(conn, compiled, [json.dumps({"x": value})]) == [glob_match(pattern, value)]


DOC = FilePath(__file__).parents[1] / "docs" / "filter-language.md"


def test_the_documented_examples_hold(conn: Conn) -> None:
    text = DOC.read_text()
    for line in text.split("```")[1].strip().splitlines():  # the opening examples
        compile_filter(line)
    section = text.split("## Examples", 1)[1].split("\n## ", 1)[0]
    metadata = json.loads(section.split("```json", 1)[1].split("```", 1)[0])
    rows = re.findall(r"^\| `(.+)` \| (yes|no|error) \|$", section, flags=re.MULTILINE)
    assert len(rows) > 20
    for filter_text, outcome in rows:
        if outcome == "error":
            with pytest.raises(InvalidFilter):
                compile_filter(filter_text)
        else:
            assert matches(conn, filter_text, metadata) == [outcome == "yes"], filter_text


# --- SQL safety ------------------------------------------------------------------------------
PAYLOADS = [
    "'; DROP TABLE filters_canary; --",
    '"; DROP TABLE filters_canary; --',
    "x' OR '1'='1",
    "$$; DROP TABLE filters_canary; $$",
    "\\'; DELETE FROM filters_canary; --",
    "%(f0)s",
    "%s",
    "%%",
    "{}",
    "{0}",
    "}}{{",
    "\\",
    "a'b\"c",
    "E'\\x00'",
    "); DELETE FROM filters_canary; SELECT (1",
    "*/ DELETE FROM filters_canary; /*",
    ".*|^",
    "[^a-z]*",
    "😀 é \u202e",
]


def _escape(payload: str) -> str:
    return "'" + payload.replace("\\", "\\\\").replace("'", "\\'") + "'"


@pytest.fixture(scope="module")
def canary(conn: Conn) -> Iterator[int]:
    conn.execute("CREATE TEMP TABLE filters_canary (metadata jsonb)")
    rows = [{"s": p, "l": [p], "n": 1} for p in PAYLOADS] + [{"s": "plain", "n": 2}]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO filters_canary VALUES (%s::jsonb)", [(json.dumps(r),) for r in rows]
        )
    yield len(rows)
    conn.execute("DROP TABLE filters_canary")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_injection_in_literals_matches_them_plainly(conn: Conn, canary: int, payload: str) -> None:
    lit = _escape(payload)
    glob_lit = _escape("".join(f"[{c}]" if c in "*?[" else c for c in payload))
    for text, expected in [
        (f"s = {lit}", 1),
        (f"s != {lit}", canary - 1),
        (f"s IN ({lit}, {lit})", 1),
        (f"s NOT IN ({lit})", canary - 1),
        (f"l CONTAINS {lit}", 1),
        (f"l[0] = {lit}", 1),
        (f"s GLOB {glob_lit}", 1),
        (f"s GLOB {lit} OR s NOT GLOB {lit}", canary),
        (f"n = 1 AND (s = {lit} OR s = 'plain')", 1),
    ]:
        compiled = compile_filter(text)
        # The SQL is the same whatever the literal says: only the parameters differ.
        benign = compile_filter(text.replace(lit, "'z'").replace(glob_lit, "'z'"))
        assert compiled.sql.as_string(conn) == benign.sql.as_string(conn)
        query = sql.SQL("SELECT count(*) FROM filters_canary WHERE {}").format(compiled.sql)
        (count,) = conn.execute(query, compiled.params).fetchone() or (None,)
        assert count == expected, text
    (total,) = conn.execute("SELECT count(*) FROM filters_canary").fetchone() or (None,)
    assert total == canary


@pytest.mark.parametrize("payload", PAYLOADS)
def test_injection_in_field_names_is_rejected(payload: str) -> None:
    for text in (f"{payload} = 1", f"a.{payload} = 1", f"HAS FIELD {payload}", f"a[{payload}] = 1"):
        with pytest.raises(InvalidFilter, match="at position"):
            compile_filter(text)


def test_placeholders_are_named_and_prefixed(conn: Conn) -> None:
    compiled = compile_filter(
        "a = 1 OR b.c[0] != 'x' OR d GLOB 'y*' OR e IN (1, 2) OR HAS FIELD f",
        column=sql.SQL("t.metadata"),
        prefix="flt_",
    )
    assert set(compiled.params) == {f"flt_{i}" for i in range(len(compiled.params))}
    # It splices into a larger query with parameters of its own.
    query = sql.SQL(
        "SELECT t.id FROM (VALUES (1, %(one)s::jsonb), (2, %(two)s::jsonb)) AS t(id, metadata)"
        " WHERE t.id > %(min_id)s AND {} ORDER BY t.id"
    ).format(compiled.sql)
    rows = conn.execute(
        query, {"one": '{"a": 1}', "two": '{"f": null}', "min_id": 0, **compiled.params}
    ).fetchall()
    assert rows == [(1,), (2,)]


# --- the GIN index ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "genre = 'drama'",
        "author.name = 'J'",
        "tags CONTAINS 'new'",
        "genre IN ('drama', 'comedy')",
        "HAS FIELD price",
        "genre = 'drama' AND year >= 2000",
        "tags CONTAINS 'new' OR HAS FIELD price",
    ],
)
def test_gin_index_serves(conn: Conn, text: str) -> None:
    with conn.transaction(force_rollback=True):
        conn.execute("CREATE TEMP TABLE gin_t (metadata jsonb)")
        conn.execute(
            "INSERT INTO gin_t SELECT jsonb_build_object('genre', 'g' || i, 'year', i,"
            " 'tags', jsonb_build_array('t' || i)) FROM generate_series(1, 5000) i"
        )
        conn.execute("CREATE INDEX gin_t_metadata ON gin_t USING gin (metadata)")
        conn.execute("ANALYZE gin_t")
        conn.execute("SET LOCAL enable_seqscan = off")
        compiled = compile_filter(text)
        query = sql.SQL("EXPLAIN SELECT * FROM gin_t WHERE {}").format(compiled.sql)
        plan = "\n".join(row[0] for row in conn.execute(query, compiled.params))
        assert "gin_t_metadata" in plan, plan


# --- property tests --------------------------------------------------------------------------
FILTER_KEYS = ["a", "b", "c", "tags", "$x", "_y", "has", "In", "größe"]
DOC_KEYS = [*FILTER_KEYS, "0", "1", "-1", "a b"]
NUMBERS: list[int | float] = [0, 1, -1, 2, 1.0, 2.0, 1.5, -2.5, 0.1, 10, 1e16, 2**53 + 1, 10**30]
STRINGS = [
    "",
    "a",
    "A",
    "ab",
    "abc",
    "b*",
    "x?y",
    "[a]",
    "it's",
    'say "hi"',
    "back\\slash",
    "new\nline",
    "é",
    "😀",
    "%s",
    "{}",
    "'; DROP TABLE t; --",
]
TRICKY = "ab*?[]^!-\\'\"é😀\n %"

doc_strings = st.one_of(st.sampled_from(STRINGS), st.text(alphabet=TRICKY, max_size=5))
doc_scalars = st.one_of(
    doc_strings,
    st.sampled_from(NUMBERS),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
doc_values = st.recursive(
    doc_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(DOC_KEYS), inner, max_size=3)
    ),
    max_leaves=8,
)
documents = st.one_of(
    st.dictionaries(st.sampled_from(DOC_KEYS), doc_values, max_size=5).map(json.dumps),
    st.just(None),  # SQL NULL metadata
    doc_values.map(json.dumps),  # not an object: possible through direct SQL access
)


def _decimal(x: int | float) -> Decimal:
    return Decimal(repr(x)) if isinstance(x, float) else Decimal(x)


numbers = st.one_of(
    st.sampled_from(NUMBERS).map(_decimal),
    st.integers(-3, 3).map(Decimal),
    st.decimals(min_value=-100, max_value=100, allow_nan=False, allow_infinity=False, places=2),
)
literals: st.SearchStrategy[Scalar] = st.one_of(doc_strings, numbers, st.booleans())
paths = st.tuples(
    st.sampled_from(FILTER_KEYS),
    st.lists(st.one_of(st.sampled_from(FILTER_KEYS), st.integers(-3, 3)), max_size=3),
).map(lambda t: (t[0], *t[1]))


def _valid_glob(pattern: str) -> bool:
    try:
        glob_items(pattern)
    except ValueError:
        return False
    return True


glob_patterns = st.one_of(
    st.sampled_from(["*", "a*", "*b", "?", "[ab]*", "[^a]*", "[!ab]?", "*[*]*", "é*", ""]),
    st.text(alphabet="ab*?[]^!-\\.é😀\n$(|", max_size=8).filter(_valid_glob),
)
leaves: st.SearchStrategy[Node] = st.one_of(
    st.builds(Comparison, paths, st.sampled_from(["=", "!="]), literals),
    st.builds(Comparison, paths, st.sampled_from(["<", "<=", ">", ">="]), numbers),
    st.builds(Glob, paths, glob_patterns, st.booleans()),
    st.builds(In, paths, st.lists(literals, min_size=1, max_size=4).map(tuple), st.booleans()),
    st.builds(Contains, paths, literals, st.booleans()),
    st.builds(HasField, paths, st.booleans()),
)
filters: st.SearchStrategy[Node] = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=6,
)


def canonical(node: Node) -> Any:
    """A comparable form: nested ANDs (ORs) flattened, literals tagged with their type."""
    match node:
        case And(operands) | Or(operands):
            flat: list[Any] = []
            for n in operands:
                c = canonical(n)
                flat.extend(c[1] if c[0] == type(node).__name__ else [c])
            return (type(node).__name__, flat)
        case In(path, values, negated):
            return ("In", path, [(type(v).__name__, v) for v in values], negated)
        case Comparison(path, op, value):
            return ("Comparison", path, op, type(value).__name__, value)
        case Contains(path, value, negated):
            return ("Contains", path, negated, type(value).__name__, value)
    return ("leaf", node)


# Random documents seldom have a value at a random path, let alone an interesting one, so most
# documents are built to hold, at some of the filter's paths, values near its literals.
def _plain(value: Scalar) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _near(value: Scalar) -> st.SearchStrategy[Any]:
    """Values equal to ``value`` (perhaps spelled differently), or just beside it."""
    if isinstance(value, bool):
        return st.sampled_from([value, not value, int(value), str(value).lower()])
    if isinstance(value, Decimal):
        x = _plain(value)
        return st.sampled_from([x, float(x), x + 1, x - 1, -x, str(value), x != 0])
    return st.sampled_from([value, value + "x", value.upper(), "", f"{value}\n"])


def _glob_example(pattern: str, rnd: random.Random) -> str:
    out = []
    for item in glob_items(pattern):
        if item[0] == "lit":
            out.append(item[1])
        elif item[0] == "any":
            out.append(rnd.choice(TRICKY))
        elif item[0] == "star":
            out.append("".join(rnd.choice(TRICKY) for _ in range(rnd.randint(0, 3))))
        else:
            inside = [c for c in TRICKY + "xyz[]" if any(lo <= c <= hi for lo, hi in item[2])]
            if not item[1] and item[2]:
                lo, hi = rnd.choice(item[2])
                out.append(chr(rnd.randint(ord(lo), ord(hi))))
            else:
                out.append(rnd.choice([c for c in TRICKY + "xyz" if c not in inside] or ["Z"]))
    return "".join(out)


def _candidates(node: Node) -> list[tuple[Path, st.SearchStrategy[Any]]]:
    match node:
        case And(operands) | Or(operands):
            return [t for n in operands for t in _candidates(n)]
        case Comparison(path, _, value):
            return [(path, _near(value))]
        case In(path, values, _):
            return [(path, st.one_of([_near(v) for v in values]))]
        case Contains(path, value, _):
            others = st.lists(st.one_of(_near(value), doc_scalars), max_size=3)
            with_it = st.tuples(
                others, st.just(_plain(value)), st.randoms(use_true_random=True)
            ).map(lambda t: t[2].sample([*t[0], t[1]], len(t[0]) + 1))
            return [(path, st.one_of(with_it, others, _near(value)))]
        case Glob(path, pattern, _):
            matching = st.randoms(use_true_random=True).map(lambda rnd: _glob_example(pattern, rnd))
            return [(path, st.one_of(matching, matching.map(lambda x: x + "b"), doc_scalars))]
        case HasField(path, _):
            return [(path, st.randoms(use_true_random=True).map(_random_value))]
    raise TypeError(node)


def _put(container: Any, path: Path, value: Any, rnd: random.Random) -> Any:
    """``container`` with ``value`` at ``path``, building objects and arrays on the way."""
    if not path:
        return value
    step, rest = path[0], path[1:]
    if isinstance(step, str) or rnd.random() < 0.1:  # sometimes {"0": ...} where [0] is asked
        key = str(step)
        obj = dict(container) if isinstance(container, dict) else {}
        obj[key] = _put(obj.get(key), rest, value, rnd)
        return obj
    arr = list(container) if isinstance(container, list) else []
    while len(arr) < (step + 1 if step >= 0 else -step) or rnd.random() < 0.3:
        arr.append(rnd.choice([0, 1.5, "a", None, True, [], {}]))
    arr[step] = _put(arr[step], rest, value, rnd)
    return arr


def _random_value(rnd: random.Random, depth: int = 0) -> Any:
    """Cheap background values (Hypothesis draws for everything would be slow)."""
    roll = rnd.random()
    if depth < 2 and roll < 0.15:
        return [_random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    if depth < 2 and roll < 0.3:
        keys = rnd.sample(DOC_KEYS, rnd.randint(0, 3))
        return {k: _random_value(rnd, depth + 1) for k in keys}
    return rnd.choice([*STRINGS, *NUMBERS, True, False, None])


@st.composite
def documents_for(draw: st.DrawFn, node: Node) -> list[str | None]:
    candidates = _candidates(node)
    rnd = draw(st.randoms(use_true_random=True))
    docs: list[str | None] = []
    for _ in range(draw(st.integers(1, 20))):
        roll = draw(st.integers(0, 9))
        if roll < 2:
            docs.append(draw(documents))
            continue
        if roll == 2:  # not an object, yet holding the filter's keys: ["a", "b"] or "a"
            docs.append(json.dumps(rnd.choice([rnd.sample(FILTER_KEYS, 2), FILTER_KEYS[0]])))
            continue
        doc = {k: _random_value(rnd) for k in rnd.sample(DOC_KEYS, rnd.randint(0, 2))}
        for path, values in candidates:
            if draw(st.integers(0, 3)) > 0:
                doc = _put(doc, path, draw(values), rnd)
        docs.append(json.dumps(doc))
    return docs


@given(st.data(), filters, st.randoms(use_true_random=True))
@_examples(15)
def test_sql_agrees_with_reference(
    conn: Conn, data: st.DataObject, node: Node, rnd: random.Random
) -> None:
    text = render(node, rnd)
    assert canonical(parse_filter(text)) == canonical(node), text
    docs = data.draw(documents_for(node), label="docs")
    got = run(conn, compile_filter(text), docs)
    for doc, value in zip(docs, got, strict=True):
        assert value is not None or doc is None, f"NULL for {doc} under {text!r}"
        assert (value is True) == evaluate(node, load(doc)), f"{text!r} on {doc}"


TOKENS = [
    "a", "b.c", "x[0]", "y[#-1]", "=", "!=", "<", "<=", ">", ">=", "GLOB", "NOT", "IN", "CONTAINS",
    "HAS", "FIELD", "AND", "OR", "(", ")", ",", "'s'", '"t"', "1", "-2.5e3", "true", "[", "]",
    "#", ".", "'*[a-c]?'", "'\\''", "1e999", "9e99999999999999999999", "$$", "%s", "%(f0)s",
    "\\", "'",
]  # fmt: skip


def _mutate(text: str, rnd: random.Random) -> str:
    """``text`` with a few characters deleted, doubled or replaced: nearly a valid filter."""
    for _ in range(rnd.randint(1, 3)):
        i = rnd.randrange(len(text) + 1)
        edit = rnd.choice(["delete", "double", "insert"])
        if edit == "delete":
            text = text[:i] + text[i + 1 :]
        elif edit == "double":
            text = text[:i] + text[i : i + 1] * 2 + text[i + 1 :]
        else:
            text = text[:i] + rnd.choice("'\"\\()[]#-.,=<>!*? 0e9aZ\x00\ud800") + text[i:]
    return text


@given(
    st.one_of(
        st.text(max_size=60),
        st.lists(st.sampled_from(TOKENS), max_size=12).map(" ".join),
        st.lists(st.sampled_from(TOKENS), max_size=12).map("".join),
        st.tuples(filters, st.randoms(use_true_random=True)).map(
            lambda t: _mutate(render(t[0], t[1]), t[1])
        ),
    )
)
@_examples(10)
def test_fuzz_never_breaks_sql(conn: Conn, text: str) -> None:
    try:
        compiled = compile_filter(text)
    except InvalidFilter as exc:
        assert exc.message.startswith("filter: at position "), exc.message
        return
    docs = ['{"a": 1, "b": {"c": "s"}, "x": [1, "s"], "y": ["t", 2.5]}', '"s"', "[1]", None]
    run(conn, compiled, docs)
