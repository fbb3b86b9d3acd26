"""The error side of the OpenAPI document: every status an operation answers besides success,
with the body it really sends. Litestar only takes extra responses per route handler, so they
are listed here in one table and set on the handlers when the app is built;
``tests/test_api_fuzz.py`` fails when a route answers a status this table does not list."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.routes import HTTPRoute

from pgpager.errors import PgpagerError


class ErrorInfo(msgspec.Struct):
    code: str
    message: str
    detail: dict[str, Any]


class ErrorBody(msgspec.Struct):
    """The native API's error shape, as ``errors.error_body`` builds it."""

    error: ErrorInfo


class RocksetErrorBody(msgspec.Struct, omit_defaults=True):
    """Rockset's error shape (the ``rockset`` client raises its exceptions with it): ``type``
    is Rockset's error type, ``code`` pgpager's; ``line``, ``column`` and ``query_id`` where
    they apply."""

    message: str
    type: str
    code: str
    line: int | None = None
    column: int | None = None
    query_id: str | None = None
    detail: dict[str, Any] | None = None


class UpstashErrorBody(msgspec.Struct):
    """The Upstash-compatible API's error shape (the SDK raises ``UpstashError(error)``)."""

    error: str
    status: int


# Statuses every operation of a kind can answer.
KEYED = (401, 403)  # a missing or unknown key; a key without the scope
BODY = (400, 413, 422)  # malformed JSON; over PGPAGER_MAX_REQUEST_BYTES; a body that is not valid
QUERY = (422,)  # a query parameter of the wrong type or out of range

STORED = "/v1/queries"
SELF_STORED = "/v1/orgs/self/queries"
UPSTASH = "/upstash/{collection}"

_OWN_STATUSES: dict[str, tuple[int, ...]] = {
    # 503: the database is unreachable (body: the health report, not an error).
    "GET /health": (503,),
    # 401: with API keys configured and PGPAGER_PUBLIC_METRICS=false.
    "GET /metrics": (401,),
    "GET /v1/whoami": KEYED,
    "GET /v1/admin/handles": (*KEYED, *QUERY),
    "DELETE /v1/admin/handles/{handle}": (*KEYED, 404),
    "GET /v1/collections": KEYED,
    "GET /v1/models": KEYED,
    "POST /v1/collections": (*KEYED, *BODY, 409),
    "GET /v1/collections/{name}": (*KEYED, 404),
    "DELETE /v1/collections/{name}": (*KEYED, 404, 409),
    "POST /v1/collections/{name}/vectors": (*KEYED, *BODY, 404),
    "POST /v1/collections/{name}/vectors/fetch": (*KEYED, *BODY, 404),
    "POST /v1/collections/{name}/vectors/delete": (*KEYED, *BODY, 404),
    "GET /v1/collections/{name}/vectors/{vector_id}": (*KEYED, *QUERY, 404),
    "POST /v1/collections/{name}/search": (*KEYED, *BODY, 404),
    "GET /v1/collections/{name}/objects": (*KEYED, *QUERY, 404),
    "POST /v1/collections/{name}/resumable-queries": (*KEYED, *BODY, 404, 429),
    "POST /v1/resumable-queries/{handle}/next": (*KEYED, *BODY, 404, 410),
    "GET /v1/resumable-queries/{handle}": (*KEYED, 404),
    "DELETE /v1/resumable-queries/{handle}": (*KEYED, 404, 410),
    # Stored queries: 408 the query ran past its time limit, 503 the reader role cannot log in,
    # 409 the query has not finished, 410 its results expired (or it was cancelled).
    **{
        f"{method} {STORED}{path}": statuses
        for method, path, statuses in (
            ("POST", "", (*KEYED, *BODY, 404, 408, 410, 503)),
            ("GET", "", (*KEYED, *QUERY)),
            ("GET", "/{query_id}", (*KEYED, 404, 410)),
            ("GET", "/{query_id}/pages", (*KEYED, *BODY, 404, 409, 410)),
            ("DELETE", "/{query_id}", (*KEYED, 404)),
        )
    },
    # Rockset's paths answer 400 where the native API answers 422 (as Rockset did).
    **{
        f"{method} {SELF_STORED}{path}": statuses
        for method, path, statuses in (
            ("POST", "", (*KEYED, 400, 404, 408, 410, 413, 503)),
            ("GET", "", KEYED),
            ("GET", "/{query_id}", (*KEYED, 404, 410)),
            ("GET", "/{query_id}/pages", (*KEYED, 400, 404, 409, 410)),
            ("DELETE", "/{query_id}", (*KEYED, 404)),
        )
    },
    # Upstash-compatible: each operation on the default namespace and on a named one.
    **{
        f"{method} {UPSTASH}/{operation}{suffix}": statuses
        for operation, methods, statuses in (
            ("upsert", ("POST",), (*KEYED, *BODY, 404)),
            ("upsert-data", ("POST",), (*KEYED, *BODY, 404)),
            ("update", ("POST",), (*KEYED, *BODY, 404)),
            ("query", ("POST",), (*KEYED, *BODY, 404)),
            ("query-data", ("POST",), (*KEYED, *BODY, 404)),
            ("resumable-query", ("POST",), (*KEYED, *BODY, 404, 429)),
            ("resumable-query-data", ("POST",), (*KEYED, *BODY, 404, 429)),
            ("fetch", ("POST",), (*KEYED, *BODY, 404)),
            ("range", ("POST",), (*KEYED, *BODY, 404)),
            ("delete", ("POST", "DELETE"), (*KEYED, *BODY, 404)),
            ("reset", ("POST", "DELETE"), (*KEYED, 404, 422)),
            ("delete-namespace", ("POST", "DELETE"), (*KEYED, 404, 422)),
        )
        for method in methods
        for suffix in ("", "/{namespace}")
    },
    f"POST {UPSTASH}/resumable-query-next": (*KEYED, *BODY, 404, 410),
    f"POST {UPSTASH}/resumable-query-end": (*KEYED, *BODY, 404, 410),
    **{f"{method} {UPSTASH}/info": (*KEYED, 404) for method in ("GET", "POST")},
    **{f"{method} {UPSTASH}/list-namespaces": (*KEYED, 404) for method in ("GET", "POST")},
}


