"""The Litestar application: routes, the runtime's services injected into them, one error
mapping, and a lifespan that opens the runtime and closes it again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin

from pgpager import __version__
from pgpager.http.auth import auth_guard
from pgpager.http.errors import EXCEPTION_HANDLERS
from pgpager.http.request import StrictRequest
from pgpager.http.routes.collections import CollectionsController, list_models
from pgpager.http.routes.queries import ROUTES as QUERY_ROUTES
from pgpager.http.routes.resumable import ResumableController, ResumableStartController
from pgpager.http.routes.search import SearchController
from pgpager.http.routes.system import health, metrics
from pgpager.http.routes.upstash import upstash_router
from pgpager.http.routes.vectors import VectorsController
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
)


def _provider(name: str) -> Provide:
    def provide(state: State) -> Any:
        return getattr(state.runtime, name)

    return Provide(provide, sync_to_thread=False)


def create_app(settings: Settings, database_url: str) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with Runtime.open(settings, database_url, serve=True) as runtime:
            app.state.runtime = runtime
            yield

    return Litestar(
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
        ],
        lifespan=[lifespan],
        dependencies={name: _provider(name) for name in SERVICES},
        guards=[auth_guard],
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=StrictRequest,
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
                path="/docs", route_handlers=[], opt={"public_unless": "public_docs"}
            ),
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        ),
        debug=False,
    )
