"""The guard: a route's ``opt["scope"]`` names the scope it needs (or a tuple of scopes, any of
which will do); the caller's principal is left in ``request.state.principal``."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from pgpager.services.auth import Principal


async def auth_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    # async: a plain function guard would be run in a worker thread on every request.
    runtime = connection.app.state.runtime
    needed = handler.opt.get("scope")
    if needed is None:
        # Open routes (/health, /metrics, /docs); the last two only while a setting says so.
        public = handler.opt.get("public_unless")
        if public is None or getattr(runtime.settings, public):
            return
        needed = "read"
    principal = runtime.auth.authenticate(connection.headers.get("authorization"))
    principal.require(*((needed,) if isinstance(needed, str) else needed))
    connection.state.principal = principal


def principal(request: Request[Any, Any, Any]) -> Principal:
    """Who made this request (set by the guard: only routes with a scope may ask)."""
    found: Principal = request.state.principal
    return found


def key_id(request: Request[Any, Any, Any]) -> str | None:
    """The API key of this request, which owns the handles it opens (None without keys)."""
    return principal(request).key_id
