"""The HTTP floor of the benchmark: uvicorn on pgpager's HTTP stack (the parser and event loop
``pgpager serve`` picks, no access log) answering every request with one fixed body, with no
framework and no database. Its round trip, timed with the same client as a ``next`` and moments
apart, is what HTTP alone costs on this machine at that moment.

Run as ``python -m pgpager.bench.bare PORT BODY_FILE``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pgpager.cli.serve import fast_stack

Scope = dict[str, Any]


def app_answering(body: bytes) -> Any:
    """An ASGI app that reads each request's body and answers ``body`` as JSON."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to start or stop
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def main(argv: list[str]) -> None:
    import uvicorn

    port, body_file = int(argv[0]), Path(argv[1])
    http, loop = fast_stack()
    uvicorn.run(
        app_answering(body_file.read_bytes()),
        host="127.0.0.1",
        port=port,
        http=http,
        loop=loop,
        access_log=False,
        log_level="warning",
        lifespan="off",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
