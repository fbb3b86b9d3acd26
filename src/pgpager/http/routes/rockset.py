"""Rockset's query API at /v1/orgs/self/queries, as the official ``rockset`` client calls it.

Stored queries underneath (services/stored_queries.py), spoken in Rockset's terms: the request
body of ``Queries.query`` (named parameters, ``async``, ``async_options``,
``sql.default_row_limit``, ...), the fields its models read (``status``, ``executed_by``,
``submitted_at``, ``pagination.next_page_link``, ``query_errors``, ...) next to the seed's
(``state``, ``run_by``), the list of *active* queries, ``DELETE`` as ``cancel_query``, and
Rockset's flat error body (``{"message", "type", ...}``), so the client raises its own
exceptions with the message. The native API is /v1/queries (routes/queries.py).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, Response, Router, delete, get, post
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import Parameter

from pgpager.errors import PgpagerError
from pgpager.http.auth import principal
from pgpager.http.errors import (
    INTERNAL_MESSAGE,
    http_message,
    log_domain_error,
    retry_after,
    validation_message,
)
from pgpager.http.routes.queries import VectorSearchBody, query_spec
from pgpager.http.schemas import Strict
from pgpager.services import stored_queries as service
from pgpager.services.stored_queries import StoredQueries
from pgpager.store.stored import StoredQuery

log = logging.getLogger(__name__)

PREFIX = "/v1/orgs/self"

STATUS = {"FAILED": "ERROR"}
"""pgpager's states that Rockset names otherwise (QUEUED, RUNNING, COMPLETED, CANCELLED are
the same)."""


# --- bodies -----------------------------------------------------------------------------------
class Sql(Strict):
    query: str
    parameters: list[Any] | None = None
    """Rockset's named parameters, ``{"name", "type", "value"}`` (bound where the text says
    ``:name``), or plain values bound to ``$1``, ``$2``, ..."""
    default_row_limit: Annotated[int, msgspec.Meta(ge=1)] | None = None
    initial_paginate_response_doc_count: (
        Annotated[int, msgspec.Meta(ge=0, le=service.MAX_INITIAL_RESULTS)] | None
    ) = None
    # Accepted for older Rockset clients; pagination is always on here.
    paginate: bool | None = None
    generate_warnings: bool | None = None
    profiling_enabled: bool | None = None


class AsyncOptions(Strict):
    client_timeout_ms: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """How long the request waits for the query: finished by then, it answers as a sync
    query; otherwise with the query id (status QUEUED or RUNNING)."""
    timeout_ms: Annotated[int, msgspec.Meta(ge=1)] | None = None
    max_initial_results: (
        Annotated[int, msgspec.Meta(ge=0, le=service.MAX_INITIAL_RESULTS)] | None
    ) = None


class RunQuery(Strict):
    sql: Sql | None = None
    vector_search: VectorSearchBody | None = None
    """pgpager's own: a stored vector search, paged like a SQL query's rows."""
    run_async: bool | None = msgspec.field(default=None, name="async")
    async_options: AsyncOptions | None = None
    max_initial_results: (
        Annotated[int, msgspec.Meta(ge=0, le=service.MAX_INITIAL_RESULTS)] | None
    ) = None
    timeout_ms: Annotated[int, msgspec.Meta(ge=1)] | None = None
    debug_threshold_ms: int | None = None
    """Accepted and ignored (Rockset kept a query profile past it)."""


# --- responses --------------------------------------------------------------------------------
class ResponseStats(msgspec.Struct):
    elapsed_time_ms: int
    throttled_time_micros: int
    doc_count: int | None
    size_bytes: int | None


class Pagination(msgspec.Struct):
    current_page_doc_count: int
    next_cursor_offset: int
    next_cursor: str | None
    next_page_link: str | None
    start_cursor: str | None = None


class QueryError(msgspec.Struct):
    type: str
    message: str
    status_code: int


class QueryResponse(msgspec.Struct, omit_defaults=True):
    """Rockset's QueryResponse; a field without a value is left out (the client's model
    refuses a null there)."""

    query_id: str
    status: str
    state: str
    collections: list[str]
    results: msgspec.Raw | None = None
    results_total_doc_count: int | None = None
    pagination: Pagination | None = None
    stats: ResponseStats | None = None
    query_errors: list[QueryError] | None = None


class InfoStats(msgspec.Struct):
    elapsed_time_ms: int | None
    throttled_time_ms: int
    result_set_document_count: int | None
    result_set_bytes_size: int | None
    doc_count: int | None
    size_bytes: int | None


class InfoPagination(msgspec.Struct):
    start_cursor: str | None


class QueryInfo(msgspec.Struct):
    """Rockset's QueryInfo, with the seed's names beside it (state, run_by, run_at)."""

    query_id: str
    status: str
    state: str
    kind: str
    sql: str | None
    executed_by: str | None
    run_by: str | None
    submitted_at: dt.datetime
    run_at: dt.datetime | None
    finished_at: dt.datetime | None
    expires_at: dt.datetime
    error: str | None
    query_errors: list[QueryError] | None
    stats: InfoStats
    results_total_doc_count: int | None
    pagination: InfoPagination

    @classmethod
    def of(cls, q: StoredQuery) -> QueryInfo:
        return cls(
            query_id=q.query_id,
            status=STATUS.get(q.state, q.state),
            state=q.state,
            kind=q.kind,
            sql=q.sql_text,
            executed_by=q.api_key_id,
            run_by=q.api_key_id,
            submitted_at=q.created_at,
            run_at=q.started_at,
            finished_at=q.finished_at,
            expires_at=q.expires_at,
            error=q.error,
            query_errors=_query_errors(q),
            stats=InfoStats(
                elapsed_time_ms=q.elapsed_time_ms,
                throttled_time_ms=0,
                result_set_document_count=q.doc_count,
                result_set_bytes_size=q.size_bytes,
                doc_count=q.doc_count,
                size_bytes=q.size_bytes,
            ),
            results_total_doc_count=q.results_total_doc_count,
            pagination=InfoPagination(start_cursor=None),
        )


class QueryInfoOut(msgspec.Struct):
    data: QueryInfo


class QueryList(msgspec.Struct):
    data: list[QueryInfo]


class PageOut(msgspec.Struct):
    results: msgspec.Raw
    results_total_doc_count: int
    pagination: Pagination


def _query_errors(q: StoredQuery) -> list[QueryError] | None:
    if q.state == "FAILED":
        return [QueryError("QUERY_ERROR", q.error or "the query failed", 400)]
    if q.state == "CANCELLED":
        return [QueryError("QUERY_CANCELLED", q.error or "the query was cancelled", 400)]
    return None


def _page_link(
    request: Request[Any, Any, Any], query_id: str, cursor: str | None, docs: int
) -> str | None:
    if cursor is None:
        return None
    base = str(request.base_url).rstrip("/")
    return f"{base}{PREFIX}/queries/{query_id}/pages?" + urlencode({"cursor": cursor, "docs": docs})


# --- routes -----------------------------------------------------------------------------------
class RocksetQueries(Controller):
    path = "/queries"
    tags = ["stored queries (Rockset)"]
    opt = {"scope": ("read", "sql")}

    @post("/", status_code=200)
    async def query(
        self, stored: StoredQueries, request: Request[Any, Any, Any], data: RunQuery
    ) -> QueryResponse:
        sql = data.sql
        spec = query_spec(
            None
            if sql is None
            else service.SqlQuery(sql.query, sql.parameters or [], sql.default_row_limit),
            data.vector_search,
        )
        run_async = bool(data.run_async)
        options = data.async_options or AsyncOptions()
        initial = _first_given(
            options.max_initial_results if run_async else None,
            data.max_initial_results,
            data.sql.initial_paginate_response_doc_count if data.sql else None,
            service.DEFAULT_DOCS,
        )
        started = await stored.run(
            principal(request),
            spec,
            max_initial_results=initial,
            run_async=run_async,
            timeout_ms=options.timeout_ms if run_async else data.timeout_ms,
            client_timeout_ms=options.client_timeout_ms if run_async else None,
        )
        q = started.query
        collections = [spec.collection] if isinstance(spec, service.VectorSearch) else []
        if q.state != "COMPLETED":
            return QueryResponse(
                query_id=q.query_id,
                status=STATUS.get(q.state, q.state),
                state=q.state,
                collections=collections,
            )
        return QueryResponse(
            query_id=q.query_id,
            status=q.state,
            state=q.state,
            collections=collections,
            results=msgspec.Raw(started.page.results),
            results_total_doc_count=q.results_total_doc_count or 0,
            pagination=Pagination(
                current_page_doc_count=started.page.count,
                next_cursor_offset=started.page.count,
                next_cursor=started.next_cursor,
                next_page_link=_page_link(
                    request, q.query_id, started.next_cursor, initial or service.DEFAULT_DOCS
                ),
                start_cursor=None,
            ),
            stats=ResponseStats(
                elapsed_time_ms=q.elapsed_time_ms or 0,
                throttled_time_micros=0,
                doc_count=q.doc_count,
                size_bytes=q.size_bytes,
            ),
            query_errors=[],
        )

    @get("/")
    async def list_active_queries(
        self, stored: StoredQueries, request: Request[Any, Any, Any]
    ) -> QueryList:
        """The caller's queries still QUEUED or RUNNING, newest first."""
        found = await stored.list_queries(principal(request), limit=1000, active=True)
        return QueryList([QueryInfo.of(q) for q in found])

    @get("/{query_id:str}")
    async def get_query(
        self, stored: StoredQueries, request: Request[Any, Any, Any], query_id: str
    ) -> QueryInfoOut:
        return QueryInfoOut(QueryInfo.of(await stored.status(principal(request), query_id)))

    @get("/{query_id:str}/pages")
    async def get_query_results(
        self,
        stored: StoredQueries,
        request: Request[Any, Any, Any],
        query_id: str,
        cursor: str | None = None,
        docs: Annotated[int, Parameter(ge=1, le=service.MAX_DOCS)] = service.DEFAULT_DOCS,
        offset: Annotated[int, Parameter(ge=0, le=service.MAX_OFFSET)] = 0,
    ) -> PageOut:
        p = await stored.page(principal(request), query_id, cursor=cursor, docs=docs, offset=offset)
        return PageOut(
            results=msgspec.Raw(p.page.results),
            results_total_doc_count=p.total,
            pagination=Pagination(
                current_page_doc_count=p.page.count,
                next_cursor_offset=p.next_cursor_offset,
                next_cursor=p.next_cursor,
                next_page_link=_page_link(request, query_id, p.next_cursor, docs),
                start_cursor=cursor,
            ),
        )

    @delete("/{query_id:str}", status_code=200)
    async def cancel_query(
        self, stored: StoredQueries, request: Request[Any, Any, Any], query_id: str
    ) -> QueryInfoOut:
        """Cancel a QUEUED or RUNNING query (it stays, CANCELLED, until it expires); a query
        that has ended is left as it is."""
        q = await stored.cancel_query(principal(request), query_id)
        return QueryInfoOut(QueryInfo.of(q))


