"""Who is calling: bearer API keys resolved to a principal with scopes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from pgpager.errors import Forbidden, Unauthorized
from pgpager.settings import SCOPES, ApiKey


@dataclass(frozen=True)
class Principal:
    """A caller. ``key_id`` is None for the anonymous caller of a server without keys, and for
    an operator (the CLI): both see every key's handles and queries."""

    key_id: str | None
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def require(self, *scopes: str) -> None:
        """Raise ``Forbidden`` unless the principal has one of ``scopes``."""
        if not any(self.allows(s) for s in scopes):
            needed = " or ".join(repr(s) for s in scopes)
            raise Forbidden(f"this API key lacks the {needed} scope", scope=scopes[0])


ANONYMOUS = Principal(key_id=None, scopes=frozenset(SCOPES))
OPERATOR = ANONYMOUS


SCHEMES = ("bearer", "apikey")


class Auth:
    """Resolves ``Authorization`` headers against the configured keys."""

    def __init__(self, keys: tuple[ApiKey, ...]) -> None:
        self.keys = keys

    def authenticate(self, authorization: str | None) -> Principal:
        if not self.keys:
            return ANONYMOUS
        if not authorization:
            raise Unauthorized()
        scheme, _, token = authorization.strip().partition(" ")
        # ApiKey is Rockset's scheme (its client and curl examples send it).
        if scheme.lower() not in SCHEMES or not token.strip():
            raise Unauthorized("use 'Authorization: Bearer <token>' (or 'ApiKey <token>')")
        given = token.strip().encode()
        for key in self.keys:
            if hmac.compare_digest(key.token.encode(), given):
                return Principal(key_id=key.id, scopes=key.scopes)
        raise Unauthorized("unknown API key")
