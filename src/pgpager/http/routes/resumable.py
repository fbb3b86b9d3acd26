"""Resumable queries: start, next, status, stop (native API)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, post

from pgpager.http.auth import key_id
from pgpager.http.schemas import SearchHit, Strict
from pgpager.services.resumable import Page, ResumableQueries
from pgpager.store.search import Include
from pgpager.store.sessions import Session


class StartResumable(Strict):
    vector: list[float]
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

    @classmethod
    def of(cls, s: Session) -> HandleStatus:
        return cls(
            handle=s.id,
            collection=s.collection,
            namespace=s.namespace,
            state=s.state,
            state_reason=s.state_reason,
            phase=s.phase,
            position=s.position,
            top_k=int(s.query.get("top_k", 0)),
            filter=s.query.get("filter"),
            created_at=s.created_at,
            last_used_at=s.last_used_at,
            idle_seconds=round(s.idle_s, 3),
            max_idle=s.max_idle_s,
            expires_at=s.expires_at if s.state == "active" else None,
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
