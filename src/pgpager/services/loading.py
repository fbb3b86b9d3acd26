"""Bulk loading of ``.npy`` and ``.jsonl`` files into a collection with binary COPY. JSONL lines
with text (``data``) and no vector are embedded with the collection's model on the way."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb

from pgpager.errors import DuplicateId, InvalidRequest
from pgpager.services import validation
from pgpager.services.embedding import Embedder, text_to_embed
from pgpager.settings import Settings
from pgpager.store import collections, vectors
from pgpager.store.database import Database

Row = tuple[str, str, Any, Any, str | None]

TEXT_CHUNK = 256
"""Rows per batch when lines are embedded: the progress bar moves as text is embedded."""


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


def _jsonl_rows(
    path: Path, dim: int, namespace: str, limits: Settings, *, embeds: bool
) -> Iterator[Row]:
    """Rows of a JSONL file, within the settings' limits (id length, metadata and data size).
    With ``embeds`` (the collection has a model), a line with data and no vector gets its text
    as a placeholder in the vector's place, embedded later by batch."""
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
            meta = validation.stored_metadata(obj.get("metadata"), where, limits.max_metadata_bytes)
            data = validation.data(obj.get("data"), where, limits.max_data_bytes)
            vector: Any
            if obj.get("vector") is None and data is not None:
                if not embeds:
                    raise InvalidRequest(
                        f"{where}: this line has data and no vector, and the collection has no "
                        "embedding model to embed it: add vectors, or load into a collection "
                        "created with a model (pgpager collections create NAME --model MODEL)"
                    )
                vector = Text(text_to_embed(data, where))
            else:
                vector = validation.vector(obj.get("vector"), dim, where)
            yield (
                validation.vector_id(obj.get("id"), where, limits.max_id_length),
                namespace,
                vector,
                None if meta is None else Jsonb(meta),
                data,
            )


class Text(str):
    """Text in a row's vector place, to be embedded before the row is written."""


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


class Loader:
    """``pgpager load``: a whole file into a collection, in one transaction."""

    def __init__(self, db: Database, settings: Settings, embedder: Embedder) -> None:
        self.db = db
        self.settings = settings
        self.embedder = embedder

    async def load(
        self,
        collection: str,
        path: Path,
        *,
        namespace: str = "",
        defer_index: bool = False,
        progress: Callable[[int], None] = lambda n: None,
        chunk: int = 5000,
    ) -> int:
        """Load every row: all rows or none. Returns the number loaded.

        With ``defer_index`` the HNSW index is dropped first and built once at the end, which
        is several times faster than maintaining it row by row. Lines with text and no vector
        are embedded a batch at a time, inside the same transaction.
        """
        if path.suffix not in (".npy", ".jsonl"):
            raise InvalidRequest(f"{path.name}: use a .npy or .jsonl file")
        c = await collections.find(self.db, collection)
        ns = validation.namespace(namespace)
        embeds = c.embedding_model is not None
        if path.suffix == ".npy":
            rows: Iterator[Row] = _npy_rows(path, c.dimension, ns)
        else:
            rows = _jsonl_rows(path, c.dimension, ns, self.settings, embeds=embeds)
            if embeds:
                chunk = min(chunk, TEXT_CHUNK)

        async def batches() -> AsyncIterator[list[Row]]:
            while batch := [r for _, r in zip(range(chunk), rows, strict=False)]:
                texts = [i for i, r in enumerate(batch) if isinstance(r[2], Text)]
                if texts:
                    model = self.embedder.model_of(c)
                    vectors = await self.embedder.embed(model, [batch[i][2] for i in texts])
                    for i, vector in zip(texts, vectors, strict=True):
                        rid, rns, _, meta, data = batch[i]
                        batch[i] = (rid, rns, vector, meta, data)
                yield batch

        try:
            return await vectors.load(
                self.db, c, batches(), defer_index=defer_index, progress=progress
            )
        except DuplicateId as exc:
            raise InvalidRequest(
                f"{path.name}: an id already exists in the collection ({exc.message}); load "
                "does not overwrite: delete those vectors first or upsert them through the API"
            ) from exc
