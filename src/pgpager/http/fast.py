"""The hot path: a resumable ``next`` served before Litestar routes it.

A ``next`` is the call a client makes hundreds of times per handle, and Litestar's routing,
guard, dependency injection and response building cost about 0.13 ms of CPU per request here
(measured on a bare handler, the same shape, under uvicorn): a fifth of a ``next``'s server CPU.
``FastNext`` serves a well-formed, authorized ``POST /v1/resumable-queries/{handle}/next`` and
the Upstash API's ``POST /upstash/{index}/resumable-query-next`` (the SDK's ``fetch_next``)
directly: the same auth, the same body struct, the same service call, the same response.
Anything else it is not sure of (another path, an empty, oversized or invalid body, a refused
key) goes to Litestar unchanged, with the body replayed, so every error a request can get
before the service runs is Litestar's own. Errors of the call itself get their API's error
shape (``pgpager.http.errors``; Upstash's ``{"error", "status"}``). The Litestar routes stay:
they document the calls in OpenAPI and serve them when ``PGPAGER_HTTP_FAST_NEXT`` is false.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import msgspec

from pgpager.errors import PgpagerError
from pgpager.http.errors import INTERNAL_MESSAGE, error_body, retry_after
from pgpager.http.routes import upstash
from pgpager.http.routes.resumable import NextBatch, PageOut
from pgpager.services.resumable import Page

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A next body is a few bytes; a bigger one is left to Litestar (and its size limit).
MAX_BODY = 4096
_JSON = b"application/json"


@dataclass(frozen=True)
class NextRoute:
    """One API's ``next``: its path, its body, where the handle is, and its answer shapes."""

    path: re.Pattern[str]
    body: type[msgspec.Struct]
    handle: Callable[[re.Match[str], Any], str]
    page: Callable[[Page], Any]
    error: Callable[[PgpagerError], Any]
    internal: Any


NATIVE = NextRoute(
    path=re.compile(r"/v1/resumable-queries/([^/]+)/next"),
    body=NextBatch,
    handle=lambda found, body: found.group(1),
    page=PageOut.of,
    error=lambda exc: error_body(exc.code, exc.message, exc.detail),
    internal=error_body("internal_error", INTERNAL_MESSAGE),
)
UPSTASH = NextRoute(
    path=re.compile(r"/upstash/[^/]+/resumable-query-next"),
    body=upstash.NextBody,
    handle=lambda found, body: body.uuid,
    page=lambda page: upstash.Ok([upstash.QueryResult.of(h) for h in page.results]),
    error=lambda exc: upstash.error_body(exc.message, exc.status),
    internal=upstash.error_body(INTERNAL_MESSAGE, 500),
)
ROUTES = (NATIVE, UPSTASH)


class FastNext:
    """Serves ``next`` for the app whose ``state`` holds the runtime; ``fallback`` is the
    Litestar app's own ASGI entry (see the module docstring). Headers every response carries
    (X-Pgpager-Instance) are the app's to add, on this path as on Litestar's."""

    def __init__(self, fallback: ASGIApp, state: Any) -> None:
        self.app = fallback
        self.state = state
        self.encode = msgspec.json.Encoder().encode

    @staticmethod
    def claims(scope: Scope) -> tuple[NextRoute, re.Match[str]] | None:
        """The route of an HTTP ``next`` request and its path's match, None for any other."""
        if scope["method"] != "POST":
            return None
        for route in ROUTES:
            found = route.path.fullmatch(scope["path"])
            if found is not None:
                return route, found
        return None

    async def serve(
        self,
        claim: tuple[NextRoute, re.Match[str]],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        route, found = claim
        read: list[Message] = []
        body = b""
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                return await self._to_litestar(scope, read, receive, send)
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                return await self._to_litestar(scope, read, receive, send)
            if not message.get("more_body", False):
                break
        runtime: Any = getattr(self.state, "runtime", None)
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
        try:
            principal = runtime.auth.authenticate(authorization)
            principal.require("read")
            decoded: Any = msgspec.json.decode(body, type=route.body)
            handle = route.handle(found, decoded)
        except Exception:
            # No key, a wrong one, a body Litestar words its own way: its answer, not ours.
            return await self._to_litestar(scope, read, receive, send)
        try:
            page = await runtime.resumable.next(handle, decoded.additional_k, principal.key_id)
            payload = self.encode(route.page(page))
        except PgpagerError as exc:
            if exc.status >= 500:
                log.error("POST %s failed: %s", scope["path"], exc.message)
            headers = retry_after(exc) or {}
            extra = [(n.lower().encode(), v.encode()) for n, v in headers.items()]
            return await self._respond(send, exc.status, self.encode(route.error(exc)), extra)
        except Exception:
            log.exception("POST %s: unexpected error", scope["path"])
            return await self._respond(send, 500, self.encode(route.internal), [])
        await self._respond(send, 200, payload, [])

    async def _respond(
        self,
        send: Send,
        status: int,
        payload: bytes,
        extra: list[tuple[bytes, bytes]],
    ) -> None:
        head = [*extra, (b"content-type", _JSON), (b"content-length", b"%d" % len(payload))]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": payload})

    async def _to_litestar(
        self, scope: Scope, read: list[Message], receive: Receive, send: Send
    ) -> None:
        """Hand the request to Litestar with the messages already read replayed first."""
        pending = list(read)

        async def replay() -> Message:
            return pending.pop(0) if pending else await receive()

        await self.app(scope, replay, send)
