"""``pgpager bench --quick`` runs to the end against a real database and writes a well-formed
JSON file. Timings are never asserted: they depend on the machine."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

pytestmark = pytest.mark.slow


def numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in numbers(v)]
    return []


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} in the JSON file")


def test_quick_bench_completes_with_well_formed_results(
    fresh_db_url: str, tmp_path: Path, model_dir: Path, model_cache_dir: Path
) -> None:
    # A database of its own: the capacity section keeps 1,000 handles open, which would count
    # against the active-handle cap of tests sharing a database.
    out = tmp_path / "results"
    env = {
        **os.environ,
        "PGPAGER_DATABASE_URL": fresh_db_url,
        # The text section's model, from PyPI packages (no model hub here).
        "PGPAGER_EMBEDDING_MODEL_DIR": str(model_dir),
        "PGPAGER_MODEL_CACHE_DIR": str(model_cache_dir),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pgpager", "bench", "--quick", "--out-dir", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    files = sorted(out.glob("bench-*.json"))
    assert len(files) == 1
    results = json.loads(files[0].read_text(), parse_constant=reject_constant)
    assert all(math.isfinite(n) for n in numbers(results))

    for key in (
        "machine",
        "parameters",
        "ingest",
        "latency_by_depth",
        "start_latency",
        "throughput",
        "capacity",
        "quality",
        "targets",
    ):
        assert key in results, key
    assert results["parameters"]["quick"] is True
    machine = {"cpu_count", "memory_gb", "platform", "postgres", "pgvector"}
    assert machine <= results["machine"].keys()

    latency = results["latency_by_depth"]
    for method in ("resumable_next", "sql_fetch"):
        assert latency[method]["available"]
        for depth in map(str, results["parameters"]["depths"]):
            assert latency[method]["depths"][depth]["p50_ms"] > 0
    for method in ("offset_search", "stored_query_pages"):
        assert "available" in latency[method]
    # The server's own next latency, read from its /metrics histogram.
    nxt = latency["resumable_next"]
    assert nxt["server_p50_ms"] > 0 and nxt["server_mean_ms"] > 0
    assert "resumable next inside the server (its metrics): p50" in proc.stdout
    # Starts and plain top-10 searches are measured in pairs, moments apart: two per vector.
    st, params = results["start_latency"], results["parameters"]
    pairs = 2 * params["first_page_queries"]
    assert st["resumable_start"]["n"] == st["topk_search"]["n"] == pairs
    # Each timed section waited for the cleanup of the ones before it (bounded).
    assert set(results["settled_s"]) == {"depth", "throughput", "lean_next"}
    assert all(0 <= s < 90 for s in results["settled_s"].values())
    commit = results["floors"]["durable_commit"]
    assert commit["n"] == 500 and commit["p50_ms"] > 0
    assert "durable commit of a page's ids" in proc.stdout

    assert [t["clients"] for t in results["throughput"]] == results["parameters"]["clients"]
    assert all(t["requests"] > 0 for t in results["throughput"])
    if "PGPAGER_TEST_DATABASE_URL" not in os.environ:
        # Where the cores went: the embedded PostgreSQL's processes are on this machine.
        assert all(t["postgres_cpu_ms_per_request"] > 0 for t in results["throughput"])
        assert all(t["postgres_cores_busy"] > 0 for t in results["throughput"])
    assert [c["handles"] for c in results["capacity"]] == results["parameters"]["capacity"]
    assert results["lean_client_next"]["n"] > 0 and results["lean_client_next"]["p50_ms"] > 0
    # Each single-client HTTP figure beside the same client's round trip to a bare server
    # answering a real next's bytes, as many calls each, in the same rounds.
    floor = results["http_floor"]
    assert floor["body_bytes"] > 100
    for client, measured in (("lean", "lean_client_next"), ("httpx", "httpx_client_next")):
        assert floor[client]["n"] == results[measured]["n"] == 200
        assert floor[client]["p50_ms"] > 0
    assert "  bare HTTP + FETCH 10 + durable commit (the figure's floor)" in {
        t["name"] for t in results["targets"]
    }

    quality = results["quality"]
    assert quality["duplicates"] == 0
    assert quality["completeness"]["ratio"] == 1.0
    assert quality["completeness"]["missing"] == 0
    assert set(quality["recall"]) == {str(d) for d in results["parameters"]["depths"]}
    assert all(0.0 <= r <= 1.0 for r in quality["recall"].values())
    assert results["ingest"]["load_file"]["rows"] == results["parameters"]["rows"]
    floor = results["ingest"]["insert_floor"]
    assert floor["rows"] == results["ingest"]["upsert_api"]["rows"] and floor["rows_per_s"] > 0
    assert "same rows by COPY into the same index" in proc.stdout

    text = results["text"]
    assert text["available"], text
    assert text["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert text["upsert"]["texts"] == results["parameters"]["text_rows"]
    assert text["upsert"]["texts_per_s"] > 0
    for key in ("vector_search", "text_search", "vector_resumable_start", "text_resumable_start"):
        assert text["query_latency"][key]["p50_ms"] > 0
    assert "texts/s" in proc.stdout

    # First-page recall over more queries than the walks use, for every style.
    first = quality["first_page_recall"]
    assert set(first) == {"resumable", "offset", "stored"}
    for fp in first.values():
        assert fp["queries"] == results["parameters"]["first_page_queries"] == 20
        assert 0.0 <= fp["min"] <= fp["mean"] <= 1.0 and 0 <= fp["under_half"] <= 20
    assert "first-page recall@10 over 20 queries" in proc.stdout

    # Filtered first pages, against the exact nearest rows that match: both filters match at
    # most the flat-search cutoff at this size, so every style serves them exactly.
    filtered = quality["filtered_recall"]
    assert set(filtered) == {"bucket = 0", "bucket < 2"}
    assert [f["matching"] for f in filtered.values()] == [1_000, 2_000]
    for f in filtered.values():
        assert f["served_by"] == "exact" and f["queries"] == 10
        assert set(f["styles"]) == {"resumable", "offset", "stored"}
        assert all(s["min"] == s["mean"] == 1.0 for s in f["styles"].values()), f
    assert "filter bucket < 2 (2,000 of 3,000 rows, exact" in proc.stdout

    names = {t["name"] for t in results["targets"]}
    assert "recall@10, first page, offset (20 queries)" in names
    # The first 100 / 1,000 rows of each style, on the same larger set of queries.
    assert quality["recall_by_style_queries"] == 20
    assert set(quality["recall_by_style"]) == {"resumable", "offset", "stored"}
    assert {"recall@100, offset (20 queries)", "recall@1000, stored (20 queries)"} <= names
    assert {"duplicates", "completeness"} <= names
    assert "targets" in proc.stdout.lower()
    assert (out / "latency_vs_depth.png").stat().st_size > 0
    assert (out / "throughput_vs_clients.png").stat().st_size > 0

    # Without --keep the bench leaves nothing behind: its collections (and handles) are gone.
    with psycopg.connect(fresh_db_url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pgpager.collections WHERE name LIKE 'bench%'"
        ).fetchone()
        active = conn.execute(
            "SELECT count(*) FROM pgpager.query_sessions WHERE state = 'active'"
        ).fetchone()
        # Nor the floor's scratch table.
        scratch = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'pgpager_bench_commit_floor%'"
        ).fetchone()
    assert left == (0,)
    assert active == (0,)
    assert scratch == (0,)


async def test_the_text_section_is_skipped_with_a_note_without_a_model(
    pg_url: str, tmp_path: Path, server_factory: Any
) -> None:
    import io

    from rich.console import Console

    from pgpager.bench.report import _render_text
    from pgpager.bench.runner import Bench, BenchConfig, Steps
    from pgpager.bench.server import Api
    from pgpager.settings import Settings

    empty = tmp_path / "no-models"
    empty.mkdir()
    server = server_factory(
        pg_url, PGPAGER_EMBEDDING_MODEL_DIR=str(empty), PGPAGER_MODEL_CACHE_DIR=str(empty)
    )
    server.start()
    out = io.StringIO()
    console = Console(file=out, width=200)
    with Steps(console) as steps:
        bench = Bench(BenchConfig.preset(True), Settings.from_env(), pg_url, steps, embedded=False)
        api = Api(server.url)
        try:
            await bench._text(api)
        finally:
            await api.close()
    text = bench.results["text"]
    assert text["available"] is False
    assert text["reason"].startswith("503 embedding model sentence-transformers/all-MiniLM-L6-v2")
    assert bench.created == []
    (warning,) = bench.warnings
    assert warning.startswith("text section skipped") and "pgpager models fetch" in warning
    _render_text(text, console)
    assert "n/a (503 embedding model" in out.getvalue()


def test_the_server_histogram_gives_the_calls_between_two_readings_and_their_p50() -> None:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from pgpager.bench.server import NextLatency
    from pgpager.metrics import NEXT_BUCKETS

    registry = CollectorRegistry()
    # The server's histogram (its buckets), registered apart.
    h = Histogram("pgpager_next_latency_seconds", "t", buckets=NEXT_BUCKETS, registry=registry)
    for _ in range(50):
        h.observe(0.2)  # before: slow calls that must not count
    before = NextLatency.parse(generate_latest(registry).decode())
    for ms in (0.31, 0.33, 0.35, 0.37, 0.45, 0.55, 0.9):
        h.observe(ms / 1000)
    calls = NextLatency.parse(generate_latest(registry).decode()).since(before)
    assert calls.count == 7
    assert calls.mean_ms() == pytest.approx(
        sum((0.31, 0.33, 0.35, 0.37, 0.45, 0.55, 0.9)) / 7, abs=1e-3
    )
    # The 4th of 7 calls is the median (0.37 ms): in the 0.3-0.4 ms bucket, where four of the
    # seven fall, so the interpolated p50 is 0.3 + 0.1 * 3.5 / 4.
    assert calls.quantile_ms(0.5) == pytest.approx(0.3875, abs=1e-3)
    assert 0.3 <= calls.quantile_ms(0.5) <= 0.4  # type: ignore[operator]
    # A rank in the open-ended bucket has no value.
    h.observe(100)
    h.observe(100)
    late = NextLatency.parse(generate_latest(registry).decode()).since(before)
    assert late.quantile_ms(1.0) is None


def test_the_held_out_queries_do_not_change_the_rows() -> None:
    """The bench draws its extra queries from the same mixture as the rows it loads; asking for
    more of them must not change those rows (a run stays comparable with earlier ones)."""
    import numpy as np

    from pgpager.bench.data import clustered

    rows = clustered(500, 32, seed=7)
    more = clustered(500, 32, seed=7, held_out=40)
    assert more.shape == (540, 32)
    assert np.array_equal(more[:500], rows)
    # The extra ones are new points of the mixture: near the rows, none of them a copy.
    nearest = np.min(np.linalg.norm(more[500:, None, :] - rows[None, :, :], axis=2), axis=1)
    spread = np.median(np.linalg.norm(rows[:, None, :] - rows[None, :50, :], axis=2))
    assert np.all(nearest > 0) and np.median(nearest) < spread


def test_settle_waits_for_the_purge_of_closed_handles(fresh_db_url: str) -> None:
    """The bench's wait between sections ends when no closed handle has delivered ids left
    (the sweeper's purge, done here by hand half a second in), not before, and at once when
    there is nothing to purge."""
    import threading
    import time

    from pgpager.store.probes import settle

    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        assert settle(fresh_db_url, 5.0) < 2.0
        conn.execute(
            "INSERT INTO pgpager.collections (name, dimension, metric, table_name) "
            "VALUES ('settle', 3, 'cosine', 'settle')"
        )
        conn.execute(
            "INSERT INTO pgpager.query_sessions (id, collection, query, max_idle_s, "
            "max_lifetime_s, state) VALUES ('h', 'settle', '{}', 60, 60, 'stopped')"
        )
        conn.execute("INSERT INTO pgpager.query_session_rows VALUES ('h', 'a'), ('h', 'b')")

    def purge() -> None:
        time.sleep(0.5)
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            conn.execute("DELETE FROM pgpager.query_session_rows WHERE session_id = 'h'")

    worker = threading.Thread(target=purge)
    worker.start()
    waited = settle(fresh_db_url, 10.0)
    worker.join()
    assert 0.5 <= waited < 5.0
