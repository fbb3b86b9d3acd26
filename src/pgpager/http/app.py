"""The Litestar application: routes, the runtime's services injected into them, one error
mapping, and a lifespan that opens the runtime and closes it again."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from litestar import Litestar, Request, Response, Router
from litestar.datastructures import ResponseHeader, State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.routes import HTTPRoute

from pgpager import __version__
from pgpager.http.auth import auth_guard
from pgpager.http.errors import EXCEPTION_HANDLERS
from pgpager.http.fast import FastNext
from pgpager.http.openapi import document_errors
from pgpager.http.request import StrictRequest
from pgpager.http.routes.admin import AdminHandlesController, whoami
from pgpager.http.routes.collections import CollectionsController, list_models
from pgpager.http.routes.queries import ROUTES as QUERY_ROUTES
from pgpager.http.routes.resumable import ResumableController, ResumableStartController
from pgpager.http.routes.rockset import ROUTES as ROCKSET_ROUTES
from pgpager.http.routes.search import SearchController
from pgpager.http.routes.system import health, metrics
from pgpager.http.routes.upstash import upstash_router
from pgpager.http.routes.vectors import VectorsController
from pgpager.http.static import docs_plugins, static_routers
from pgpager.runtime import Runtime
from pgpager.settings import Settings

# The runtime's parts a route may ask for by parameter name.
SERVICES = (
    "collections",
    "vectors",
    "offset_pages",
    "upstash",
    "resumable",
    "stored",
    "admin",
    "embedder",
    "replicas",
)

INSTANCE_HEADER = "X-Pgpager-Instance"
"""On every response: the server instance that answered. A resumable query's cursor lives on
the instance that last served the handle, so a load balancer can keep a handle there (see
docs/scaling.md)."""

log = logging.getLogger(__name__)


def _provider(name: str) -> Provide:
    def provide(state: State) -> Any:
        return getattr(state.runtime, name)

    return Provide(provide, sync_to_thread=False)


class App(Litestar):
    """The Litestar app, with ``next`` served ahead of its routing (``pgpager.http.fast``),
    and ``X-Pgpager-Instance`` on every HTTP response, errors included (Litestar adds an
    app's response headers only to what a route handler returns; a load balancer keeping a
    handle on one instance needs it on a 404 or a 503 as much)."""

    fast_next: FastNext | None = None
    instance_header: tuple[bytes, bytes] = (b"x-pgpager-instance", b"")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        send = partial(self._send_with_instance, send)
        fast = self.fast_next
        if fast is not None:
            claim = fast.claims(scope)
            if claim is not None:
                return await fast.serve(claim, scope, receive, send)
        await super().__call__(scope, receive, send)

    async def _send_with_instance(self, send: Any, message: Any) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", ()), self.instance_header]
            message = {**message, "headers": headers}
        await send(message)


def freeze_startup_heap() -> None:
    """Collect, then freeze what is left: the modules, the app and the runtime that start-up
    made (about 137,000 objects) are never garbage, and every full collection walked them all.
    Under 32 clients calling ``next`` that was 60-125 ms per full collection, five or six in
    eight seconds, each one a pause for every request; frozen, the same collections took at
    most 7 ms (p99 at 32 clients 108-140 -> 41-46 ms, measured side by side)."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("froze %d start-up objects out of the garbage collector's view", frozen)


def create_app(settings: Settings, database_url: str, *, freeze_heap: bool = False) -> App:
    """The HTTP app. ``freeze_heap`` (``pgpager serve``, which owns its process) moves what
    start-up made out of the garbage collector's view once the runtime is open: see
    ``freeze_startup_heap``."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with Runtime.open(settings, database_url, serve=True) as runtime:
            app.state.runtime = runtime
            if freeze_heap:
                freeze_startup_heap()
            yield

    allowed: dict[str, str] = {}  # path template -> its methods, filled once the app is built
    app = App(
        route_handlers=[
            CollectionsController,
            list_models,
            VectorsController,
            ResumableStartController,
            ResumableController,
            SearchController,
            upstash_router,
            health,
            metrics,
            *QUERY_ROUTES,
            *ROCKSET_ROUTES,
            whoami,
            AdminHandlesController,
            *static_routers(),
        ],
        lifespan=[lifespan],
        dependencies={name: _provider(name) for name in SERVICES},
        guards=[auth_guard],
        response_headers=[
            # Set by App on every response; here for the OpenAPI document only (Litestar
            # resolves a handler's headers once, so two apps in one process shared a value).
            ResponseHeader(
                name=INSTANCE_HEADER,
                documentation_only=True,
                description="The pgpager instance that answered (PGPAGER_INSTANCE_ID).",
            )
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=StrictRequest,
        request_max_body_size=settings.max_request_bytes,
        before_request=_options_answer(allowed),
        # Litestar's default logging config takes over the root logger (its own format, INFO
        # for every library); pgpager.logs configures logging once for the whole process.
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="pgpager",
            version=__version__,
            description="Pagination server for vector search on PostgreSQL + pgvector.",
            path="/docs",
            # Open unless PGPAGER_PUBLIC_DOCS=false (then a read key is needed, see auth_guard).
            openapi_router=Router(
                path="/docs",
                route_handlers=[],
                opt={"public_unless": "public_docs"},
                include_in_schema=False,
            ),
            render_plugins=docs_plugins(),
        ),
        debug=False,
    )
    document_errors(app)
    app.instance_header = (INSTANCE_HEADER.lower().encode(), settings.instance_id.encode())
    if settings.http_fast_next:
        # Its fallback is Litestar's own entry: the send it hands on already adds the header.
        app.fast_next = FastNext(partial(Litestar.__call__, app), app.state)
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            allow = ", ".join(sorted(route.methods))
            allowed[route.path] = allowed[route.path_format] = allow
    return app


def _options_answer(allowed: dict[str, str]) -> Callable[[Request[Any, Any, Any]], Any]:
    """OPTIONS answers with every method of its path. (Litestar 2 builds each OPTIONS handler
    before the routes of a path are merged, so it lists only some of them: litestar#4169.)"""

    async def answer(request: Request[Any, Any, Any]) -> Response[None] | None:
        if request.method != "OPTIONS":
            return None
        allow = allowed.get(request.scope.get("path_template", ""))
        if allow is None:
            return None
        return Response(None, status_code=204, headers={"Allow": allow}, media_type="text/plain")

    return answer
