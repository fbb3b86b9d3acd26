"""Stored queries (Rockset style), pgpager's native API: /v1/queries (Rockset's own paths and
shapes, /v1/orgs/self/queries, are in routes/rockset.py).

POST runs a SQL query or a vector search once and keeps its rows; GET .../pages reads them by
cursor and/or offset; GET shows the state; DELETE stops and removes a query.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Router, delete, get, post
from litestar.params import Parameter

from pgpager.errors import InvalidRequest
from pgpager.http.auth import principal
from pgpager.http.schemas import Strict
from pgpager.services import stored_queries as service
from pgpager.services.stored_queries import StoredQueries
from pgpager.store.stored import StoredQuery


# --- bodies -----------------------------------------------------------------------------------
class SqlBody(Strict):
    query: str
    parameters: list[Any] = msgspec.field(default_factory=list)
    """Bound positionally: the first to $1, the second to $2, ..."""


class VectorSearchBody(Strict):
    """The query is ``vector``, or ``data``: text, embedded with the collection's model."""

    collection: str
    vector: list[float] | None = None
    data: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1)] = 10
    filter: str | None = None
    namespace: str | None = None
    include_vectors: bool = False
    include_metadata: bool = False
    include_data: bool = False


class RunQuery(Strict):
    sql: SqlBody | None = None
    vector_search: VectorSearchBody | None = None
    max_initial_results: Annotated[int, msgspec.Meta(ge=0, le=service.MAX_INITIAL_RESULTS)] = (
        service.DEFAULT_DOCS
    )
    run_async: bool = msgspec.field(default=False, name="async")
    timeout_ms: Annotated[int, msgspec.Meta(ge=1)] | None = None


class Stats(msgspec.Struct):
    elapsed_time_ms: int | None
    doc_count: int | None
    size_bytes: int | None


class StartPagination(msgspec.Struct):
    current_page_doc_count: int
    start_cursor: str | None
    next_cursor: str | None


class QueryStarted(msgspec.Struct):
    query_id: str
    state: str
    results: msgspec.Raw
    results_total_doc_count: int | None
    pagination: StartPagination
    stats: Stats


class PagePagination(msgspec.Struct):
    current_page_doc_count: int
    next_cursor_offset: int
    next_cursor: str | None


class QueryPage(msgspec.Struct):
    results: msgspec.Raw
    results_total_doc_count: int
    pagination: PagePagination


class QueryInfo(msgspec.Struct):
    query_id: str
    kind: str
    state: str
    error: str | None
    run_by: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    expires_at: dt.datetime
    stats: Stats
    results_total_doc_count: int | None

    @classmethod
    def of(cls, q: StoredQuery) -> QueryInfo:
        return cls(
            query_id=q.query_id,
            kind=q.kind,
            state=q.state,
            error=q.error,
            run_by=q.api_key_id,
            created_at=q.created_at,
            started_at=q.started_at,
            finished_at=q.finished_at,
            expires_at=q.expires_at,
            stats=Stats(q.elapsed_time_ms, q.doc_count, q.size_bytes),
            results_total_doc_count=q.results_total_doc_count,
        )


class QueryInfoOut(msgspec.Struct):
    data: QueryInfo


class QueryList(msgspec.Struct):
    data: list[QueryInfo]


def query_spec(
    sql: service.SqlQuery | None, vector_search: VectorSearchBody | None
) -> service.SqlQuery | service.VectorSearch:
    """Exactly one of the two kinds of stored query a body may ask for."""
    if (sql is None) == (vector_search is None):
        raise InvalidRequest("give exactly one of sql or vector_search", field="sql")
    if sql is not None:
        return sql
    assert vector_search is not None
    return service.VectorSearch(**msgspec.structs.asdict(vector_search))


# --- routes -----------------------------------------------------------------------------------
class QueriesController(Controller):
    path = "/queries"
    tags = ["stored queries"]
    # Any key with read or sql may use stored queries; the service checks the kind.
    opt = {"scope": ("read", "sql")}

    @post("/", status_code=200)
    async def run(
        self, stored: StoredQueries, request: Request[Any, Any, Any], data: RunQuery
    ) -> QueryStarted:
        sql = None if data.sql is None else service.SqlQuery(data.sql.query, data.sql.parameters)
        spec = query_spec(sql, data.vector_search)
        started = await stored.run(
            principal(request),
            spec,
            max_initial_results=data.max_initial_results,
            run_async=data.run_async,
            timeout_ms=data.timeout_ms,
        )
        q = started.query
        return QueryStarted(
            query_id=q.query_id,
            state=q.state,
            results=msgspec.Raw(started.page.results),
            results_total_doc_count=q.results_total_doc_count,
            pagination=StartPagination(
                current_page_doc_count=started.page.count,
                start_cursor=None,
                next_cursor=started.next_cursor,
            ),
            stats=Stats(q.elapsed_time_ms, q.doc_count, q.size_bytes),
        )

    @get("/")
    async def list_queries(
        self,
        stored: StoredQueries,
        request: Request[Any, Any, Any],
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> QueryList:
        found = await stored.list_queries(principal(request), limit=limit)
        return QueryList([QueryInfo.of(q) for q in found])

    @get("/{query_id:str}")
    async def status(
        self, stored: StoredQueries, request: Request[Any, Any, Any], query_id: str
    ) -> QueryInfoOut:
        q = await stored.status(principal(request), query_id)
        return QueryInfoOut(QueryInfo.of(q))

    @get("/{query_id:str}/pages")
    async def pages(
        self,
        stored: StoredQueries,
        request: Request[Any, Any, Any],
        query_id: str,
        cursor: str | None = None,
        docs: Annotated[int, Parameter(ge=1, le=service.MAX_DOCS)] = service.DEFAULT_DOCS,
        offset: Annotated[int, Parameter(ge=0, le=service.MAX_OFFSET)] = 0,
    ) -> QueryPage:
        p = await stored.page(
            principal(request),
            query_id,
            cursor=cursor,
            docs=docs,
            offset=offset,
        )
        return QueryPage(
            results=msgspec.Raw(p.page.results),
            results_total_doc_count=p.total,
            pagination=PagePagination(
                current_page_doc_count=p.page.count,
                next_cursor_offset=p.next_cursor_offset,
                next_cursor=p.next_cursor,
            ),
        )

    @delete("/{query_id:str}", status_code=200)
    async def remove(
        self, stored: StoredQueries, request: Request[Any, Any, Any], query_id: str
    ) -> QueryInfoOut:
        q = await stored.delete(principal(request), query_id)
        return QueryInfoOut(QueryInfo.of(q))


ROUTES = [Router(path="/v1", route_handlers=[QueriesController])]
"""The seed's paths (Rockset's API, /v1/orgs/self/queries) are in routes/rockset.py."""
