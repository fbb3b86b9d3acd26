"""The benchmark run: one data set, one real server, every section measured in turn.

Sections: load and ingest rates; page latency by depth for resumable ``next``, offset search,
stored-query pages and a raw SQL cursor (the floor); start latency; ``next`` throughput by
client count; capacity (handles open at once, memory per handle); recall, duplicates and
completeness; text (embedding throughput of batch upserts, text-query latency next to
vector-query latency), when the server has an embedding model. Timings are wall-clock on the
client side of real loopback HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import http.client
import json
import random
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from pgpager.bench import BenchFailed, data, probes, report
from pgpager.bench.data import Dataset
from pgpager.bench.server import Api, BenchServer, RawClient, Unavailable, bare_server
from pgpager.runtime import Runtime, database
from pgpager.settings import Settings
from pgpager.store import probes as db_probes
from pgpager.store.collections import Collection
from pgpager.store.filters import compile_filter

OPEN_CONCURRENCY = 32
STYLES = ("resumable", "offset", "stored")
FILTERS = {"bucket = 0": {0}, "bucket < 2": {0, 1}}
"""Filters of the filtered-recall section, on a metadata bucket (row number mod 3), and the
buckets each matches: a third of the rows and two thirds."""
WARMUP_S = 0.5


@dataclass(frozen=True)
class BenchConfig:
    """What to measure and how much. ``quick()`` is the CI-sized run."""

    rows: int = 100_000
    dim: int = 128
    seed: int = 7
    npy: Path | None = None
    metric: str = "cosine"
    queries: int = 20
    # First-page recall is measured on this many more queries: a miss there is rare and
    # all-or-nothing (a neighbourhood the HNSW graph does not link), so 20 cannot estimate it.
    first_page_queries: int = 200
    depths: tuple[int, ...] = (10, 100, 1_000, 10_000)
    clients: tuple[int, ...] = (1, 8, 32, 64)
    capacity: tuple[int, ...] = (1_000, 10_000)
    page: int = 10
    pages_per_depth: int = 10
    repetitions: int = 3
    throughput_s: float = 5.0
    capacity_probes: int = 2_000
    ingest_rows: int = 20_000
    upsert_batch: int = 500
    text_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    text_rows: int = 2_000
    text_batch: int = 100
    text_queries: int = 100
    # Filtered recall: a collection of this many of the rows, with a metadata bucket.
    filtered_rows: int = 30_000
    filtered_queries: int = 50
    out_dir: Path = Path("bench-results")
    keep: bool = False
    quick: bool = False

    @classmethod
    def preset(cls, quick: bool) -> BenchConfig:
        if not quick:
            return cls()
        return cls(
            rows=20_000,
            dim=64,
            queries=5,
            first_page_queries=20,
            depths=(10, 100, 1_000),
            capacity=(1_000,),
            throughput_s=2.0,
            capacity_probes=300,
            ingest_rows=12_000,
            text_rows=300,
            text_queries=30,
            filtered_rows=3_000,
            filtered_queries=10,
            quick=True,
        )

    @property
    def until(self) -> int:
        """How deep each measured walk goes: the deepest depth plus its measured pages."""
        return max(self.depths) + self.page * self.pages_per_depth

    def with_(self, **changes: Any) -> BenchConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def summary(samples_ns: Sequence[int]) -> dict[str, Any] | None:
    if not samples_ns:
        return None
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }


def by_depth(walks: Sequence[Sequence[tuple[int, int]]], config: BenchConfig) -> dict[str, Any]:
    """Latencies of the page calls at and after each depth (``pages_per_depth`` pages)."""
    out: dict[str, Any] = {}
    span = config.page * config.pages_per_depth
    for d in config.depths:
        out[str(d)] = summary([ns for w in walks for pos, ns in w if d <= pos < d + span])
    return out


def deep_shallow(depths: dict[str, Any]) -> float | None:
    keys = sorted(depths, key=int)
    shallow, deep = depths.get(keys[0]), depths.get(keys[-1])
    if not shallow or not deep or not shallow["p50_ms"]:
        return None
    return round(float(deep["p50_ms"]) / float(shallow["p50_ms"]), 2)


def mb(kb: float | None) -> float | None:
    return None if kb is None else round(kb / 1024, 3)


class Steps:
    """Progress on stderr: a live bar on a terminal, one line per section otherwise."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<34}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not self.live,
        )
        self.timings: dict[str, float] = {}

    def __enter__(self) -> Steps:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    @contextlib.contextmanager
    def section(self, key: str, title: str, total: int) -> Iterator[Callable[[int], None]]:
        if not self.live:
            self.console.print(f"pgpager bench: {title}", highlight=False)
        task: TaskID = self.progress.add_task(title, total=max(total, 1))
        t0 = time.perf_counter()
        try:

            def advance(n: int = 1) -> None:
                self.progress.advance(task, n)

            yield advance
        finally:
            self.timings[key] = round(time.perf_counter() - t0, 2)
            self.progress.update(task, completed=max(total, 1))


