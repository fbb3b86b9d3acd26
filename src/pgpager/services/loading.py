"""Bulk loading of ``.npy`` and ``.jsonl`` files into a collection with binary COPY. JSONL lines
with text (``data``) and no vector are embedded with the collection's model on the way."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pgpager.errors import DuplicateId, InvalidRequest
from pgpager.services import validation
from pgpager.services.embedding import Embedder, text_to_embed
from pgpager.settings import Settings
from pgpager.store import collections, vectors
from pgpager.store.database import Database
from pgpager.store.vectors import CopyBatch

Row = tuple[str, str, Any, Any, str | None]

TEXT_CHUNK = 256
"""Rows per batch when lines are embedded: the progress bar moves as text is embedded."""


def count_rows(path: Path) -> int:
    if path.suffix == ".npy":
        return int(np.load(path, mmap_mode="r").shape[0])
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def _npy_batches(path: Path, dim: int, namespace: str, chunk: int) -> Iterator[CopyBatch]:
    """The rows of a .npy file, ``chunk`` at a time (ids are row numbers), checked by block."""
    arr = np.load(path, mmap_mode="r")
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise InvalidRequest(f"{path.name}: shape {arr.shape}, expected (n, {dim})")
    for start in range(0, arr.shape[0], chunk):
        block = np.asarray(arr[start : start + chunk], dtype=np.float32)
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            row = start + int(np.argmin(finite))
            raise InvalidRequest(f"{path.name}: row {row} has NaN or infinite values")
        ids = [str(i) for i in range(start, start + len(block))]
        yield CopyBatch(ids=ids, namespace=namespace, vectors=block)


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
                meta,
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
            blocks = _npy_batches(path, c.dimension, ns, chunk)

            async def batches() -> AsyncIterator[CopyBatch]:
                for block in blocks:
                    yield block

        else:
            rows = _jsonl_rows(path, c.dimension, ns, self.settings, embeds=embeds)
            if embeds:
                chunk = min(chunk, TEXT_CHUNK)

            async def batches() -> AsyncIterator[CopyBatch]:
                while batch := [r for _, r in zip(range(chunk), rows, strict=False)]:
                    texts = [i for i, r in enumerate(batch) if isinstance(r[2], Text)]
                    if texts:
                        model = self.embedder.model_of(c)
                        vecs = await self.embedder.embed(model, [batch[i][2] for i in texts])
                        for i, vector in zip(texts, vecs, strict=True):
                            rid, rns, _, meta, data = batch[i]
                            batch[i] = (rid, rns, vector, meta, data)
                    yield CopyBatch(
                        ids=[r[0] for r in batch],
                        namespace=ns,
                        vectors=np.stack([np.asarray(r[2], dtype=np.float32) for r in batch]),
                        metadata=[r[3] for r in batch],
                        data=[r[4] for r in batch],
                    )

        try:
            return await vectors.load(
                self.db, c, batches(), defer_index=defer_index, progress=progress
            )
        except DuplicateId as exc:
            raise InvalidRequest(
                f"{path.name}: an id already exists in the collection ({exc.message}); load "
                "does not overwrite: delete those vectors first or upsert them through the API"
            ) from exc