def _first_given(*values: int | None) -> int:
    for v in values:
        if v is not None:
            return v
    raise AssertionError("the last value is a default")


# --- errors: Rockset's flat body --------------------------------------------------------------
TYPES = {
    "query_failed": "QUERY_ERROR",
    "query_timeout": "QUERY_TIMEOUT",
    "query_not_ready": "NOT_READY",
    "query_cancelled": "QUERY_CANCELLED",
    "query_expired": "NOTFOUND",
    "database_unavailable": "SERVICEUNAVAILABLE",
    "sql_unavailable": "SERVICEUNAVAILABLE",
}
BY_STATUS = {
    400: "INVALIDINPUT",
    401: "AUTHEXCEPTION",
    403: "FORBIDDEN",
    404: "NOTFOUND",
    405: "METHODNOTALLOWED",
    408: "QUERY_TIMEOUT",
    409: "CONFLICT",
    410: "NOTFOUND",
    413: "CONTENTTOOLARGE",
    415: "UNSUPPORTEDMEDIATYPE",
    429: "RATELIMITEXCEEDED",
    503: "SERVICEUNAVAILABLE",
}


def error(
    message: str,
    status: int,
    *,
    code: str | None = None,
    detail: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    """Rockset's ErrorModel. Rockset answered a request it could not take with 400, so a
    request pgpager's native API answers with 422 answers 400 here."""
    status = 400 if status == 422 else status
    detail = detail or {}
    body: dict[str, Any] = {
        "message": message,
        "type": TYPES.get(code or "", BY_STATUS.get(status, "INTERNALERROR")),
        "code": code or "error",
    }
    for key in ("line", "column", "query_id"):
        if key in detail:
            body[key] = detail[key]
    if detail:
        body["detail"] = detail
    return Response(body, status_code=status, headers=headers)


def domain_error(request: Request[Any, Any, Any], exc: PgpagerError) -> Response[Any]:
    log_domain_error(request, exc)
    return error(
        exc.message, exc.status, code=exc.code, detail=exc.detail, headers=retry_after(exc)
    )


def validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    message, problems = validation_message(exc)
    return error(message, 400, code="invalid_request", detail={"problems": problems})


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    code = "request_too_large" if exc.status_code == 413 else None
    return error(http_message(request, exc), exc.status_code, code=code, headers=exc.headers)


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("%s %s: unexpected error", request.method, request.url.path)
    return error(INTERNAL_MESSAGE, 500, code="internal_error")


ROUTES = [
    Router(
        path=PREFIX,
        route_handlers=[RocksetQueries],
        exception_handlers={
            PgpagerError: domain_error,
            ValidationException: validation_error,
            HTTPException: http_error,
            Exception: unexpected_error,
        },
    )
]
