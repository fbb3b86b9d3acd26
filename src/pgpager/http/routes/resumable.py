"""Resumable queries: start, next, status, stop (native API)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, post

from pgpager.http.auth import key_id
from pgpager.http.schemas import SearchHit, Strict
from pgpager.services.resumable import HandleView, Page, ResumableQueries
from pgpager.store.search import Include
from pgpager.store.sessions import Session


class StartResumable(Strict):
    """The query is ``vector``, or ``data``: text, embedded once with the collection's model (the
    handle keeps the vector, so it never embeds again)."""

    vector: list[float] | None = None
    data: str | None = None
    top_k: int = 10
    namespace: str | None = None
    filter: str | None = None
    include_vectors: bool = False
    include_metadata: bool = False
    include_data: bool = False
    max_idle: int | None = None


class NextBatch(Strict):
    additional_k: int = 10


class PageOut(msgspec.Struct):
    handle: str
    results: list[SearchHit]
    state: str
    position: int

    @classmethod
    def of(cls, p: Page) -> PageOut:
        return cls(p.handle, [SearchHit.of(h) for h in p.results], p.state, p.position)


class HandleStatus(msgspec.Struct):
    handle: str
    collection: str
    namespace: str
    state: str
    state_reason: str | None
    phase: str
    position: int
    top_k: int
    filter: str | None
    created_at: dt.datetime
    last_used_at: dt.datetime
    idle_seconds: float
    max_idle: int
    expires_at: dt.datetime | None
    owner_instance: str | None = None
    """The instance holding the handle's cursor (its X-Pgpager-Instance); None when none does."""

    @classmethod
    def of(cls, s: Session) -> HandleStatus:
        v = HandleView.of(s)
        return cls(
            handle=v.id,
            collection=v.collection,
            namespace=v.namespace,
            state=v.state,
            state_reason=v.state_reason,
            phase=v.phase,
            position=v.position,
            top_k=v.top_k,
            filter=v.filter,
            created_at=v.created_at,
            last_used_at=v.last_used_at,
            idle_seconds=v.idle_s,
            max_idle=v.max_idle_s,
            expires_at=v.expires_at,
            owner_instance=v.owner_instance if v.state == "active" else None,
        )


class ResumableStartController(Controller):
    path = "/v1/collections/{name:str}/resumable-queries"
    tags = ["resumable queries"]

    @post("/", opt={"scope": "read"}, status_code=201)
    async def start(
        self,
        resumable: ResumableQueries,
        request: Request[Any, Any, Any],
        name: str,
        data: StartResumable,
    ) -> PageOut:
        page = await resumable.start(
            name,
            vector=data.vector,
            data=data.data,
            top_k=data.top_k,
            namespace=data.namespace,
            filter=data.filter,
            include=Include(data.include_vectors, data.include_metadata, data.include_data),
            max_idle=data.max_idle,
            api_key_id=key_id(request),
        )
        return PageOut.of(page)


class ResumableController(Controller):
    path = "/v1/resumable-queries/{handle:str}"
    tags = ["resumable queries"]

    @post("/next", opt={"scope": "read"}, status_code=200)
    async def next_batch(
        self,
        resumable: ResumableQueries,
        request: Request[Any, Any, Any],
        handle: str,
        data: NextBatch,
    ) -> PageOut:
        return PageOut.of(await resumable.next(handle, data.additional_k, key_id(request)))

    @get("/", opt={"scope": "read"})
    async def status(
        self, resumable: ResumableQueries, request: Request[Any, Any, Any], handle: str
    ) -> HandleStatus:
        return HandleStatus.of(await resumable.status(handle, key_id(request)))

    @delete("/", opt={"scope": "read"}, status_code=200)
    async def stop(
        self, resumable: ResumableQueries, request: Request[Any, Any, Any], handle: str
    ) -> HandleStatus:
        return HandleStatus.of(await resumable.stop(handle, key_id(request)))
