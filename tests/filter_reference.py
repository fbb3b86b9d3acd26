"""A pure-Python statement of what a filter means, for checking the SQL that filters compile to.

``evaluate`` decides a filter AST against one metadata document; ``render`` writes an AST back
as filter text (with varied spelling) so generated filters also exercise the parser. Nothing
here shares code with ``pgpager.store.filters`` beyond the AST classes.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

from pgpager.store.filters import (
    And,
    Comparison,
    Contains,
    Glob,
    HasField,
    In,
    Node,
    Or,
    Path,
    Scalar,
)

MISSING: Any = object()
"""What a path resolves to when the document has nothing there."""


def load(doc_text: str | None) -> Any:
    """The document as PostgreSQL sees it: numbers exact. SQL NULL metadata behaves as {}."""
    if doc_text is None:
        return {}
    return json.loads(doc_text, parse_float=Decimal, parse_int=Decimal)


def resolve(doc: Any, path: Path) -> Any:
    node = doc
    for step in path:
        if isinstance(step, str):
            if not isinstance(node, dict) or step not in node:
                return MISSING
            node = node[step]
        else:
            if not isinstance(node, list) or not -len(node) <= step < len(node):
                return MISSING
            node = node[step]
    return node


def kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


def equal(a: Any, b: Scalar) -> bool:
    """JSON equality of a document value and a literal: same type and same value (1 == 1.0)."""
    return kind(a) == kind(b) != "other" and a == b


def evaluate(node: Node, doc: Any) -> bool:
    match node:
        case And(operands):
            return all(evaluate(n, doc) for n in operands)
        case Or(operands):
            return any(evaluate(n, doc) for n in operands)
        case HasField(path, negated):
            return (resolve(doc, path) is MISSING) == negated
    value = resolve(doc, node.path)
    match node:
        case Comparison(_, op, literal):
            if op == "=":
                return equal(value, literal)
            if op == "!=":
                return kind(value) != "other" and not equal(value, literal)
            if kind(value) != "number":
                return False
            assert isinstance(literal, Decimal)
            return bool(
                {
                    "<": value < literal,
                    "<=": value <= literal,
                    ">": value > literal,
                    ">=": value >= literal,
                }[op]
            )
        case Glob(_, pattern, negated):
            return isinstance(value, str) and glob_match(pattern, value) != negated
        case In(_, values, negated):
            return kind(value) != "other" and any(equal(value, x) for x in values) != negated
        case Contains(_, literal, negated):
            return isinstance(value, list) and any(equal(x, literal) for x in value) != negated
    raise TypeError(node)


# --- GLOB, SQLite style ----------------------------------------------------------------------
def glob_items(pattern: str) -> list[tuple[Any, ...]]:
    """('lit', c) | ('any',) | ('star',) | ('set', negated, [(lo, hi), ...]); ValueError if bad."""
    items: list[tuple[Any, ...]] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            items.append(("star",))
        elif c == "?":
            items.append(("any",))
        elif c != "[":
            items.append(("lit", c))
        else:
            j = i + 1
            negated = j < len(pattern) and pattern[j] in "^!"
            j += negated
            ranges = []
            if j < len(pattern) and pattern[j] == "]":
                ranges.append(("]", "]"))
                j += 1
            while j < len(pattern) and pattern[j] != "]":
                if pattern[j + 1 : j + 2] == "-" and pattern[j + 2 : j + 3] not in ("", "]"):
                    if pattern[j + 2] < pattern[j]:
                        raise ValueError("backwards range")
                    ranges.append((pattern[j], pattern[j + 2]))
                    j += 3
                else:
                    ranges.append((pattern[j], pattern[j]))
                    j += 1
            if j >= len(pattern):
                raise ValueError("unclosed [")
            items.append(("set", negated, ranges))
            i = j
        i += 1
    return items


def glob_match(pattern: str, text: str) -> bool:
    items = glob_items(pattern)
    # reachable[j]: the items so far can match text[:j]
    reachable = [True] + [False] * len(text)
    for item in items:
        if item[0] == "star":
            seen = False
            for j in range(len(text) + 1):
                seen = seen or reachable[j]
                reachable[j] = seen
            continue
        nxt = [False] * (len(text) + 1)
        for j, ch in enumerate(text):
            if reachable[j] and _one(item, ch):
                nxt[j + 1] = True
        reachable = nxt
    return reachable[len(text)]


def _one(item: tuple[Any, ...], ch: str) -> bool:
    if item[0] == "any":
        return True
    if item[0] == "lit":
        return bool(item[1] == ch)
    inside = any(lo <= ch <= hi for lo, hi in item[2])
    return bool(inside != item[1])


# --- rendering -------------------------------------------------------------------------------
def render(node: Node, rnd: random.Random) -> str:
    """Filter text for ``node``; ``rnd`` varies keyword case, quoting, escapes and spacing."""
    match node:
        case And(operands):
            return _kw("AND", rnd).join(_operand(n, And, rnd) for n in operands)
        case Or(operands):
            return _kw("OR", rnd).join(_operand(n, Or, rnd) for n in operands)
        case HasField(path, negated):
            words = ["HAS", "NOT", "FIELD"] if negated else ["HAS", "FIELD"]
            return " ".join(_case(w, rnd) for w in words) + " " + _path(path)
        case Comparison(path, op, value):
            return _path(path) + _space(rnd) + op + _space(rnd) + _value(value, rnd)
        case Glob(path, pattern, negated):
            return _path(path) + _not(negated, rnd) + _kw("GLOB", rnd) + _string(pattern, rnd)
        case In(path, values, negated):
            sep = "," + _space(rnd)
            listed = sep.join(_value(v, rnd) for v in values)
            return _path(path) + _not(negated, rnd) + _kw("IN", rnd) + f"({listed})"
        case Contains(path, value, negated):
            return _path(path) + _not(negated, rnd) + _kw("CONTAINS", rnd) + _value(value, rnd)
    raise TypeError(node)


def _operand(node: Node, parent: type, rnd: random.Random) -> str:
    text = render(node, rnd)
    # An OR under an AND needs parentheses; anything else may have them.
    needed = parent is And and isinstance(node, Or)
    if isinstance(node, Or | And) and (needed or rnd.random() < 0.5):
        return f"({_space(rnd)}{text}{_space(rnd)})"
    if not isinstance(node, Or | And) and rnd.random() < 0.1:
        return f"({text})"
    return text


def _path(path: Path) -> str:
    out = str(path[0])
    for step in path[1:]:
        if isinstance(step, str):
            out += "." + step
        elif step >= 0:
            out += f"[{step}]"
        else:
            out += f"[#{step}]"
    return out


def _case(word: str, rnd: random.Random) -> str:
    return rnd.choice([word, word.lower(), "".join(rnd.choice([c, c.lower()]) for c in word)])


def _kw(word: str, rnd: random.Random) -> str:
    return " " + _case(word, rnd) + " "


def _not(negated: bool, rnd: random.Random) -> str:
    return _kw("NOT", rnd).rstrip() if negated else ""


def _space(rnd: random.Random) -> str:
    return rnd.choice(["", " ", "  ", "\t", "\n"])


def _value(value: Scalar, rnd: random.Random) -> str:
    if isinstance(value, bool):
        return _case("TRUE" if value else "FALSE", rnd)
    if isinstance(value, Decimal):
        return _number(value, rnd)
    return _string(value, rnd)


def _number(value: Decimal, rnd: random.Random) -> str:
    forms = [str(value), format(value, "e"), format(value, "E")]
    if value == value.to_integral_value() and abs(value) < 10**40:
        forms.append(str(int(value)))
    if abs(value.adjusted()) < 30:
        forms.append(format(value, "f"))
    return rnd.choice(forms)


def _string(value: str, rnd: random.Random) -> str:
    quote = rnd.choice("'\"")
    out = []
    for ch in value:
        if ch in ("\\", quote) or (ch in "\"'" and rnd.random() < 0.3):
            out.append("\\" + ch)
        elif ch in "\n\t" and rnd.random() < 0.5:
            out.append({"\n": "\\n", "\t": "\\t"}[ch])
        elif not ch.isascii() and rnd.random() < 0.5:
            out.append(_u_escape(ch, rnd))
        else:
            out.append(ch)
    return quote + "".join(out) + quote


def _u_escape(ch: str, rnd: random.Random) -> str:
    units = ch.encode("utf-16-be")
    codes = [int.from_bytes(units[i : i + 2], "big") for i in range(0, len(units), 2)]
    return "".join(rnd.choice([f"\\u{c:04x}", f"\\u{c:04X}"]) for c in codes)
