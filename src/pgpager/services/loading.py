"""Bulk loading of ``.npy`` and ``.jsonl`` files into a collection with binary COPY."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import errors as pgerrors
from psycopg.types.json import Jsonb

from pgpager.errors import InvalidRequest
from pgpager.services import validation
from pgpager.store import collections, vectors

Row = tuple[str, str, Any, Any, str | None]


def count_rows(path: Path) -> int:
    if path.suffix == ".npy":
        return int(np.load(path, mmap_mode="r").shape[0])
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def _npy_rows(path: Path, dim: int, namespace: str) -> Iterator[Row]:
    arr = np.load(path, mmap_mode="r")
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise InvalidRequest(f"{path.name}: shape {arr.shape}, expected (n, {dim})")
    for i in range(arr.shape[0]):
        row = np.asarray(arr[i], dtype=np.float32)
        if not np.isfinite(row).all():
            raise InvalidRequest(f"{path.name}: row {i} has NaN or infinite values")
        yield (str(i), namespace, row, None, None)


def _jsonl_rows(path: Path, dim: int, namespace: str, max_id: int) -> Iterator[Row]:
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path.name}:{lineno}"
            try:
                obj = json.loads(line, parse_constant=_reject_constant)
            except ValueError as exc:
                raise InvalidRequest(f"{where}: not valid JSON ({exc})") from exc
            if not isinstance(obj, dict):
                raise InvalidRequest(f"{where}: each line must be a JSON object")
            meta = validation.metadata(obj.get("metadata"), where)
            yield (
                validation.vector_id(obj.get("id"), where, max_id),
                namespace,
                validation.vector(obj.get("vector"), dim, where),
                None if meta is None else Jsonb(meta),
                validation.data(obj.get("data"), where),
            )


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


async def load_file(
    conn: psycopg.AsyncConnection[Any],
    collection: str,
    path: Path,
    *,
    namespace: str = "",
    max_id_length: int = 512,
    defer_index: bool = False,
    progress: Callable[[int], None] = lambda n: None,
    chunk: int = 5000,
) -> int:
    """Load every row in one transaction: all rows or none. Returns the number loaded.

    With ``defer_index`` the HNSW index is dropped first and built once at the end, which is
    several times faster than maintaining it row by row.
    """
    if path.suffix not in (".npy", ".jsonl"):
        raise InvalidRequest(f"{path.name}: use a .npy or .jsonl file")
    c = await collections.get(conn, collection)
    ns = validation.namespace(namespace)
    if path.suffix == ".npy":
        rows: Iterator[Row] = _npy_rows(path, c.dimension, ns)
    else:
        rows = _jsonl_rows(path, c.dimension, ns, max_id_length)
    total = 0
    try:
        async with conn.transaction():
            if defer_index:
                await collections.drop_hnsw_index(conn, c)
            while True:
                batch = [r for _, r in zip(range(chunk), rows, strict=False)]
                if not batch:
                    break
                total += await vectors.copy_in(conn, c, batch)
                progress(len(batch))
            if defer_index:
                await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
                await collections.build_hnsw_index(conn, c)
    except pgerrors.UniqueViolation as exc:
        detail = exc.diag.message_detail or ""
        raise InvalidRequest(
            f"{path.name}: an id already exists in the collection ({detail}); load does not "
            "overwrite: delete those vectors first or upsert them through the API"
        ) from exc
    return total

