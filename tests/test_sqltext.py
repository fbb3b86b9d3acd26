"""Named parameters in the user's SQL text: found where PostgreSQL's lexer would see them, and
nowhere else (the database runs the result in tests/test_rockset_client.py)."""

from __future__ import annotations

import pytest

from pgpager.errors import InvalidRequest
from pgpager.store.sqltext import Bound, NamedParameter, bind_named, has_top_level_limit


def bind(text: str, *names: str) -> Bound:
    return bind_named(text, [NamedParameter(n, "string", n.upper()) for n in names])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT :a", "SELECT $1"),
        ("SELECT ':a', :a", "SELECT ':a', $1"),
        ("SELECT 'it''s :x', :a", "SELECT 'it''s :x', $1"),
        ("SELECT E'\\' :x', :a", "SELECT E'\\' :x', $1"),
        ('SELECT ":x", :a', 'SELECT ":x", $1'),
        ("SELECT $$ :x $$, $tag$ :x $ $tag$, :a", "SELECT $$ :x $$, $tag$ :x $ $tag$, $1"),
        ("SELECT :a -- :x\n", "SELECT $1 -- :x\n"),
        ("SELECT /* :x /* :y */ :z */ :a", "SELECT /* :x /* :y */ :z */ $1"),
        ("SELECT :a::text, x::int", "SELECT $1::text, x::int"),
        ("SELECT arr[1:2], :a", "SELECT arr[1:2], $1"),
        ("SELECT :a, :a", "SELECT $1, $1"),
        ("SELECT $1, :a", "SELECT $1, $1"),
    ],
)
def test_parameters_are_found_only_outside_quotes_comments_and_casts(
    text: str, expected: str
) -> None:
    assert bind(text, "a").text == expected


def test_values_follow_first_use_and_positions_map_back() -> None:
    b = bind("SELECT :second, :first, :second + oops", "first", "second")
    assert b.text == "SELECT $1, $2, $1 + oops"
    assert b.values == ["SECOND", "FIRST"]
    original = "SELECT :second, :first, :second + oops"
    assert b.original_position(b.text.index("oops") + 1) == original.index("oops") + 1
    assert b.original_position(1) == 1


@pytest.mark.parametrize(
    ("text", "names", "says"),
    [
        ("SELECT :a", (), "no parameter named 'a'"),
        ("SELECT 1", ("a",), "does not use it"),
        ("SELECT ':a'", ("a",), "does not use it"),
    ],
)
def test_missing_and_unused_names_are_refused(text: str, names: tuple[str, ...], says: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        bind(text, *names)
    assert says in raised.value.message


@pytest.mark.parametrize(
    ("text", "limited"),
    [
        ("SELECT 1 LIMIT 3", True),
        ("SELECT 1 FETCH FIRST 3 ROWS ONLY", True),
        ("SELECT * FROM (SELECT 1 LIMIT 3) t", False),
        ("SELECT 'limit' AS x -- limit", False),
        ('SELECT 1 AS "limit"', False),
    ],
)
def test_top_level_limit(text: str, limited: bool) -> None:
    assert has_top_level_limit(text) is limited
