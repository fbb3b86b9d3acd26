"""/health and /metrics."""

from __future__ import annotations

from litestar import MediaType, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pgpager import __version__
from pgpager.errors import DatabaseUnavailable
from pgpager.http.errors import retry_after
from pgpager.metrics import REGISTRY
from pgpager.services.admin import Admin


@get("/health", tags=["system"])
async def health(admin: Admin) -> Response[dict[str, str]]:
    """200 when PostgreSQL answers; 503 with Retry-After while it does not."""
    try:
        await admin.ping()
    except DatabaseUnavailable as exc:
        body = {"status": "degraded", "database": exc.message, "version": __version__}
        return Response(body, status_code=503, headers=retry_after(exc))
    return Response({"status": "ok", "database": "ok", "version": __version__})


@get(
    "/metrics", tags=["system"], media_type=MediaType.TEXT, opt={"public_unless": "public_metrics"}
)
async def metrics() -> Response[bytes]:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
