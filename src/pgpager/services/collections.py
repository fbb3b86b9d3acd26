"""Creating, listing, inspecting and dropping collections."""

from __future__ import annotations

import asyncio
import time

from pgpager.errors import CollectionBusy, InvalidRequest, UnknownModel
from pgpager.services import validation
from pgpager.services.embedding import Embedder, find_model
from pgpager.settings import Settings
from pgpager.store import admin as admin_store
from pgpager.store import collections as store
from pgpager.store import sessions
from pgpager.store.collections import METRICS, Collection, CollectionInfo
from pgpager.store.database import Database


class Collections:
    """Creating, listing, inspecting and dropping collections."""

    def __init__(self, db: Database, settings: Settings, embedder: Embedder) -> None:
        self.db = db
        self.settings = settings
        self.embedder = embedder

    async def create(
        self,
        *,
        name: str,
        dimension: int | None = None,
        metric: str | None = None,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        embedding_model: str | None = None,
        build_index: bool = True,
    ) -> Collection:
        """Create a collection. With ``embedding_model`` the dimension (and, unless given, the
        metric) come from the model, which is loaded here: a model that cannot load fails the
        creation, not the first upsert."""
        validation.collection_name(name)
        if embedding_model is not None:
            model = find_model(embedding_model)
            if dimension is not None and dimension != model.dimension:
                raise InvalidRequest(
                    f"dimension {dimension} conflicts with the embedding model {model.name}, "
                    f"which makes {model.dimension}-d vectors: leave dimension out (or give "
                    f"{model.dimension})",
                    field="dimension",
                    model=model.name,
                    model_dimension=model.dimension,
                )
            dimension, embedding_model = model.dimension, model.name
            metric = metric or model.metric
        elif dimension is None:
            raise InvalidRequest(
                "give dimension (the length of the vectors you will send), or embedding_model "
                "to have pgpager embed text (GET /v1/models lists the models)",
                field="dimension",
            )
        metric = metric or "cosine"
        validation.dimension(dimension)
        if metric not in METRICS:
            raise InvalidRequest(
                f"unknown metric {metric!r}: use one of {', '.join(METRICS)}", field="metric"
            )
        if not 2 <= hnsw_m <= 100:
            raise InvalidRequest("hnsw m must be between 2 and 100", field="m")
        if not 4 <= hnsw_ef_construction <= 1000 or hnsw_ef_construction < 2 * hnsw_m:
            raise InvalidRequest(
                "hnsw ef_construction must be between 4 and 1000 and at least 2 * m",
                field="ef_construction",
            )
        if embedding_model is not None:
            await self.embedder.ensure_loaded(find_model(embedding_model))
        return await store.create(
            self.db,
            name=name,
            dimension=dimension,
            metric=metric,
            hnsw_m=hnsw_m,
            hnsw_ef_construction=hnsw_ef_construction,
            embedding_model=embedding_model,
            build_index=build_index,
        )

    async def list_all(self) -> list[Collection]:
        return await store.list_all(self.db)

    async def model_warnings(self) -> list[str]:
        """What a server says at start-up about the embedding models its collections name: one
        line per model that is not on this host, or that pgpager does not support (a name
        written with SQL). Files only: no model is loaded, the hub is not asked."""
        by_model: dict[str, list[str]] = {}
        for c in await self.list_all():
            if c.embedding_model is not None:
                by_model.setdefault(c.embedding_model, []).append(c.name)
        warnings = []
        for name, names in by_model.items():
            try:
                model = find_model(name)
            except UnknownModel:
                warnings.append(
                    f"collection(s) {', '.join(names)} name the embedding model {name!r}, which "
                    "pgpager does not support: text sent to them fails (vectors work)"
                )
                continue
            line = self.embedder.missing(model, names)
            if line is not None:
                warnings.append(line)
        return warnings

    async def get(self, name: str) -> Collection:
        return await store.find(self.db, name)

    async def estimated_counts(self) -> dict[str, int]:
        """Vectors per collection, estimated from the table statistics (cheap)."""
        return await admin_store.estimated_rows(self.db)

    async def info(self, name: str) -> CollectionInfo:
        return await store.info(self.db, name)

    async def drop(self, name: str) -> None:
        """Drop a collection. Cursor hosts of running servers hold a lock on tables they have read
        until their transaction ends, so on a lock timeout every server is asked (NOTIFY) to recycle
        its hosts, and the drop is retried for ``drop_wait_s`` seconds. Open handles of the
        collection go with it."""
        deadline = time.monotonic() + self.settings.drop_wait_s
        asked = False
        while True:
            try:
                await store.drop(self.db, name)
                return
            except CollectionBusy:
                if time.monotonic() >= deadline:
                    raise
                if not asked:
                    await sessions.request_recycle(self.db)
                    asked = True
                await asyncio.sleep(0.2)
