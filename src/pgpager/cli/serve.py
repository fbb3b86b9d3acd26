"""``pgpager serve``: the HTTP server."""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import ipaddress
import logging
import signal
import socket

import click

from pgpager.cli.common import Obj, env
from pgpager.errors import ConfigurationError, PortInUse

log = logging.getLogger("pgpager")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fast_stack() -> tuple[str, str]:
    """uvicorn's HTTP implementation and event loop: httptools and uvloop (dependencies of
    pgpager, a C parser and libuv) where they are installed, else h11 and asyncio's loop."""
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return http, loop


def bind(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to ``host:port`` (one per address the host resolves to, as asyncio's
    ``create_server`` makes them), not yet listening: uvicorn listens on them once the app is
    ready. Binding first tells a busy port before the database starts, and leaves no window in
    which another program could take the port."""
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot serve on {host!r}: {exc.strerror}") from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(addresses):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise PortInUse(
                        f"port {port} on {host} is in use: stop the other server or set "
                        "PGPAGER_PORT"
                    ) from exc
                raise ConfigurationError(
                    f"cannot serve on {host}:{port}: {exc.strerror or exc}"
                ) from exc
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


@click.command()
@click.option(
    "--host",
    envvar=env("host"),
    show_envvar=True,
    default="127.0.0.1",
    show_default=True,
    help="Address to bind. A non-loopback address requires API keys.",
)
@click.option(
    "--port",
    envvar=env("port"),
    show_envvar=True,
    default=8000,
    show_default=True,
    type=int,
    help="Port to bind.",
)
@click.option(
    "--log-level",
    envvar=env("log_level"),
    show_envvar=True,
    default="info",
    show_default=True,
    help="Log level: debug, info, warning, error.",
)
@click.pass_obj
def serve(obj: Obj, host: str, port: int, log_level: str) -> None:
    """Run the HTTP server (on the embedded PostgreSQL unless a database URL is set)."""
    import uvicorn

    from pgpager import logs
    from pgpager.http.app import create_app
    from pgpager.runtime import database

    settings = obj.settings(host=host, port=port, log_level=log_level)
    logs.configure(
        "debug" if obj.verbose else settings.log_level, settings.log_format, settings.access_log
    )

    def check() -> None:
        if not settings.keys() and not is_loopback(settings.host):
            raise ConfigurationError(
                f"refusing to serve on {settings.host} without API keys: set PGPAGER_API_KEYS "
                "(e.g. 'a-long-secret:admin') or bind to 127.0.0.1"
            )

    check()
    sockets = bind(settings.host, settings.port)

    def go() -> None:
        with database(settings, exclusive=True) as url:
            where = (
                "external PostgreSQL"
                if settings.database_url
                else f"embedded PostgreSQL in {settings.data_dir}"
            )
            log.info("serving on http://%s:%s (%s)", settings.host, settings.port, where)
            # uvicorn re-raises the signal that stopped it once it has shut down; with the
            # default SIGTERM action that would kill us before the embedded server is stopped.
            signal.signal(signal.SIGTERM, lambda signum, frame: None)
            http, loop = fast_stack()
            log.debug("HTTP: uvicorn with %s on the %s event loop", http, loop)
            config = uvicorn.Config(
                create_app(settings, url, freeze_heap=True),
                host=settings.host,
                port=settings.port,
                # Logging is configured above: no uvicorn formatters, no levels of its own.
                log_config=None,
                log_level=None,
                access_log=settings.access_log,
                http=http,
                loop=loop,
                timeout_graceful_shutdown=10,
            )
            # uvicorn.run() without its own bind: the server listens on the sockets bound above.
            with contextlib.suppress(KeyboardInterrupt):
                uvicorn.Server(config).run(sockets=sockets)

    try:
        go()
    finally:
        for sock in sockets:
            sock.close()
