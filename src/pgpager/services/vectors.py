"""Upserting, fetching and deleting vectors, with every item checked before anything is written."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pgpager.errors import InvalidRequest
from pgpager.services import validation
from pgpager.settings import Settings
from pgpager.store import collections, vectors
from pgpager.store.database import Database
from pgpager.store.filters import compile_filter
from pgpager.store.vectors import VectorIn, VectorOut


class Vectors:
    """Upserting, fetching and deleting vectors."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def upsert(
        self,
        collection: str,
        items: Sequence[dict[str, Any]],
        namespace: str | None = None,
    ) -> int:
        """Validate the whole batch, then write it in one transaction. Returns the number of
        vectors written (an id given twice is one vector: the last one wins)."""
        ns = validation.namespace(namespace)
        validation.batch(items, "vectors", self.settings.max_batch_size)
        c = await collections.find(self.db, collection)
        by_id: dict[str, VectorIn] = {}
        for i, item in enumerate(items):
            where = f"vectors[{i}]"
            if not isinstance(item, dict):
                raise InvalidRequest(f"{where}: must be an object with id and vector", item=where)
            vid = validation.vector_id(item.get("id"), where, self.settings.max_id_length)
            # Within one batch the last occurrence of an id wins, as with separate upserts.
            by_id[vid] = VectorIn(
                id=vid,
                vector=validation.vector(item.get("vector"), c.dimension, where, c.metric),
                metadata=validation.metadata(item.get("metadata"), where),
                data=validation.data(item.get("data"), where),
            )
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
