"""Upserting, fetching and deleting vectors, with every item checked before anything is written
(and before any text is embedded)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from pgpager.errors import InvalidRequest
from pgpager.services import validation
from pgpager.services.embedding import Embedder, text_to_embed
from pgpager.settings import Settings
from pgpager.store import collections, vectors
from pgpager.store.database import Database
from pgpager.store.filters import compile_filter
from pgpager.store.vectors import VectorIn, VectorOut

EMPTY = np.zeros(0, dtype=np.float32)
"""Stands in for a vector until its text is embedded."""


class Vectors:
    """Upserting, fetching and deleting vectors."""

    def __init__(self, db: Database, settings: Settings, embedder: Embedder) -> None:
        self.db = db
        self.settings = settings
        self.embedder = embedder

    async def upsert(
        self,
        collection: str,
        items: Sequence[dict[str, Any]],
        namespace: str | None = None,
    ) -> int:
        """Validate the whole batch, embed the items that carry text and no vector (with the
        collection's model), then write it all in one transaction. Returns the number of
        vectors written (an id given twice is one vector: the last one wins)."""
        ns = validation.namespace(namespace)
        validation.batch(items, "vectors", self.settings.max_batch_size)
        c = await collections.find(self.db, collection)
        by_id: dict[str, VectorIn] = {}
        texts: dict[str, str] = {}
        for i, item in enumerate(items):
            where = f"vectors[{i}]"
            if not isinstance(item, dict):
                raise InvalidRequest(f"{where}: must be an object with id and vector", item=where)
            vid = validation.vector_id(item.get("id"), where, self.settings.max_id_length)
            metadata = validation.stored_metadata(
                item.get("metadata"), where, self.settings.max_metadata_bytes
            )
            data = validation.data(item.get("data"), where, self.settings.max_data_bytes)
            # Within one batch the last occurrence of an id wins, as with separate upserts.
            texts.pop(vid, None)
            if item.get("vector") is None and data is not None:
                self.embedder.model_of(c)  # no model: say so before anything else
                texts[vid] = text_to_embed(data, where)
                vector = EMPTY
            elif item.get("vector") is None and c.embedding_model is not None:
                raise InvalidRequest(
                    f"{where}: give vector, or data (text for {c.embedding_model} to embed)",
                    item=where,
                )
            else:
                vector = validation.vector(item.get("vector"), c.dimension, where, c.metric)
            by_id[vid] = VectorIn(id=vid, vector=vector, metadata=metadata, data=data)
        if texts:
            embedded = await self.embedder.embed(self.embedder.model_of(c), list(texts.values()))
            for vid, vector in zip(texts, embedded, strict=True):
                by_id[vid] = dataclasses.replace(by_id[vid], vector=vector)
        await vectors.upsert(self.db, collection, ns, list(by_id.values()))
        return len(by_id)

    async def fetch(
        self,
        collection: str,
        ids: Sequence[Any],
        namespace: str | None = None,
    ) -> list[VectorOut | None]:
        validation.batch(ids, "ids", self.settings.max_batch_size)
        checked = [
            validation.vector_id(v, f"ids[{i}]", self.settings.max_id_length)
            for i, v in enumerate(ids)
        ]
        return await vectors.fetch(self.db, collection, validation.namespace(namespace), checked)

    async def get(self, collection: str, vid: str, namespace: str | None) -> VectorOut | None:
        return (await self.fetch(collection, [vid], namespace))[0]

    async def delete(
        self,
        collection: str,
        *,
        ids: Sequence[Any] | None = None,
        prefix: str | None = None,
        filter: str | None = None,
        namespace: str | None = None,
    ) -> int:
        given = [x is not None for x in (ids, prefix, filter)]
        if sum(given) != 1:
            raise InvalidRequest("give exactly one of ids, prefix or filter", field="ids")
        ns = validation.namespace(namespace)
        if ids is not None:
            validation.batch(ids, "ids", self.settings.max_batch_size)
            checked = [
                validation.vector_id(v, f"ids[{i}]", self.settings.max_id_length)
                for i, v in enumerate(ids)
            ]
            return await vectors.delete(self.db, collection, ns, ids=checked)
        if prefix is not None:
            if prefix == "" or "\x00" in prefix:
                raise InvalidRequest(
                    "prefix must be a non-empty string without NUL", field="prefix"
                )
            return await vectors.delete(self.db, collection, ns, prefix=prefix)
        assert filter is not None
        if not filter.strip():
            raise InvalidRequest("filter must not be empty (use reset to delete everything)")
        return await vectors.delete(self.db, collection, ns, where=compile_filter(filter))
