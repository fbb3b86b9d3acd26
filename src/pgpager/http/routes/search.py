"""/v1/collections/{name}/search and /objects: offset pagination and keyset listing."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, get, post

from pgpager.http.schemas import ObjectPageOut, SearchHit, SearchPage, SearchRequest, VectorRecord
from pgpager.services.offset import OffsetPages
from pgpager.store.search import Include


class SearchController(Controller):
    path = "/v1/collections/{name:str}"
    tags = ["offset pagination"]

    @post("/search", opt={"scope": "read"}, status_code=200)
    async def search(self, offset_pages: OffsetPages, name: str, data: SearchRequest) -> SearchPage:
        hits = await offset_pages.search(
            name,
            vector=data.vector,
            data=data.data,
            limit=data.limit,
            offset=data.offset,
            namespace=data.namespace,
            filter=data.filter,
            include=Include(data.include_vectors, data.include_metadata, data.include_data),
        )
        return SearchPage([SearchHit.of(h) for h in hits], offset=data.offset, limit=data.limit)

    @get("/objects", opt={"scope": "read"})
    async def list_objects(
        self,
        offset_pages: OffsetPages,
        request: Request[Any, Any, Any],
        name: str,
        limit: int = 10,
        offset: int = 0,
        after: str | None = None,
        namespace: str | None = None,
        filter: str | None = None,
        include_vectors: bool = False,
        include_metadata: bool = True,
        include_data: bool = True,
    ) -> ObjectPageOut:
        page = await offset_pages.list_objects(
            name,
            limit=limit,
            offset=offset,
            after=after,
            namespace=namespace,
            filter=filter,
            include=Include(include_vectors, include_metadata, include_data),
        )
        link = None
        if page.next is not None:
            # The same query continued by keyset, so following links never hits the cap.
            params: dict[str, str | int] = {"limit": limit, "after": page.next}
            if namespace:
                params["namespace"] = namespace
            if filter:
                params["filter"] = filter
            params.update(
                {
                    k: str(v).lower()
                    for k, v, default in (
                        ("include_vectors", include_vectors, False),
                        ("include_metadata", include_metadata, True),
                        ("include_data", include_data, True),
                    )
                    if v != default
                }
            )
            link = f"{request.url.path}?{urlencode(params)}"
        return ObjectPageOut(
            objects=[VectorRecord.of(v) for v in page.objects],
            offset=offset,
            limit=limit,
            next=page.next,
            next_link=link,
        )
