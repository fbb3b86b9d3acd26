"""The single mapping from errors to HTTP responses and one JSON error shape:
``{"error": {"code": str, "message": str, "detail": {...}}}``."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from pgpager.errors import PgpagerError

log = logging.getLogger(__name__)

INTERNAL_MESSAGE = "internal error; this is a bug, see the server log"


def error_body(code: str, message: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "detail": detail or {}}}


def retry_after(exc: PgpagerError) -> dict[str, str] | None:
    return None if exc.retry_after_s is None else {"Retry-After": str(exc.retry_after_s)}


def log_domain_error(request: Request[Any, Any, Any], exc: PgpagerError) -> None:
    if exc.status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc.message)


def domain_error(request: Request[Any, Any, Any], exc: PgpagerError) -> Response[Any]:
    log_domain_error(request, exc)
    return Response(
        error_body(exc.code, exc.message, exc.detail),
        status_code=exc.status,
        headers=retry_after(exc),
    )


def validation_message(exc: ValidationException) -> tuple[str, list[Any]]:
    """One sentence for what Litestar found wrong with a request, and the problems it listed."""
    problems = exc.extra if isinstance(exc.extra, list) else []
    parts = [
        str(p.get("message")) + (f" (at {p['key']})" if p.get("key") else "")
        for p in problems
        if isinstance(p, dict)
    ]
    return "; ".join(parts) or exc.detail or "the request is not valid", problems


def validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    message, problems = validation_message(exc)
    return Response(error_body("invalid_request", message, {"problems": problems}), status_code=422)


def http_message(request: Request[Any, Any, Any], exc: HTTPException) -> str:
    """What an error Litestar raised says to the caller: its own text, or for a body over the
    size limit, the limit and the setting behind it."""
    if isinstance(exc, RequestEntityTooLarge):
        limit = request.route_handler.resolve_request_max_body_size() or 0
        return (
            f"the request body is larger than {limit:,} bytes, the limit "
            "(PGPAGER_MAX_REQUEST_BYTES): send fewer vectors per request"
        )
    return str(exc.detail)


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    code = {
        404: "not_found",
        405: "method_not_allowed",
        401: "unauthorized",
        413: "request_too_large",
    }.get(exc.status_code, "http_error")
    return Response(
        error_body(code, http_message(request, exc)),
        status_code=exc.status_code,
        headers=exc.headers,
    )


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("%s %s: unexpected error", request.method, request.url.path)
    return Response(
        error_body("internal_error", INTERNAL_MESSAGE),
        status_code=500,
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    PgpagerError: domain_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
