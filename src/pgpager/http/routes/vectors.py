"""/v1/collections/{name}/vectors: upsert, fetch, get and delete vectors."""

from __future__ import annotations

import msgspec
from litestar import Controller, get, post

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
from pgpager.services.vectors import Vectors


class VectorsController(Controller):
    path = "/v1/collections/{name:str}/vectors"
    tags = ["vectors"]

    @post("/", opt={"scope": "write"}, status_code=200)
    async def upsert(self, vectors: Vectors, name: str, data: UpsertVectors) -> Upserted:
        items = [msgspec.structs.asdict(v) for v in data.vectors]
        n = await vectors.upsert(name, items, data.namespace)
        return Upserted(upserted=n)

    @post("/fetch", opt={"scope": "read"}, status_code=200)
    async def fetch(self, vectors: Vectors, name: str, data: FetchVectors) -> Fetched:
        found = await vectors.fetch(name, data.ids, data.namespace)
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
    async def delete(self, vectors: Vectors, name: str, data: DeleteVectors) -> Deleted:
        n = await vectors.delete(
            name,
            ids=data.ids,
            prefix=data.prefix,
            filter=data.filter,
            namespace=data.namespace,
        )
        return Deleted(deleted=n)

    @get("/{vector_id:str}", opt={"scope": "read"})
    async def get_one(
        self, vectors: Vectors, name: str, vector_id: str, namespace: str | None = None
    ) -> VectorRecord:
        v = await vectors.get(name, vector_id, namespace)
        if v is None:
            raise VectorNotFound(f"no vector {vector_id!r} in collection {name!r}", id=vector_id)
        return VectorRecord.of(v)
