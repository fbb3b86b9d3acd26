"""The Litestar application factory and its lifespan (pool, cursor hosts, sweeper)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin

from pgpager import __version__
from pgpager.context import AppContext
from pgpager.cursors import CursorHosts
from pgpager.database import open_pool, server_application_name, with_application_name
from pgpager.http.auth import auth_guard
from pgpager.http.errors import EXCEPTION_HANDLERS
from pgpager.http.openapi import document_errors
from pgpager.http.routes.collections import CollectionsController
from pgpager.http.routes.queries import ROUTES as QUERY_ROUTES
from pgpager.http.routes.resumable import ResumableController, ResumableStartController
from pgpager.http.routes.search import SearchController
from pgpager.http.routes.system import health, metrics
from pgpager.http.routes.upstash import upstash_router
from pgpager.http.routes.vectors import VectorsController
from pgpager.services import stored_queries
from pgpager.services.resumable import ResumableQueries
from pgpager.settings import Settings
from pgpager.sweeper import HandleListener, Sweeper

log = logging.getLogger(__name__)


def provide_ctx(state: State) -> AppContext:
    ctx: AppContext = state.ctx
    return ctx


def create_app(settings: Settings, database_url: str) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            pool = await open_pool(database_url, settings)
            stack.push_async_callback(pool.close)
            ctx = AppContext(
                settings=settings, database_url=database_url, pool=pool, keys=settings.keys()
            )
            app.state.ctx = ctx
            # Tagged so that `pgpager handles show` can tell a cursor host's backend apart.
            tagged = with_application_name(
                database_url, server_application_name(settings.instance_id)
            )
            hosts = CursorHosts(tagged, settings.cursor_hosts, settings.hnsw_ef_search)
            ctx.resumable = ResumableQueries(pool, settings, hosts)
            stack.push_async_callback(ctx.resumable.close_all)
            listener = HandleListener(tagged, ctx.resumable)
            listener.start()
            stack.push_async_callback(listener.stop)
            ctx.sweeper = Sweeper(pool, settings, ctx.resumable)
            ctx.sweeper.start()
            stack.push_async_callback(ctx.sweeper.stop)
            await stack.enter_async_context(stored_queries.feature(ctx))
            yield

    app = Litestar(
        route_handlers=[
            CollectionsController,
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
        dependencies={"ctx": Provide(provide_ctx, sync_to_thread=False)},
        guards=[auth_guard],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="pgpager",
            version=__version__,
            description="Pagination server for vector search on PostgreSQL + pgvector.",
            path="/docs",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        ),
        debug=False,
    )
    document_errors(app)
    return app