async def bounded(n: int, jobs: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Run ``jobs`` with at most ``n`` in flight; results in job order."""
    sem = asyncio.Semaphore(n)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with sem:
            return await job()

    return list(await asyncio.gather(*(one(j) for j in jobs)))


def vec(q: Any) -> list[float]:
    return [float(x) for x in q]


@dataclass
class Bench:
    config: BenchConfig
    settings: Settings
    url: str
    steps: Steps
    embedded: bool
    results: dict[str, Any] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    retries: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)

    # --- the run -------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        cfg = self.config
        started = time.perf_counter()
        instance = "bench-" + secrets.token_hex(4)
        server_env = {
            "PGPAGER_INSTANCE_ID": instance,
            "PGPAGER_MAX_ACTIVE_HANDLES": str(max(cfg.capacity, default=0) + 2_000),
            # Offset search is capped at 10,000 by default; the deepest measured page is past it.
            "PGPAGER_QUERY_MAXIMUM_RESULTS": str(max(10_000, cfg.until)),
            "PGPAGER_LOG_LEVEL": "warning",
            "PGPAGER_API_KEYS": "",
        }
        server = BenchServer(self.url, server_env)
        served = Settings.from_env(environ=server.env)
        self.results = {
            "schema": "pgpager-bench/1",
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": probes.machine(self.url),
        }
        with tempfile.TemporaryDirectory(prefix="pgpager-bench-") as tmp:
            ds = self._dataset(Path(tmp))
            self.results["parameters"] = self._parameters(ds, served)
            with self.steps.section("server", "starting pgpager serve", 1):
                server.start()
            try:
                await self._sections(server, ds, served, instance)
            except httpx.HTTPError as exc:
                raise BenchFailed(
                    f"HTTP call to the server failed: {exc!r}\nserver log:\n{server.output()}"
                ) from exc
            finally:
                server.stop()
                await self._cleanup()
                server.cleanup()
        self.results["sections_s"] = self.steps.timings
        self.results["transport_retries"] = dict(self.retries)
        self.results["warnings"] = self.warnings
        self.results["duration_s"] = round(time.perf_counter() - started, 1)
        return self.results

    def _dataset(self, workdir: Path) -> Dataset:
        cfg = self.config
        with self.steps.section("data", "generating data", 1):
            if cfg.npy is not None:
                return data.from_npy(cfg.npy, cfg.queries, cfg.seed, cfg.first_page_queries)
            return data.synthetic(
                workdir, cfg.rows, cfg.dim, cfg.seed, cfg.queries, cfg.first_page_queries
            )

    def _parameters(self, ds: Dataset, served: Settings) -> dict[str, Any]:
        params = {k: v for k, v in asdict(self.config).items() if k not in ("npy", "out_dir")}
        params.update(
            rows=ds.rows,
            dim=ds.dim,
            npy=str(self.config.npy) if self.config.npy else None,
            data=ds.source,
            database="embedded" if self.embedded else "external",
            server_settings={
                k: getattr(served, k)
                for k in (
                    "hnsw_ef_search",
                    "cursor_hosts",
                    "pool_max_size",
                    "max_active_handles",
                    "query_maximum_results",
                    "flat_search_cutoff",
                )
            },
        )
        return params

    async def _sections(
        self, server: BenchServer, ds: Dataset, served: Settings, instance: str
    ) -> None:
        api = Api(server.url, retries=self.retries)
        try:
            name = await self._load(api, ds)
            async with connect_collection(self.settings, self.url, name) as c:
                ingest_name = await self._ingest(api, ds)
                await self._completeness(api, ingest_name, ds)
                await self._warm_up(api, name, ds)
                await self._settle("depth")
                await self._depth_latency(api, c, ds, served)
                await self._recall_by_style(api, c, ds)
                await self._filtered_recall(api, ds, served)
                await self._exact_switch(api, name, ds)
                await self._settle("throughput")
                await self._throughput(server, name, ds)
                await self._settle("lean_next")
                await self._lean_next(server, api, name, ds)
                await self._text(api)
                await self._capacity(server, api, name, ds, instance)
        finally:
            await api.close()

    async def _settle(self, before: str) -> None:
        """Before a timed section: the cleanup the sections before it caused is done (see
        ``store.probes.settle``); how long that took is in the results."""
        with self.steps.section(f"settle_{before}", "vacuuming the session tables", 1):
            waited = await asyncio.to_thread(db_probes.settle, self.url, 60.0)
        self.results.setdefault("settled_s", {})[before] = round(waited, 2)

    # --- load and ingest -----------------------------------------------------------------
    async def _load(self, api: Api, ds: Dataset) -> str:
        name = "bench_" + secrets.token_hex(4)
        await api.create_collection(name, ds.dim, self.config.metric)
        self.created.append(name)
        marks: dict[str, float] = {}
        count = 0
        with self.steps.section("load", f"loading {ds.rows:,} x {ds.dim} (COPY)", ds.rows) as step:

            def progress(n: int) -> None:
                nonlocal count
                count += n
                step(n)
                if count >= ds.rows:
                    marks["copied"] = time.perf_counter()

            async with Runtime.open(self.settings, self.url, serve=False) as rt:
                t0 = time.perf_counter()
                n = await rt.loader.load(name, ds.path, defer_index=True, progress=progress)
                t1 = time.perf_counter()
                c = await rt.collections.get(name)
            db_probes.analyze(self.url, c)
        copy_s = marks.get("copied", t1) - t0
        self.results.setdefault("ingest", {})["load_file"] = {
            "rows": n,
            "copy_s": round(copy_s, 2),
            "index_build_s": round(t1 - t0 - copy_s, 2),
            "total_s": round(t1 - t0, 2),
            "copy_rows_per_s": round(n / copy_s) if copy_s > 0 else None,
            "rows_per_s_with_index": round(n / (t1 - t0)) if t1 > t0 else None,
        }
        return name

    async def _ingest(self, api: Api, ds: Dataset) -> str:
        cfg = self.config
        name = "bench_" + secrets.token_hex(4) + "_upsert"
        await api.create_collection(name, ds.dim, cfg.metric)
        self.created.append(name)
        rows = ds.sample(cfg.ingest_rows, cfg.seed + 1)
        items = [{"id": f"u{i}", "vector": vec(v)} for i, v in enumerate(rows)]
        batches = [items[i : i + cfg.upsert_batch] for i in range(0, len(items), cfg.upsert_batch)]
        title = f"upserting {len(rows):,} via the API"
        with self.steps.section("upsert", title, len(rows)) as step:
            t0 = time.perf_counter()
            for batch in batches:
                await api.upsert(name, batch)
                step(len(batch))
            seconds = time.perf_counter() - t0
        self.results["ingest"]["upsert_api"] = {
            "rows": len(rows),
            "batch": cfg.upsert_batch,
            "seconds": round(seconds, 2),
            "rows_per_s": round(len(rows) / seconds),
        }
        # The same rows again, by COPY into an empty collection of the same shape: what
        # PostgreSQL alone takes to insert them into the table and its HNSW index.
        floor_name = "bench_" + secrets.token_hex(4) + "_floor"
        await api.create_collection(floor_name, ds.dim, cfg.metric)
        self.created.append(floor_name)
        with self.steps.section("upsert-floor", "the same rows by COPY (floor)", 1):
            async with connect_collection(self.settings, self.url, floor_name) as floor_c:
                floor_s = db_probes.insert_floor(self.url, floor_c, rows, cfg.upsert_batch)
        self.results["ingest"]["insert_floor"] = {
            "rows": len(rows),
            "batch": cfg.upsert_batch,
            "seconds": round(floor_s, 2),
            "rows_per_s": round(len(rows) / floor_s),
        }
        return name

    # --- quality: completeness -----------------------------------------------------------
    async def _completeness(self, api: Api, name: str, ds: Dataset) -> None:
        expected = {f"u{i}" for i in range(self.config.ingest_rows)}
        delivered: list[str] = []
        k = 1000
        with self.steps.section("completeness", "iterating to exhaustion", len(expected)) as step:
            body, _ = await api.start(name, vec(ds.queries[0]), k)
            handle, state = body["handle"], body["state"]
            delivered += [r["id"] for r in body["results"]]
            step(len(body["results"]))
            while state == "active":
                body, _ = await api.next(handle, k)
                state = body["state"]
                delivered += [r["id"] for r in body["results"]]
                step(len(body["results"]))
            status = await api.status(handle)
        unique = set(delivered)
        self.results.setdefault("quality", {})["completeness"] = {
            "rows": len(expected),
            "delivered": len(delivered),
            "duplicates": len(delivered) - len(unique),
            "missing": len(expected - unique),
            "unexpected": len(unique - expected),
            "ratio": round(len(unique & expected) / len(expected), 6),
            "final_state": state,
            "final_phase": status.get("phase"),
        }

    # --- latency by depth, start latency, recall -----------------------------------------
    async def _warm_up(self, api: Api, name: str, ds: Dataset) -> None:
        with self.steps.section("warmup", "warming up", 3):
            for q in ds.queries[:3]:
                body, _ = await api.start(name, vec(q), self.config.page)
                for _ in range(20):
                    await api.next(body["handle"], self.config.page)
                await api.stop(body["handle"])
                with contextlib.suppress(Unavailable, BenchFailed):
                    await api.search(name, vec(q), 0, self.config.page)

    async def _depth_latency(self, api: Api, c: Collection, ds: Dataset, served: Settings) -> None:
        cfg = self.config
        latency: dict[str, Any] = {}
        recall: dict[str, list[float]] = {str(d): [] for d in cfg.depths}
        duplicates = 0

        with self.steps.section("sql", "raw SQL cursor FETCH (floor)", 1):
            floor = db_probes.sql_cursor_walk(
                self.url,
                c,
                ds.queries,
                ef_search=served.hnsw_ef_search,
                page=cfg.page,
                until=cfg.until,
            )
        latency["sql_fetch"] = {"available": True, "depths": by_depth(floor, cfg)}
        with self.steps.section("commit", "durable commit of a page's ids (floor)", 1):
            commits = db_probes.durable_commit_floor(self.url, page=cfg.page, times=500)
        self.results["floors"] = {"durable_commit": summary(commits)}

        walks: list[list[tuple[int, int]]] = []
        server_before = await api.next_latency()
        with self.steps.section("walk", "resumable next, by depth", len(ds.queries)) as step:
            for q in ds.queries:
                walk, ids = await self._walk(api, c.name, vec(q))
                walks.append(walk)
                duplicates += len(ids) - len(set(ids))
                exact = db_probes.exact_top(self.url, c, q, max(cfg.depths))
                for d in cfg.depths:
                    got = set(ids[:d])
                    recall[str(d)].append(len(got.intersection(exact[:d])) / min(d, len(exact)))
                step(1)
        server = (await api.next_latency()).since(server_before)
        latency["resumable_next"] = {
            "available": True,
            "depths": by_depth(walks, cfg),
            # The server's own time per next (its metrics), so the HTTP share can be seen.
            "server_mean_ms": server.mean_ms(),
            "server_p50_ms": server.quantile_ms(0.5),
        }

        latency["offset_search"] = await self._offset(api, c.name, ds)
        latency["stored_query_pages"], created = await self._stored(api, c.name, ds)

        # A start against a plain top-10 search of the same vector, made moments apart: this
        # machine's speed drifts between sections, a pair does not. The second call for a vector
        # finds its part of the index in the CPU's caches (about 0.4 ms less), so each vector is
        # timed in both orders, one after the other, and which goes first alternates between
        # vectors. On the many query vectors (first_page_queries): rounds of the earlier way
        # (60 pairs per run, the start first in two of three) moved the ratio by up to 0.1.
        starts: list[int] = []
        topk: list[int] = []
        queries = ds.more_queries
        with self.steps.section("start", "resumable start vs top-10 search", len(queries)) as step:
            for i, q in enumerate(queries):
                for search_first in (i % 2 == 1, i % 2 == 0):
                    if search_first:
                        topk.append((await api.search(c.name, vec(q), 0, cfg.page))[1])
                    body, ns = await api.start(c.name, vec(q), cfg.page)
                    starts.append(ns)
                    await api.stop(body["handle"])
                    if not search_first:
                        topk.append((await api.search(c.name, vec(q), 0, cfg.page))[1])
                step(1)

        for entry in latency.values():
            ratio = deep_shallow(entry["depths"]) if entry["available"] else None
            entry["deep_shallow_ratio"] = ratio
        self.results["latency_by_depth"] = latency
        self.results["start_latency"] = {
            "resumable_start": summary(starts),
            "topk_search": summary(topk),
            "stored_query_create": summary(created),
        }
        quality = self.results.setdefault("quality", {})
        quality["recall"] = {d: round(float(np.mean(v)), 4) for d, v in recall.items() if v}
        quality["recall_min"] = {d: round(float(np.min(v)), 4) for d, v in recall.items() if v}
        quality["duplicates"] = duplicates + quality["completeness"]["duplicates"]

    async def _walk(
        self, api: Api, name: str, q: list[float]
    ) -> tuple[list[tuple[int, int]], list[str]]:
        page = self.config.page
        body, _ = await api.start(name, q, page)
        handle = body["handle"]
        ids = [r["id"] for r in body["results"]]
        position, state = body["position"], body["state"]
        walk: list[tuple[int, int]] = []
        while position < self.config.until and state == "active":
            body, ns = await api.next(handle, page)
            walk.append((position, ns))
            ids += [r["id"] for r in body["results"]]
            position, state = body["position"], body["state"]
        if state == "active":
            await api.stop(handle)
        return walk, ids

    async def _offset(self, api: Api, name: str, ds: Dataset) -> dict[str, Any]:
        cfg = self.config
        total = cfg.repetitions * len(ds.queries) * len(cfg.depths)
        samples: dict[int, list[int]] = {d: [] for d in cfg.depths}
        with self.steps.section("offset", "offset search, by depth", total) as step:
            try:
                for _ in range(cfg.repetitions):
                    for q in ds.queries:
                        for d in cfg.depths:
                            samples[d].append((await api.search(name, vec(q), d, cfg.page))[1])
                            step(1)
            except (Unavailable, BenchFailed) as exc:
                return {"available": False, "reason": str(exc), "depths": {}}
        depths = {str(d): summary(s) for d, s in samples.items()}
        return {"available": True, "depths": depths}

    async def _stored(self, api: Api, name: str, ds: Dataset) -> tuple[dict[str, Any], list[int]]:
        cfg = self.config
        total = len(ds.queries) * (1 + cfg.repetitions * len(cfg.depths))
        samples: dict[int, list[int]] = {d: [] for d in cfg.depths}
        created: list[int] = []
        with self.steps.section("stored", "stored query pages, by depth", total) as step:
            try:
                for q in ds.queries:
                    body, ns = await api.store_query(name, vec(q), cfg.until)
                    created.append(ns)
                    step(1)
                    query_id = body.get("query_id") if isinstance(body, dict) else None
                    if not query_id:
                        raise BenchFailed(f"POST /v1/queries gave no query_id: {str(body)[:300]}")
                    for _ in range(cfg.repetitions):
                        for d in cfg.depths:
                            page, ns = await api.stored_page(query_id, d, cfg.page)
                            if len(page.get("results", [])) != cfg.page:
                                raise BenchFailed(f"stored page at offset {d} is not full")
                            samples[d].append(ns)
                            step(1)
                    await api.drop_stored(query_id)
            except (Unavailable, BenchFailed) as exc:
                return {"available": False, "reason": str(exc), "depths": {}}, []
        depths = {str(d): summary(s) for d, s in samples.items()}
        return {"available": True, "depths": depths}, created

    # --- quality by style, and the switch to the exact phase -------------------------------
    async def _recall_by_style(self, api: Api, c: Collection, ds: Dataset) -> None:
        """Recall against exact order, on the ``first_page_queries`` (where a rare,
        all-or-nothing miss weighs what it should), one exact scan per query for both:

        - of the first 10 / 100 / 1,000 rows of each style: a resumable query's first page of
          1,000, an offset search from offset 0 (the same sequence as ten pages of 100) and a
          stored vector search;
        - of the first page each style returns (a page of 10): the mean, the worst, and how
          many queries got less than half right."""
        ks = (10, 100, 1000)
        deep, page = max(ks), self.config.page
        recall: dict[str, dict[int, list[float]]] = {s: {k: [] for k in ks} for s in STYLES}
        first: dict[str, list[float]] = {s: [] for s in STYLES}
        queries = ds.more_queries
        with self.steps.section("recall", "recall by query style", len(queries)) as step:
            for q in queries:
                exact = db_probes.exact_top(self.url, c, q, deep)
                for style, ids in (await self._first_rows(api, c.name, q, deep)).items():
                    for k in ks:
                        truth = exact[:k]
                        recall[style][k].append(len(set(ids[:k]) & set(truth)) / max(1, len(truth)))
                top = set(exact[:page])
                for style, ids in (await self._first_rows(api, c.name, q, page)).items():
                    first[style].append(len(set(ids) & top) / max(1, len(top)))
                step(1)
        quality = self.results.setdefault("quality", {})
        quality["recall_by_style"] = {
            style: {str(k): round(float(np.mean(v)), 4) for k, v in by_k.items() if v}
            for style, by_k in recall.items()
        }
        quality["recall_by_style_queries"] = len(queries)
        quality["first_page_recall"] = {
            style: {
                "queries": len(values),
                "mean": round(float(np.mean(values)), 4),
                "min": round(float(np.min(values)), 4),
                "under_half": sum(1 for r in values if r < 0.5),
            }
            for style, values in first.items()
            if values
        }

    async def _filtered_recall(self, api: Api, ds: Dataset, served: Settings) -> None:
        """Recall of the first page of 10 of each style under a filter, against the exact
        nearest rows that match it: on a collection of ``filtered_rows`` of the rows, each with
        a metadata bucket (row number mod 3), one filter matching a third of them and one two
        thirds (``FILTERS``). A filter matching at most ``flat_search_cutoff`` rows is served
        by an exact scan, one matching more by the HNSW index (iterative scan)."""
        cfg = self.config
        rows = min(cfg.filtered_rows, ds.rows)
        name = "bench_filtered_" + secrets.token_hex(4)
        await api.create_collection(name, ds.dim, cfg.metric)
        self.created.append(name)
        queries = ds.more_queries[: cfg.filtered_queries]
        title = f"filtered recall ({rows:,} rows, {len(FILTERS)} filters)"
        with (
            self.steps.section("filtered", title, len(queries) * len(FILTERS)) as step,
            tempfile.TemporaryDirectory(prefix="pgpager-bench-") as tmp,
        ):
            path = Path(tmp) / "filtered.jsonl"
            with path.open("w", encoding="utf-8") as f:
                for i, v in enumerate(np.load(ds.path, mmap_mode="r")[:rows]):
                    line = {"id": str(i), "vector": v.tolist(), "metadata": {"bucket": i % 3}}
                    f.write(json.dumps(line) + "\n")
            async with Runtime.open(self.settings, self.url, serve=False) as rt:
                await rt.loader.load(name, path, defer_index=True)
                c = await rt.collections.get(name)
            db_probes.analyze(self.url, c)
            out: dict[str, Any] = {}
            for text, buckets in FILTERS.items():
                where = compile_filter(text)
                matching = sum(1 for i in range(rows) if i % 3 in buckets)
                first: dict[str, list[float]] = {s: [] for s in STYLES}
                for q in queries:
                    top = set(db_probes.exact_top(self.url, c, q, cfg.page, where))
                    got = await self._first_rows(api, name, q, cfg.page, text)
                    for style, ids in got.items():
                        first[style].append(len(set(ids) & top) / max(1, len(top)))
                    step(1)
                out[text] = {
                    "matching": matching,
                    "rows": rows,
                    "served_by": "exact" if matching <= served.flat_search_cutoff else "index",
                    "queries": len(queries),
                    "styles": {
                        style: {
                            "mean": round(float(np.mean(v)), 4),
                            "min": round(float(np.min(v)), 4),
                        }
                        for style, v in first.items()
                        if v
                    },
                }
        self.results.setdefault("quality", {})["filtered_recall"] = out

    @staticmethod
    async def _first_rows(
        api: Api, name: str, q: Any, k: int, filter: str | None = None
    ) -> dict[str, list[str]]:
        """The ids of the first ``k`` rows each style returns for ``q`` (and ``filter``): a
        resumable start, an offset search from 0 and a stored vector search (the styles the
        server offers)."""
        got: dict[str, list[str]] = {}
        body, _ = await api.start(name, vec(q), k, filter)
        got["resumable"] = [r["id"] for r in body["results"]]
        if body["state"] == "active":
            await api.stop(body["handle"])
        with contextlib.suppress(Unavailable, BenchFailed):
            page, _ = await api.search(name, vec(q), 0, k, filter)
            got["offset"] = [r["id"] for r in page["results"]]
        with contextlib.suppress(Unavailable, BenchFailed):
            stored, _ = await api.store_query(name, vec(q), k, filter)
            page, _ = await api.stored_page(stored["query_id"], 0, k)
            got["stored"] = [r["id"] for r in page["results"]]
            await api.drop_stored(stored["query_id"])
        return got

    async def _exact_switch(self, api: Api, name: str, ds: Dataset) -> None:
        """The one ``next`` that crosses from the index phase to the exact phase (which scans
        every matching row once). Per query, a handle walked in pages of 1,000 finds where the
        switch happens; a second handle on the same query walks to just before it and crosses
        it with pages of 10, its phase read after each."""
        cfg = self.config
        queries = ds.queries[: 3 if cfg.quick else 5]
        crossing: list[int] = []
        others: list[int] = []
        positions: list[int] = []
        with self.steps.section("switch", "exact-phase switch", len(queries)) as step:
            for q in queries:
                body, _ = await api.start(name, vec(q), 1000)
                handle = body["handle"]
                before = 0
                while body["state"] == "active" and (await api.status(handle))["phase"] == "index":
                    before = body["position"]
                    body, _ = await api.next(handle, 1000)
                if body["state"] == "active":
                    await api.stop(handle)
                body, _ = await api.start(name, vec(q), cfg.page)
                handle, position = body["handle"], body["position"]
                while position < before - 1000:
                    body, _ = await api.next(handle, min(1000, before - 1000 - position))
                    position = body["position"]
                while body["state"] == "active":
                    body, ns = await api.next(handle, cfg.page)
                    if (await api.status(handle))["phase"] == "exact":
                        crossing.append(ns)
                        positions.append(position)
                        break
                    others.append(ns)
                    position = body["position"]
                if body["state"] == "active":
                    await api.stop(handle)
                step(1)
        self.results["exact_switch"] = {
            "rows": ds.rows,
            "positions": positions,
            "crossing_next": summary(crossing),
            "crossing_max_ms": round(max(crossing) / 1e6, 3) if crossing else None,
            "next_before_it": summary(others),
        }

    # --- throughput ----------------------------------------------------------------------
    async def _throughput(self, server: BenchServer, name: str, ds: Dataset) -> None:
        cfg = self.config
        rows: list[dict[str, Any]] = []
        title = "next throughput by clients"
        with self.steps.section("throughput", title, len(cfg.clients)) as step:
            for n in cfg.clients:
                rows.append(await self._throughput_at(server, name, ds, n))
                step(1)
        self.results["throughput"] = rows

    async def _lean_next(self, server: BenchServer, api: Api, name: str, ds: Dataset) -> None:
        """`next` latency with one lean client (stdlib http.client, keep-alive) and with httpx,
        each beside the HTTP floor: the same client, path and body against a bare uvicorn on the
        same HTTP stack answering a real next's bytes (``pgpager.bench.bare``), in alternating
        rounds moments apart. httpx's own CPU per request is a large part of its figures."""
        calls = 200 if self.config.quick else 1000
        rounds = 4
        body, _ = await api.call(
            "POST",
            f"/v1/collections/{name}/resumable-queries",
            json={"vector": ds.sample(1, self.config.seed + 7)[0].tolist(), "top_k": 10},
        )
        handle = body["handle"]
        path = f"/v1/resumable-queries/{handle}/next"
        payload = json.dumps({"additional_k": 10}).encode()
        headers = {"content-type": "application/json"}

        def measure(url: str, n: int) -> tuple[list[int], bytes]:
            host, port = url.removeprefix("http://").rsplit(":", 1)
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            times: list[int] = []
            data = b""
            try:
                for _ in range(n):
                    t0 = time.perf_counter_ns()
                    conn.request("POST", path, payload, headers)
                    response = conn.getresponse()
                    data = response.read()
                    times.append(time.perf_counter_ns() - t0)
                    if response.status != 200:
                        raise BenchFailed(f"next answered {response.status}: {data[:300]!r}")
            finally:
                conn.close()
            return times, data

        lean: list[int] = []
        heavy: list[int] = []
        floor_lean: list[int] = []
        floor_heavy: list[int] = []
        title = "next with a lean client and httpx, beside bare HTTP"
        with self.steps.section("lean_next", title, rounds) as step:
            _, answer = await asyncio.to_thread(measure, server.url, 1)
            with bare_server(answer) as bare_url:
                bare = Api(bare_url)
                try:
                    per_round = calls // rounds
                    for _ in range(rounds):
                        times, _ = await asyncio.to_thread(measure, server.url, per_round)
                        lean += times
                        times, _ = await asyncio.to_thread(measure, bare_url, per_round)
                        floor_lean += times
                        for _ in range(per_round):
                            heavy.append((await api.next(handle, 10))[1])
                        for _ in range(per_round):
                            _, ns = await bare.call("POST", path, json={"additional_k": 10})
                            floor_heavy.append(ns)
                        step(1)
                finally:
                    await bare.close()
        await api.call("DELETE", f"/v1/resumable-queries/{handle}")
        self.results["lean_client_next"] = {
            "client": "http.client (stdlib)",
            **(summary(lean) or {}),
        }
        self.results["httpx_client_next"] = {
            "client": "httpx.AsyncClient",
            **(summary(heavy) or {}),
        }
        self.results["http_floor"] = {
            "server": "uvicorn on the same HTTP stack, one fixed body (a real next's), no app",
            "body_bytes": len(answer),
            "lean": summary(floor_lean),
            "httpx": summary(floor_heavy),
        }

    async def _throughput_at(
        self, server: BenchServer, name: str, ds: Dataset, n: int
    ) -> dict[str, Any]:
        cfg = self.config
        vectors = ds.sample(n, cfg.seed + 1000 + n)
        clients = [Api(server.url, retries=self.retries) for _ in range(n)]
        try:
            handles = await bounded(
                OPEN_CONCURRENCY,
                [
                    partial(a.start, name, vec(v), cfg.page)
                    for a, v in zip(clients, vectors, strict=True)
                ],
            )
            t_begin = time.perf_counter() + WARMUP_S
            t_end = t_begin + cfg.throughput_s
            latencies: list[int] = []
            exhausted = calls = 0
            payload = json.dumps({"additional_k": cfg.page}).encode()
            raws = [RawClient(server.url) for _ in range(n)]

            async def client(raw: RawClient, handle: str) -> None:
                nonlocal exhausted, calls
                path = f"/v1/resumable-queries/{handle}/next"
                while True:
                    t0 = time.perf_counter_ns()
                    status, data = await raw.post(path, payload)
                    ns = time.perf_counter_ns() - t0
                    if status != 200:
                        raise BenchFailed(f"next answered {status}: {data[:300]!r}")
                    calls += 1
                    done = time.perf_counter()
                    if done > t_end:
                        return
                    if done >= t_begin:
                        latencies.append(ns)
                    if json.loads(data)["state"] != "active":
                        exhausted += 1
                        return

            # PostgreSQL's processes by pid (every pool and host connection is open by now).
            pg_pids = db_probes.server_pids(self.url)
            cpu = (
                probes.cpu_s(server.pid),
                probes.postgres_cpu_s(pg_pids),
                time.process_time(),
                time.perf_counter(),
            )
            try:
                await asyncio.gather(
                    *(client(r, h["handle"]) for r, (h, _) in zip(raws, handles, strict=True))
                )
            finally:
                await asyncio.gather(*(r.close() for r in raws))
            server_cpu = probes.cpu_s(server.pid) - cpu[0]
            pg_cpu = probes.postgres_cpu_s(pg_pids) - cpu[1]
            client_cpu = time.process_time() - cpu[2]
            wall = time.perf_counter() - cpu[3]
            await bounded(
                OPEN_CONCURRENCY,
                [partial(a.stop, h[0]["handle"]) for a, h in zip(clients, handles, strict=True)],
            )
        finally:
            await asyncio.gather(*(a.close() for a in clients))
        stats = summary(latencies) or {}
        return {
            "clients": n,
            "client": "asyncio streams, one keep-alive connection per client",
            "requests": len(latencies),
            "seconds": cfg.throughput_s,
            "requests_per_s": round(len(latencies) / cfg.throughput_s, 1),
            "p50_ms": stats.get("p50_ms"),
            "p99_ms": stats.get("p99_ms"),
            "exhausted": exhausted,
            # Where the two cores went: the server process and this client, per request.
            "server_cpu_ms_per_request": round(server_cpu / calls * 1000, 3) if calls else None,
            "client_cpu_ms_per_request": round(client_cpu / calls * 1000, 3) if calls else None,
            "postgres_cpu_ms_per_request": (
                round(pg_cpu / calls * 1000, 3) if calls and pg_cpu > 0 else None
            ),
            "server_cores_busy": round(server_cpu / wall, 2),
            "postgres_cores_busy": round(pg_cpu / wall, 2) if pg_cpu > 0 else None,
        }

    # --- text ----------------------------------------------------------------------------
    async def _text(self, api: Api) -> None:
        """Embedding throughput (text upserts in batches) and the latency of a text query next
        to the same kind of query by vector. Skipped, with a note, when the server cannot load
        the model (no model directory, nothing cached, no model hub)."""
        cfg = self.config
        name = "bench_" + secrets.token_hex(4) + "_text"
        entry: dict[str, Any] = {"model": cfg.text_model}
        self.results["text"] = entry
        with self.steps.section("text_model", f"loading {cfg.text_model}", 1):
            r = await api.http.post(
                "/v1/collections", json={"name": name, "embedding_model": cfg.text_model}
            )
        if r.status_code != 201:
            reason = _error_message(r)
            entry.update(available=False, reason=reason)
            self.warnings.append(
                f"text section skipped: {reason} (set PGPAGER_EMBEDDING_MODEL_DIR, or run "
                f"'pgpager models fetch {cfg.text_model}')"
            )
            return
        self.created.append(name)
        texts = data.sentences(cfg.text_rows, cfg.seed)
        batches = [texts[i : i + cfg.text_batch] for i in range(0, len(texts), cfg.text_batch)]
        batch_ns: list[int] = []
        title = f"embedding {len(texts):,} texts (upsert)"
        with self.steps.section("text_upsert", title, len(texts)) as step:
            t0 = time.perf_counter()
            for b, batch in enumerate(batches):
                items = [
                    {"id": f"t{b * cfg.text_batch + i}", "data": t} for i, t in enumerate(batch)
                ]
                batch_ns.append((await api.upsert(name, items))[1])
                step(len(batch))
            seconds = time.perf_counter() - t0
        entry["available"] = True
        entry["upsert"] = {
            "texts": len(texts),
            "batch": cfg.text_batch,
            "seconds": round(seconds, 2),
            "texts_per_s": round(len(texts) / seconds, 1),
            "batch_latency": summary(batch_ns),
        }

        queries = data.sentences(cfg.text_queries, cfg.seed + 1)
        rng = random.Random(cfg.seed)
        ids = [f"t{rng.randrange(len(texts))}" for _ in queries]
        fetched, _ = await api.call(
            "POST",
            f"/v1/collections/{name}/vectors/fetch",
            json={"ids": ids, "include_metadata": False, "include_data": False},
        )
        vectors = [v["vector"] for v in fetched["vectors"]]
        samples: dict[str, list[int]] = {k: [] for k in ("vector", "text", "vstart", "tstart")}
        search = f"/v1/collections/{name}/search"
        start = f"/v1/collections/{name}/resumable-queries"
        title = "text vs vector queries"
        with self.steps.section("text_queries", title, len(queries)) as step:
            for text, vector in zip(queries[:3], vectors[:3], strict=True):  # warm-up
                await api.call("POST", search, json={"data": text, "limit": cfg.page})
                await api.call("POST", search, json={"vector": vector, "limit": cfg.page})
            # Interleaved, so that both kinds see the same machine.
            for text, vector in zip(queries, vectors, strict=True):
                body = {"limit": cfg.page}
                samples["vector"].append(
                    (await api.call("POST", search, json=body | {"vector": vector}))[1]
                )
                samples["text"].append(
                    (await api.call("POST", search, json=body | {"data": text}))[1]
                )
                for kind, query in (("vstart", {"vector": vector}), ("tstart", {"data": text})):
                    page, ns = await api.call("POST", start, json=query | {"top_k": cfg.page})
                    samples[kind].append(ns)
                    await api.stop(page["handle"])
                step(1)
        entry["query_latency"] = {
            "vector_search": summary(samples["vector"]),
            "text_search": summary(samples["text"]),
            "vector_resumable_start": summary(samples["vstart"]),
            "text_resumable_start": summary(samples["tstart"]),
        }

    # --- capacity ------------------------------------------------------------------------
    async def _capacity(
        self, server: BenchServer, api: Api, name: str, ds: Dataset, instance: str
    ) -> None:
        cfg = self.config
        pids_before = db_probes.host_backend_pids(self.url, instance)
        backends_before = probes.smaps_kb(pids_before)
        rss_before = probes.rss_kb(server.pid)
        opener = Api(server.url, connections=OPEN_CONCURRENCY, retries=self.retries)
        handles: list[str] = []
        rng = random.Random(cfg.seed)
        rows: list[dict[str, Any]] = []
        try:
            for target in sorted(cfg.capacity):
                need = target - len(handles)
                vectors = ds.sample(need, cfg.seed + target)
                title = f"opening {target:,} handles"
                with self.steps.section(f"capacity_{target}", title, need) as step:

                    async def open_one(v: Any) -> str:
                        body, _ = await opener.start(name, vec(v), cfg.page)
                        step(1)
                        return str(body["handle"])

                    t0 = time.perf_counter()
                    handles += await bounded(
                        OPEN_CONCURRENCY, [partial(open_one, v) for v in vectors]
                    )
                    open_s = time.perf_counter() - t0
                pids = sorted(
                    set(pids_before) | set(db_probes.host_backend_pids(self.url, instance))
                )
                backends = probes.smaps_kb(pids)
                rss = probes.rss_kb(server.pid)
                probes_ns: list[int] = []
                title = f"next across {target:,} handles"
                key = f"capacity_next_{target}"
                with self.steps.section(key, title, cfg.capacity_probes) as step:
                    for _ in range(cfg.capacity_probes):
                        probes_ns.append((await api.next(rng.choice(handles), cfg.page))[1])
                        step(1)
                rows.append(
                    self._capacity_row(
                        target, open_s, backends_before, backends, rss_before, rss, pids, probes_ns
                    )
                )
        finally:
            await opener.close()
        self.results["capacity"] = rows

    @staticmethod
    def _capacity_row(
        handles: int,
        open_s: float,
        before: dict[str, int] | None,
        after: dict[str, int] | None,
        rss_before: int | None,
        rss_after: int | None,
        pids: list[int],
        next_ns: list[int],
    ) -> dict[str, Any]:
        anon_kb = pss_kb = None
        if before is not None and after is not None:
            anon_kb = after["Pss_Anon"] - before["Pss_Anon"]
            pss_kb = after["Pss"] - before["Pss"]
        server_kb = None if rss_before is None or rss_after is None else rss_after - rss_before
        total_kb = None if anon_kb is None or server_kb is None else anon_kb + server_kb
        stats = summary(next_ns) or {}

        def per_handle(kb: int | None) -> float | None:
            return None if kb is None else round(kb / 1024 / handles, 4)

        return {
            "handles": handles,
            "open_s": round(open_s, 2),
            "opens_per_s": round(handles / open_s, 1) if open_s > 0 else None,
            "host_backends": len(pids),
            "backend_pss_delta_mb": mb(pss_kb),
            "backend_anon_delta_mb": mb(anon_kb),
            "server_rss_delta_mb": mb(server_kb),
            "mb_per_handle": per_handle(total_kb),
            "backend_mb_per_handle": per_handle(anon_kb),
            "server_mb_per_handle": per_handle(server_kb),
            "next_p50_ms": stats.get("p50_ms"),
            "next_p99_ms": stats.get("p99_ms"),
        }

    # --- cleanup -------------------------------------------------------------------------
    async def _cleanup(self) -> None:
        """With the server stopped (its cursors are gone): drop the bench collections (their
        handles go with them), or with ``keep`` close the handles still marked active."""
        if not self.created:
            return
        async with Runtime.open(self.settings, self.url, serve=False) as rt:
            for name in self.created:
                if self.config.keep:
                    active = await rt.admin.list_handles(
                        collection=name, state="active", limit=1_000_000
                    )
                    await rt.admin.stop_handles([h.id for h in active], "closed by pgpager bench")
                else:
                    try:
                        await rt.collections.drop(name)
                    except Exception as exc:
                        self.warnings.append(f"could not drop collection {name}: {exc}")
        if self.config.keep:
            self.results["kept_collections"] = list(self.created)


def _error_message(r: httpx.Response) -> str:
    try:
        error = r.json().get("error")
    except ValueError:
        return f"{r.status_code} {r.text[:300]}"
    message = error.get("message") if isinstance(error, dict) else error
    return f"{r.status_code} {message}"


@contextlib.asynccontextmanager
async def connect_collection(settings: Settings, url: str, name: str) -> AsyncIterator[Collection]:
    async with Runtime.open(settings, url, serve=False) as rt:
        yield await rt.collections.get(name)


def run_bench(settings: Settings, config: BenchConfig) -> Path:
    """Run every section, then print the tables and write the JSON file and plots.

    Returns the JSON file's path. Progress goes to stderr, the tables to stdout.
    """
    err = Console(stderr=True)
    with database(settings) as url, Steps(err) as steps:
        bench = Bench(config, settings, url, steps, embedded=not settings.database_url)
        results = asyncio.run(bench.run())
    results["targets"] = report.targets(results)
    results["plots"] = [str(p) for p in report.plot(results, config.out_dir)]
    path = report.write_json(results, config.out_dir)
    out = Console()
    if not out.is_terminal:
        out = Console(width=120)  # a log or a pipe: wide enough that the tables do not wrap
    report.render(results, out)
    out.print(
        f"results: {path}" + "".join(f"\nplot: {p}" for p in results["plots"]), highlight=False
    )
    if not results["plots"]:
        out.print("no plots: install matplotlib (pip install 'pgpager[bench]')")
    return path
