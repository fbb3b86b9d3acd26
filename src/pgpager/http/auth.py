"""Bearer API keys with scopes. A guard reads the scope a route needs from its ``opt``."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from pgpager.errors import Forbidden, Unauthorized
from pgpager.settings import SCOPES, ApiKey


@dataclass(frozen=True)
class Principal:
    """Who is calling. ``key_id`` is None when the server runs without keys (loopback only)."""

    key_id: str | None
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


ANONYMOUS = Principal(key_id=None, scopes=frozenset(SCOPES))


def authenticate(keys: tuple[ApiKey, ...], authorization: str | None) -> Principal:
    if not keys:
        return ANONYMOUS
    if not authorization:
        raise Unauthorized()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("use 'Authorization: Bearer <token>'")
    token = token.strip()
    for key in keys:
        if hmac.compare_digest(key.token.encode(), token.encode()):
            return Principal(key_id=key.id, scopes=key.scopes)
    raise Unauthorized("unknown API key")


def auth_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    needed = handler.opt.get("scope")
    if needed is None:
        return
    principal = authenticate(connection.app.state.ctx.keys, connection.headers.get("authorization"))
    if not principal.allows(needed):
        raise Forbidden(f"this API key lacks the {needed!r} scope", scope=needed)
    connection.state.principal = principal
