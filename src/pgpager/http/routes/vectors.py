"""/v1/collections/{name}/vectors: upsert, fetch, get and delete vectors."""

from __future__ import annotations

import msgspec
from litestar import Controller, get, post

from pgpager.context import AppContext
from pgpager.errors import VectorNotFound
from pgpager.http.schemas import (
    Deleted,
    DeleteVectors,
    Fetched,
    FetchVectors,
    Upserted,
    UpsertVectors,
    VectorRecord,
)
from pgpager.services import vectors


class VectorsController(Controller):
    path = "/v1/collections/{name:str}/vectors"
    tags = ["vectors"]

    @post("/", opt={"scope": "write"}, status_code=200)
    async def upsert(self, ctx: AppContext, name: str, data: UpsertVectors) -> Upserted:
        items = [msgspec.structs.asdict(v) for v in data.vectors]
        n = await vectors.upsert(ctx.pool, ctx.settings, name, items, data.namespace)
        return Upserted(upserted=n)

    @post("/fetch", opt={"scope": "read"}, status_code=200)
    async def fetch(self, ctx: AppContext, name: str, data: FetchVectors) -> Fetched:
        found = await vectors.fetch(ctx.pool, ctx.settings, name, data.ids, data.namespace)
        return Fetched(
            [
                None
                if v is None
                else VectorRecord.of(
                    v, data.include_vectors, data.include_metadata, data.include_data
                )
                for v in found
            ]
        )

    @post("/delete", opt={"scope": "write"}, status_code=200)
    async def delete(self, ctx: AppContext, name: str, data: DeleteVectors) -> Deleted:
        n = await vectors.delete(
            ctx.pool,
            ctx.settings,
            name,
            ids=data.ids,
            prefix=data.prefix,
            filter=data.filter,
            namespace=data.namespace,
        )
        return Deleted(deleted=n)

    @get("/{vector_id:str}", opt={"scope": "read"})
    async def get_one(
        self, ctx: AppContext, name: str, vector_id: str, namespace: str | None = None
    ) -> VectorRecord:
        v = await vectors.get(ctx.pool, ctx.settings, name, vector_id, namespace)
        if v is None:
            raise VectorNotFound(f"no vector {vector_id!r} in collection {name!r}", id=vector_id)
        return VectorRecord.of(v)
