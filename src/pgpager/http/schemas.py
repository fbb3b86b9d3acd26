"""Request and response bodies of the native API (msgspec structs)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import msgspec

from pgpager.services.embedding import Model
from pgpager.store.collections import Collection, CollectionInfo
from pgpager.store.search import Hit
from pgpager.store.vectors import VectorOut


class Strict(msgspec.Struct, forbid_unknown_fields=True):
    """Unknown fields are an error, so a typo gets a message instead of being ignored."""


class HnswParams(Strict):
    m: int = 16
    ef_construction: int = 64


class CreateCollection(Strict):
    """``dimension`` is required without ``embedding_model``; with one, the model sets it (and
    the metric, unless given)."""

    name: str
    dimension: int | None = None
    metric: Literal["cosine", "euclidean", "dot_product"] | None = None
    hnsw: HnswParams | None = None
    embedding_model: str | None = None


class CollectionOut(msgspec.Struct):
    name: str
    dimension: int
    metric: str
    hnsw: HnswParams
    embedding_model: str | None
    table: str
    created_at: dt.datetime

    @classmethod
    def of(cls, c: Collection) -> CollectionOut:
        return cls(
            name=c.name,
            dimension=c.dimension,
            metric=c.metric,
            hnsw=HnswParams(m=c.hnsw_m, ef_construction=c.hnsw_ef_construction),
            embedding_model=c.embedding_model,
            table=c.qualified,
            created_at=c.created_at,
        )


class CollectionInfoOut(msgspec.Struct):
    name: str
    dimension: int
    metric: str
    hnsw: HnswParams
    embedding_model: str | None
    table: str
    created_at: dt.datetime
    vector_count: int
    namespaces: dict[str, int]
    indexes: list[dict[str, Any]]
    size_bytes: int

    @classmethod
    def of(cls, i: CollectionInfo) -> CollectionInfoOut:
        base = msgspec.structs.asdict(CollectionOut.of(i.collection))
        return cls(
            **base,
            vector_count=i.vector_count,
            namespaces=i.namespaces,
            indexes=i.indexes,
            size_bytes=i.size_bytes,
        )


class CollectionList(msgspec.Struct):
    collections: list[CollectionOut]


class VectorItem(Strict):
    """``vector``, or ``data`` alone in a collection with an embedding model (the text is
    embedded and stored); with both, the vector is kept and the text stored beside it."""

    id: str
    vector: list[float] | None = None
    metadata: dict[str, Any] | None = None
    data: str | None = None


class UpsertVectors(Strict):
    vectors: list[VectorItem]
    namespace: str | None = None


class Upserted(msgspec.Struct):
    upserted: int


class FetchVectors(Strict):
    ids: list[str]
    namespace: str | None = None
    include_vectors: bool = True
    include_metadata: bool = True
    include_data: bool = True


class VectorRecord(msgspec.Struct, omit_defaults=True):
    id: str
    vector: list[float] | None = None
    metadata: dict[str, Any] | None = None
    data: str | None = None

    @classmethod
    def of(
        cls,
        v: VectorOut,
        include_vectors: bool = True,
        include_metadata: bool = True,
        include_data: bool = True,
    ) -> VectorRecord:
        return cls(
            id=v.id,
            vector=v.vector if include_vectors else None,
            metadata=v.metadata if include_metadata else None,
            data=v.data if include_data else None,
        )


class Fetched(msgspec.Struct):
    vectors: list[VectorRecord | None]


class DeleteVectors(Strict):
    ids: list[str] | None = None
    prefix: str | None = None
    filter: str | None = None
    namespace: str | None = None


class Deleted(msgspec.Struct):
    deleted: int


class SearchRequest(Strict):
    """Offset pagination: results offset .. offset + limit of the nearest-first order. The query
    is ``vector``, or ``data``: text, embedded with the collection's model."""

    vector: list[float] | None = None
    data: str | None = None
    limit: int = 10
    offset: int = 0
    namespace: str | None = None
    filter: str | None = None
    include_vectors: bool = False
    include_metadata: bool = False
    include_data: bool = False


class SearchHit(msgspec.Struct, omit_defaults=True):
    id: str
    score: float
    distance: float
    vector: list[float] | None = None
    metadata: dict[str, Any] | None = None
    data: str | None = None

    @classmethod
    def of(cls, h: Hit) -> SearchHit:
        return cls(h.id, h.score, h.distance, h.vector, h.metadata, h.data)


class SearchPage(msgspec.Struct):
    results: list[SearchHit]
    offset: int
    limit: int


class ModelOut(msgspec.Struct):
    name: str
    dimension: int
    metric: str
    max_tokens: int
    size_mb: int
    description: str
    upstash_name: str
    model_file: str
    source: str
    """Where it loads from now: loaded, model_dir, cache, or hub (downloaded on first use)."""

    @classmethod
    def of(cls, m: Model, source: str) -> ModelOut:
        return cls(
            name=m.name,
            dimension=m.dimension,
            metric=m.metric,
            max_tokens=m.max_tokens,
            size_mb=m.size_mb,
            description=m.description,
            upstash_name=m.upstash_name,
            model_file=m.model_file,
            source=source,
        )


class ModelList(msgspec.Struct):
    models: list[ModelOut]


class ObjectPageOut(msgspec.Struct):
    """A page of the listing by id. ``next`` is the last id when more rows follow (pass it as
    ``after``), else null; ``next_link`` is the URL of the next page, ready to GET."""

    objects: list[VectorRecord]
    offset: int
    limit: int
    next: str | None
    next_link: str | None