def _with_common(key: str, statuses: tuple[int, ...]) -> tuple[int, ...]:
    """What every operation that reads the database can answer besides its own: 503 while
    PostgreSQL is unreachable (with Retry-After), and, where the path has a parameter, 422 for
    a value PostgreSQL refuses (a NUL character)."""
    if key in ("GET /health", "GET /metrics"):
        return statuses
    invalid = 400 if SELF_STORED in key else 422
    common = {503} | ({invalid} if "{" in key else set())
    return tuple(sorted(set(statuses) | common))


STATUSES = {key: _with_common(key, statuses) for key, statuses in _OWN_STATUSES.items()}
"""``"METHOD /path/{param}"`` -> the error statuses it answers. Every documented operation has
an entry (a test checks), so a new route is a reminder to say how it fails."""


HTTP_LAYER_CODES = {400: "http_error", 413: "request_too_large", 422: "invalid_request"}
"""Codes ``errors.http_error`` and ``errors.validation_error`` send for Litestar's exceptions."""


def _codes(status: int) -> list[str]:
    """The error codes the native API sends with ``status``."""
    codes = {HTTP_LAYER_CODES[status]} if status in HTTP_LAYER_CODES else set()
    pending: list[type[PgpagerError]] = [PgpagerError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.status == status:
            codes.add(cls.code)
    return sorted(codes)


HEALTH_DOWN = ResponseSpec(
    data_container=dict[str, str],
    description="the database is unreachable; the body is the health report",
    generate_examples=False,
)


def _spec(key: str, status: int) -> ResponseSpec:
    if key == "GET /health":
        return HEALTH_DOWN
    if key.split(" ", 1)[1].startswith("/upstash/"):
        return ResponseSpec(UpstashErrorBody, description="error", generate_examples=False)
    if key.split(" ", 1)[1].startswith(SELF_STORED):
        return ResponseSpec(RocksetErrorBody, description="error", generate_examples=False)
    return ResponseSpec(
        ErrorBody,
        description="error; its code is one of " + ", ".join(_codes(status)),
        generate_examples=False,
    )


def _template(path: str) -> str:
    """``/v1/collections/{name:str}`` -> ``/v1/collections/{name}``, as the document spells it."""
    return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", path)


def document_errors(app: Litestar) -> None:
    """Give each operation of the document the error responses STATUSES lists, and only those.

    Litestar takes extra responses per route handler and builds the document on first use, so
    the handlers get theirs first (a handler serving several paths or methods gets the union),
    then the document is built and Litestar's own 400 is dropped where STATUSES does not list
    one: it stands for a ValidationException, which this app answers with 422 and its own body.
    """
    found: dict[int, tuple[HTTPRouteHandler, dict[int, ResponseSpec]]] = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                key = f"{method} {_template(route.path)}"
                responses = found.setdefault(id(handler), (handler, {}))[1]
                for status in STATUSES.get(key, ()):
                    responses[status] = _spec(key, status)
    for handler, responses in found.values():
        if responses:
            handler.responses = {**dict(sorted(responses.items())), **(handler.responses or {})}
    for path, item in (app.openapi_schema.paths or {}).items():
        for verb in ("get", "put", "post", "delete", "patch"):
            operation = getattr(item, verb, None)
            if operation is None or operation.responses is None:
                continue
            if 400 not in STATUSES.get(f"{verb.upper()} {path}", ()):
                operation.responses.pop("400", None)
