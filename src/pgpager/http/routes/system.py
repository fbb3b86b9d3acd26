"""/health and /metrics."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pgpager import __version__
from pgpager.errors import DatabaseUnavailable
from pgpager.http.errors import retry_after
from pgpager.metrics import REGISTRY
from pgpager.replicas import Replicas
from pgpager.services.admin import Admin


@get("/health", tags=["system"])
async def health(admin: Admin, replicas: Replicas) -> Response[dict[str, Any]]:
    """200 when PostgreSQL answers; 503 with Retry-After while it does not. Names this server
    instance and, with read replicas, whether each is in rotation (or why not)."""
    extra: dict[str, Any] = {"version": __version__, "instance": admin.settings.instance_id}
    if replicas.replicas:
        extra["replicas"] = {r.name: r.out_reason or "in rotation" for r in replicas.replicas}
    try:
        await admin.ping()
    except DatabaseUnavailable as exc:
        body = {"status": "degraded", "database": exc.message, **extra}
        return Response(body, status_code=503, headers=retry_after(exc))
    return Response({"status": "ok", "database": "ok", **extra})


@get(
    "/metrics", tags=["system"], media_type=MediaType.TEXT, opt={"public_unless": "public_metrics"}
)
async def metrics() -> Response[bytes]:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
