"""Checks on user input that the HTTP edge and the CLI share; each failure names the item."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np

from pgpager.errors import InvalidRequest

COLLECTION_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
# pgvector's HNSW index supports up to 2,000 dimensions for the vector type.
HNSW_MAX_DIMENSION = 2000
FLOAT32_MAX = float(np.finfo(np.float32).max)
NUMBER_TYPES = {float, int}
"""Element types of a vector that need no look one by one (not bool, not str, ...)."""
MAX_NORM = 1e18
"""Longest vector accepted: squared distances between two such vectors stay within float32."""
MAX_JSON_DEPTH = 64
"""Most levels of nesting in metadata sent to pgpager (rows written with SQL may nest deeper)."""


def collection_name(name: str) -> str:
    if not COLLECTION_NAME.match(name):
        raise InvalidRequest(
            f"invalid collection name {name!r}: use 1-63 characters, lowercase letters, digits, "
            "'_' or '-', starting with a letter",
            field="name",
        )
    return name


def dimension(value: int) -> int:
    if value < 1 or value > HNSW_MAX_DIMENSION:
        raise InvalidRequest(
            f"dimension {value} is out of range: pgvector's HNSW index supports 1 to "
            f"{HNSW_MAX_DIMENSION} dimensions",
            field="dimension",
            limit=HNSW_MAX_DIMENSION,
        )
    return value


def vector_id(value: Any, where: str, max_length: int) -> str:
    if not isinstance(value, str) or value == "":
        raise InvalidRequest(f"{where}: id must be a non-empty string", item=where)
    if len(value) > max_length:
        raise InvalidRequest(
            f"{where}: id is {len(value)} characters long; the limit is {max_length}", item=where
        )
    if "\x00" in value:
        raise InvalidRequest(f"{where}: id must not contain NUL characters", item=where)
    return value


def vector(
    value: Any, dim: int, where: str, metric: str | None = None
) -> np.ndarray[Any, np.dtype[np.float32]]:
    if not isinstance(value, list | tuple):
        raise InvalidRequest(f"{where}: vector must be a list of {dim} numbers", item=where)
    if len(value) != dim:
        raise InvalidRequest(
            f"{where}: vector has {len(value)} dimensions; the collection has {dim}", item=where
        )
    # Checked in bulk (a set of element types, then numpy); only a vector that fails is walked
    # element by element, to name the first bad one.
    wide = None
    if set(map(type, value)) <= NUMBER_TYPES:
        with contextlib.suppress(OverflowError):  # an int past any float: named below
            wide = np.asarray(value, dtype=np.float64)
        if wide is not None and not (
            np.isfinite(wide).all() and (np.abs(wide) <= FLOAT32_MAX).all()
        ):
            wide = None
    if wide is None:
        for i, x in enumerate(value):
            if isinstance(x, bool) or not isinstance(x, int | float):
                raise InvalidRequest(f"{where}: vector[{i}] is not a number", item=where)
            if abs(x) > FLOAT32_MAX or not math.isfinite(x):
                raise InvalidRequest(
                    f"{where}: vector[{i}] = {x!r} is not a finite 32-bit float", item=where
                )
        wide = np.asarray(value, dtype=np.float64)
    array = wide.astype(np.float32)
    norm = float(np.linalg.norm(wide))
    if norm > MAX_NORM:
        raise InvalidRequest(
            f"{where}: the vector's length is {norm:.3g}; distances overflow above "
            f"{MAX_NORM:.0e}: scale it down",
            item=where,
        )
    if norm == 0.0 and metric == "cosine":
        raise InvalidRequest(
            f"{where}: a zero vector has no direction, so its cosine distance is undefined",
            item=where,
        )
    return array


def json_value(value: Any, what: str, where: str) -> None:
    """A JSON value pgpager stores: no NUL character (PostgreSQL cannot store one in text or
    jsonb) and at most ``MAX_JSON_DEPTH`` levels of nesting. Walked without recursion, so no
    depth can overflow the stack here."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise InvalidRequest(f"{where}: {what} must not contain NUL characters", item=where)
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidRequest(
                    f"{where}: {what} nests deeper than {MAX_JSON_DEPTH} levels, the limit",
                    item=where,
                    limit=MAX_JSON_DEPTH,
                )
            if isinstance(item, dict):
                stack.extend((k, depth) for k in item)
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)


def metadata(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}: metadata must be a JSON object", item=where)
    json_value(value, "metadata", where)
    return value


def metadata_json(value: dict[str, Any], where: str, max_bytes: int) -> msgspec.Raw:
    """Checked metadata as the JSON that is stored, refused past ``max_bytes``
    (``PGPAGER_MAX_METADATA_BYTES``). The store writes the Raw as it is, so metadata is
    encoded once, here, and measured on the way."""
    encoded = msgspec.json.encode(value)
    if len(encoded) > max_bytes:
        raise InvalidRequest(
            f"{where}: metadata is {len(encoded):,} bytes as JSON; the limit is {max_bytes:,} "
            "bytes (PGPAGER_MAX_METADATA_BYTES): keep large content out of metadata",
            item=where,
            size=len(encoded),
            limit=max_bytes,
        )
    return msgspec.Raw(encoded)


def stored_metadata(value: Any, where: str, max_bytes: int) -> msgspec.Raw | None:
    """Metadata to write: checked (``metadata``), encoded and measured (``metadata_json``)."""
    checked = metadata(value, where)
    return None if checked is None else metadata_json(checked, where, max_bytes)


def data(value: Any, where: str, max_bytes: int | None = None) -> str | None:
    """Text: a string without NUL; to be stored, at most ``max_bytes`` of UTF-8
    (``PGPAGER_MAX_DATA_BYTES``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}: data must be a string", item=where)
    if "\x00" in value:
        raise InvalidRequest(f"{where}: data must not contain NUL characters", item=where)
    # A character is at most 4 bytes of UTF-8: shorter text fits without being measured.
    if max_bytes is not None and len(value) * 4 > max_bytes:
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise InvalidRequest(
                f"{where}: data is {size:,} bytes as UTF-8; the limit is {max_bytes:,} bytes "
                "(PGPAGER_MAX_DATA_BYTES): split the text across several vectors",
                item=where,
                size=size,
                limit=max_bytes,
            )
    return value


def namespace(value: str | None) -> str:
    if value is None:
        return ""
    if len(value) > 256 or "\x00" in value:
        raise InvalidRequest(
            "namespace must be at most 256 characters, without NUL", field="namespace"
        )
    return value


def batch(items: Sequence[Any], what: str, max_size: int) -> None:
    if len(items) == 0:
        raise InvalidRequest(f"{what} must not be empty", field=what)
    if len(items) > max_size:
        raise InvalidRequest(
            f"{what} has {len(items)} items; the limit is {max_size} per request "
            "(PGPAGER_MAX_BATCH_SIZE), split the batch",
            field=what,
            limit=max_size,
        )
