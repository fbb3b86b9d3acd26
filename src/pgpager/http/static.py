"""Files pgpager serves from its own package, so nothing it shows needs the internet: the web
console (``/console``) and the Swagger UI assets its ``/docs`` pages load (``/static``)."""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import OpenAPIRenderPlugin, SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

HERE = Path(__file__).resolve().parent
CONSOLE_DIR = HERE / "console"
SWAGGER_DIR = HERE / "vendor" / "swagger-ui"
SWAGGER_URL = "/static/swagger-ui"
SWAGGER_VERSION = "5.18.2"  # vendor/swagger-ui/README.md says where the files came from


def static_routers() -> list[Router]:
    """Open routes (no scope): the console is a page of HTML and JavaScript that holds no data;
    it asks the API with the key its user enters."""
    return [
        create_static_files_router(
            path="/console",
            directories=[CONSOLE_DIR],
            html_mode=True,
            name="console",
            # A new pgpager's console must not run an old, cached script.
            cache_control=CacheControlHeader(no_cache=True),
        ),
        create_static_files_router(
            path=SWAGGER_URL,
            directories=[SWAGGER_DIR],
            name="swagger-ui",
            cache_control=CacheControlHeader(max_age=86400),
        ),
    ]


def docs_plugins() -> list[OpenAPIRenderPlugin]:
    """Swagger UI at /docs and /docs/swagger, with its scripts, style and icon from pgpager."""
    return [
        SwaggerRenderPlugin(
            version=SWAGGER_VERSION,
            js_url=f"{SWAGGER_URL}/swagger-ui-bundle.js",
            css_url=f"{SWAGGER_URL}/swagger-ui.css",
            standalone_preset_js_url=f"{SWAGGER_URL}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{SWAGGER_URL}/favicon-32x32.png'>",
            path=["/", "/swagger"],
        )
    ]
