"""/v1/collections: create, list, inspect and drop collections; /v1/models: the embedding models
a collection may name."""

from __future__ import annotations

from litestar import Controller, delete, get, post

from pgpager.http.schemas import (
    CollectionInfoOut,
    CollectionList,
    CollectionOut,
    CreateCollection,
    HnswParams,
    ModelList,
    ModelOut,
)
from pgpager.services.collections import Collections
from pgpager.services.embedding import Embedder


class CollectionsController(Controller):
    path = "/v1/collections"
    tags = ["collections"]

    @post("/", opt={"scope": "write"}, status_code=201)
    async def create(self, collections: Collections, data: CreateCollection) -> CollectionOut:
        hnsw = data.hnsw or HnswParams()
        c = await collections.create(
            name=data.name,
            dimension=data.dimension,
            metric=data.metric,
            hnsw_m=hnsw.m,
            hnsw_ef_construction=hnsw.ef_construction,
            embedding_model=data.embedding_model,
        )
        return CollectionOut.of(c)

    @get("/", opt={"scope": "read"})
    async def list_collections(self, collections: Collections) -> CollectionList:
        return CollectionList([CollectionOut.of(c) for c in await collections.list_all()])

    @get("/{name:str}", opt={"scope": "read"})
    async def info(self, collections: Collections, name: str) -> CollectionInfoOut:
        return CollectionInfoOut.of(await collections.info(name))

    @delete("/{name:str}", opt={"scope": "write"}, status_code=204)
    async def drop(self, collections: Collections, name: str) -> None:
        await collections.drop(name)


@get("/v1/models", opt={"scope": "read"}, tags=["collections"])
async def list_models(embedder: Embedder) -> ModelList:
    """The embedding models a collection may name, with their dimensions."""
    return ModelList([ModelOut.of(m, embedder.source(m)) for m in embedder.models()])
