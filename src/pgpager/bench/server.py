"""The server under test: a real ``pgpager serve`` subprocess on a free loopback port, and a thin
HTTP client for the calls the benchmark makes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from pgpager.bench import BenchFailed

TIMEOUT_S = 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class NextLatency:
    """The server's ``pgpager_next_latency_seconds`` histogram: its sum, count and cumulative
    buckets ``(le, count)``; ``since`` gives the calls between two readings."""

    total_s: float
    count: float
    buckets: tuple[tuple[float, float], ...]

    @classmethod
    def parse(cls, text: str) -> NextLatency:
        total = count = 0.0
        buckets: list[tuple[float, float]] = []
        for family in text_string_to_metric_families(text):
            if family.name != "pgpager_next_latency_seconds":
                continue
            for s in family.samples:
                if s.name.endswith("_sum"):
                    total = s.value
                elif s.name.endswith("_count"):
                    count = s.value
                elif s.name.endswith("_bucket"):
                    buckets.append((float(s.labels["le"]), s.value))
        return cls(total, count, tuple(sorted(buckets)))

    def since(self, before: NextLatency) -> NextLatency:
        earlier = dict(before.buckets)
        return NextLatency(
            self.total_s - before.total_s,
            self.count - before.count,
            tuple((le, n - earlier.get(le, 0.0)) for le, n in self.buckets),
        )

    def mean_ms(self) -> float | None:
        return round(self.total_s / self.count * 1000, 3) if self.count else None

    def quantile_ms(self, q: float) -> float | None:
        """As Prometheus's ``histogram_quantile``: linear within the bucket the rank falls in
        (None if it falls in the open-ended last one)."""
        rank = q * self.count
        lower = below = 0.0
        for le, n in self.buckets:
            if n >= rank and n > below:
                if le == float("inf"):
                    return None
                return round((lower + (le - lower) * (rank - below) / (n - below)) * 1000, 3)
            lower, below = le, n
        return None


class BenchServer:
    """``pgpager serve`` against ``database_url``; ``env`` adds or overrides server settings."""

    def __init__(self, database_url: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            **env,
            "PGPAGER_DATABASE_URL": database_url,
            "PGPAGER_HOST": "127.0.0.1",
            "PGPAGER_PORT": str(self.port),
        }
        self.log = Path(tempfile.mkstemp(prefix="pgpager-bench-serve-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 120.0) -> None:
        # Appending: after a restart the log still holds what the first run said.
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pgpager", "serve"], env=self.env, stdout=out, stderr=out
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchFailed(f"the server exited at start-up:\n{self.output()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise BenchFailed(f"the server did not start within {timeout:.0f} s:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown (what a crash looks like to the database)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def output(self, tail: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.log.unlink(missing_ok=True)


@contextlib.contextmanager
def bare_server(body: bytes, timeout: float = 30.0) -> Iterator[str]:
    """The HTTP floor (``pgpager.bench.bare``) answering ``body``, in a subprocess; yields its
    URL."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pgpager-bench-bare-") as tmp:
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        proc = subprocess.Popen(
            [sys.executable, "-m", "pgpager.bench.bare", str(port), str(body_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    raise BenchFailed(f"the bare HTTP server exited at start-up:\n{err[-4000:]}")
                try:
                    if httpx.post(url + "/", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise BenchFailed("the bare HTTP server did not start") from None
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


class RawClient:
    """One keep-alive HTTP/1.1 connection on asyncio streams: it sends a prepared request and
    reads the status, the headers and a ``content-length`` body, and nothing more. Its CPU per
    call is a small fraction of httpx's (about 1 ms of client CPU per request on the bench
    machine), so that throughput figures measure the server, not the load generator that
    shares its cores."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.host, self.port = host, int(port)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode() + body)
        response = await self._reader.readuntil(b"\r\n\r\n")
        status = int(response[9:12])
        found = _CONTENT_LENGTH.search(response)
        if found is None:
            raise BenchFailed(f"POST {path}: a response without content-length: {response!r}")
        return status, await self._reader.readexactly(int(found.group(1)))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._writer = self._reader = None


_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


class Unavailable(Exception):
    """The endpoint does not exist on this server (404/405 from the router)."""


class Api:
    """The calls the benchmark makes, each returning (body, nanoseconds on the wire)."""

    def __init__(
        self, base_url: str, connections: int = 1, retries: Counter[str] | None = None
    ) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.http = httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT_S, limits=limits)
        self.retries = Counter[str]() if retries is None else retries

    async def close(self) -> None:
        await self.http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        optional: bool = False,
    ) -> tuple[Any, int]:
        try:
            t0 = time.perf_counter_ns()
            r = await self.http.request(method, path, json=json, params=params)
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError):
            # The server closing an idle keep-alive connection just as it is reused: try once
            # more on a fresh one, and count it (it is reported with the results).
            self.retries[f"{method} {path.split('/')[2] if path.count('/') > 1 else path}"] += 1
            t0 = time.perf_counter_ns()
            r = await self.http.request(method, path, json=json, params=params)
        elapsed = time.perf_counter_ns() - t0
        if r.status_code >= 400:
            code = _error_code(r)
            if (
                optional
                and r.status_code in (404, 405)
                and code in ("not_found", "method_not_allowed")
            ):
                raise Unavailable(f"{method} {path}: {r.status_code}")
            raise BenchFailed(f"{method} {path} answered {r.status_code}: {r.text[:500]}")
        return (r.json() if r.content else None), elapsed

    async def next_latency(self) -> NextLatency:
        """The server's own ``next`` histogram so far, from ``/metrics``."""
        r = await self.http.get("/metrics")
        return NextLatency.parse(r.text)

    async def create_collection(self, name: str, dimension: int, metric: str) -> None:
        await self.call(
            "POST", "/v1/collections", json={"name": name, "dimension": dimension, "metric": metric}
        )

    async def start(
        self, collection: str, vector: list[float], top_k: int, filter: str | None = None
    ) -> tuple[Any, int]:
        return await self.call(
            "POST",
            f"/v1/collections/{collection}/resumable-queries",
            json={"vector": vector, "top_k": top_k, "filter": filter},
        )

    async def next(self, handle: str, k: int) -> tuple[Any, int]:
        return await self.call(
            "POST", f"/v1/resumable-queries/{handle}/next", json={"additional_k": k}
        )

    async def stop(self, handle: str) -> None:
        await self.call("DELETE", f"/v1/resumable-queries/{handle}")

    async def status(self, handle: str) -> Any:
        return (await self.call("GET", f"/v1/resumable-queries/{handle}"))[0]

    async def search(
        self,
        collection: str,
        vector: list[float],
        offset: int,
        limit: int,
        filter: str | None = None,
    ) -> tuple[Any, int]:
        return await self.call(
            "POST",
            f"/v1/collections/{collection}/search",
            json={"vector": vector, "offset": offset, "limit": limit, "filter": filter},
            optional=True,
        )

    async def upsert(self, collection: str, items: list[dict[str, Any]]) -> tuple[Any, int]:
        return await self.call(
            "POST", f"/v1/collections/{collection}/vectors", json={"vectors": items}
        )

    async def store_query(
        self, collection: str, vector: list[float], limit: int, filter: str | None = None
    ) -> tuple[Any, int]:
        """A stored vector search keeping ``limit`` rows; returns its creation body."""
        search = {"collection": collection, "vector": vector, "limit": limit, "filter": filter}
        return await self.call(
            "POST",
            "/v1/queries",
            json={"vector_search": search, "max_initial_results": 0},
            optional=True,
        )

    async def drop_stored(self, query_id: str) -> None:
        await self.call("DELETE", f"/v1/queries/{query_id}", optional=True)

    async def stored_page(self, query_id: str, offset: int, docs: int) -> tuple[Any, int]:
        return await self.call(
            "GET",
            f"/v1/queries/{query_id}/pages",
            params={"offset": offset, "docs": docs},
            optional=True,
        )


def _error_code(r: httpx.Response) -> str | None:
    try:
        body = r.json()
    except ValueError:
        return None
    err = body.get("error") if isinstance(body, dict) else None
    return err.get("code") if isinstance(err, dict) else None
