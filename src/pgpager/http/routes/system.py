"""/health and /metrics."""

from __future__ import annotations

from litestar import MediaType, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pgpager import __version__
from pgpager.context import AppContext
from pgpager.metrics import REGISTRY


@get("/health", tags=["system"])
async def health(ctx: AppContext) -> Response[dict[str, str]]:
    try:
        async with ctx.pool.connection(timeout=5) as conn:
            await conn.execute("SELECT 1")
        database = "ok"
    except Exception as exc:
        database = f"unreachable: {type(exc).__name__}"
    status = 200 if database == "ok" else 503
    body = {"status": "ok" if status == 200 else "degraded", "database": database,
            "version": __version__}
    return Response(body, status_code=status)


@get("/metrics", tags=["system"], media_type=MediaType.TEXT)
async def metrics() -> Response[bytes]:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
