"""Rendering a benchmark run: target verdicts, rich tables, the JSON file and the plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

METHOD_LABELS = {
    "resumable_next": "resumable next",
    "offset_search": "offset search",
    "stored_query_pages": "stored query pages",
    "sql_fetch": "raw SQL FETCH (floor)",
}


def _p50(results: dict[str, Any], method: str, depth: int, stat: str = "p50_ms") -> float | None:
    entry = results["latency_by_depth"].get(method, {})
    s = entry.get("depths", {}).get(str(depth)) if entry.get("available") else None
    return None if not s else float(s[stat])


def _target(
    name: str, target: str, measured: float | None, unit: str, met: bool | None
) -> dict[str, Any]:
    return {"name": name, "target": target, "measured": measured, "unit": unit, "met": met}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with what was measured and whether it was met (None: n/a)."""
    depths = sorted(int(d) for d in results["parameters"]["depths"])
    shallow, deep = depths[0], depths[-1]
    out: list[dict[str, Any]] = []

    ratio = results["latency_by_depth"]["resumable_next"]["deep_shallow_ratio"]
    out.append(
        _target(
            f"resumable next p50, depth {deep:,} vs {shallow}",
            "<= 1.2x",
            ratio,
            "x",
            None if ratio is None else ratio <= 1.2,
        )
    )

    off, nxt = _p50(results, "offset_search", deep), _p50(results, "resumable_next", deep)
    slower = round(off / nxt, 1) if off is not None and nxt else None
    out.append(
        _target(
            f"offset search vs resumable next at depth {deep:,}",
            ">= 50x slower",
            slower,
            "x",
            None if slower is None else slower >= 50,
        )
    )

    lean = results.get("lean_client_next") or {}
    p50 = lean.get("p50_ms")
    out.append(
        _target(
            "next p50 over HTTP, 1 client (stdlib http.client)",
            "<= 1.0 ms",
            p50,
            "ms",
            None if p50 is None else p50 <= 1.0,
        )
    )
    out.extend(_http_floor(results, "lean", shallow))
    one = results.get("httpx_client_next") or next(
        (t for t in results["throughput"] if t["clients"] == 1), None
    )
    p50 = one["p50_ms"] if one else None
    out.append(
        _target(
            "next p50 over HTTP, 1 client (httpx AsyncClient)",
            "<= 1.6 ms",
            p50,
            "ms",
            None if p50 is None else p50 <= 1.6,
        )
    )
    out.extend(_http_floor(results, "httpx", shallow))
    out.extend(_cost_targets(results, shallow))

    cap = max(results["capacity"], key=lambda r: r["handles"], default=None)
    per = cap["mb_per_handle"] if cap else None
    label = f"memory per handle at {cap['handles']:,} open" if cap else "memory per handle"
    out.append(_target(label, "<= 0.5 MB", per, "MB", None if per is None else per <= 0.5))

    recall = results["quality"]["recall"]
    at = "1000" if "1000" in recall else max(recall, key=int)
    r = recall.get(at)
    out.append(_target(f"recall@{at}", ">= 0.95", r, "", None if r is None else r >= 0.95))

    deep_recall = recall.get("10000")
    if deep_recall is not None:
        met = deep_recall >= 0.95
        out.append(_target("recall@10000 of resumable pages", ">= 0.95", deep_recall, "", met))
    first = results["quality"].get("first_page_recall", {})
    for style, fp in first.items():
        r10 = fp["mean"]
        label = f"recall@10, first page, {style} ({fp['queries']} queries)"
        out.append(_target(label, ">= 0.97", r10, "", r10 >= 0.97))
    for text, f in results["quality"].get("filtered_recall", {}).items():
        # An exact scan misses nothing; the index's first page is held to the unfiltered goal.
        worst = min(s["mean"] for s in f["styles"].values())
        goal = 1.0 if f["served_by"] == "exact" else 0.97
        label = (
            f"recall@10, first page, filter {text} ({f['matching']:,} of {f['rows']:,} rows: "
            f"{f['served_by']}), worst style"
        )
        out.append(_target(label, f">= {goal}", worst, "", worst >= goal))
    n = results["quality"].get("recall_by_style_queries")
    for style, by_k in results["quality"].get("recall_by_style", {}).items():
        # The deeper rows of the styles that read the index once (the issue's >= 0.95).
        for k in ("100", "1000") if style in ("offset", "stored") else ():
            r = by_k.get(k)
            label = f"recall@{k}, {style} ({n} queries)"
            out.append(_target(label, ">= 0.95", r, "", None if r is None else r >= 0.95))
    switch = (results.get("exact_switch") or {}).get("crossing_next") or {}
    p50 = switch.get("p50_ms")
    out.append(
        _target(
            f"exact-phase switch on {results['parameters']['rows']:,} rows (the next crossing it)",
            "<= 150 ms",
            p50,
            "ms",
            None if p50 is None else p50 <= 150,
        )
    )

    dup = results["quality"]["duplicates"]
    out.append(_target("duplicates", "0", dup, "", dup == 0))

    comp = results["quality"]["completeness"]["ratio"]
    out.append(_target("completeness", "100%", round(comp * 100, 3), "%", comp == 1.0))
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _http_floor(results: dict[str, Any], client: str, shallow: int) -> list[dict[str, Any]]:
    """What stops the HTTP figure above: the same client's round trip to a bare server answering
    the same bytes, plus the two database floors under a next (FETCH and durable commit)."""
    bare = ((results.get("http_floor") or {}).get(client) or {}).get("p50_ms")
    if bare is None:
        return []
    fetch = _p50(results, "sql_fetch", shallow)
    commit = ((results.get("floors") or {}).get("durable_commit") or {}).get("p50_ms")
    out = [_target("  bare HTTP round trip, same client and body (floor)", "-", bare, "ms", None)]
    if fetch is not None and commit is not None:
        floor = round(bare + fetch + commit, 3)
        label = "  bare HTTP + FETCH 10 + durable commit (the figure's floor)"
        out.append(_target(label, "-", floor, "ms", None))
    return out


def _cost_targets(results: dict[str, Any], shallow: int) -> list[dict[str, Any]]:
    """Issue 15: every page near PostgreSQL's own cost (as ratios where a ratio is meaningful)."""
    out: list[dict[str, Any]] = []
    # Like for like: the p50 of the server's own next histogram against the FETCH's p50 (the
    # mean, which the exact-phase switch and every tail weigh on, is reported beside it).
    nxt = results["latency_by_depth"]["resumable_next"]
    fetch = _p50(results, "sql_fetch", shallow)
    x = _ratio(nxt.get("server_p50_ms"), fetch)
    label = "next inside the server (p50 of its metric) vs raw SQL FETCH 10"
    out.append(_target(label, "<= 3x", x, "x", None if x is None else x <= 3))
    x = _ratio(nxt.get("server_mean_ms"), _p50(results, "sql_fetch", shallow, "mean_ms"))
    out.append(_target("the same, means", "-", x, "x", None))
    # What stops the ratio above: a next is a FETCH plus a durable write of the ids it
    # delivers (the "no row twice, after any restart" guarantee); that write's commit waits
    # for a WAL flush. Reported against the two floors together, no target of its own.
    commit = (results.get("floors") or {}).get("durable_commit")
    both = None if commit is None or fetch is None else fetch + commit["p50_ms"]
    x = _ratio(nxt.get("server_p50_ms"), both)
    label = "next inside the server vs FETCH 10 + durable commit, p50"
    out.append(_target(label, "-", x, "x", None))

    at32 = next((t for t in results["throughput"] if t["clients"] == 32), None)
    rps = at32["requests_per_s"] if at32 else None
    label = "next throughput, 32 clients"
    out.append(_target(label, ">= 1,500 req/s", rps, "req/s", None if rps is None else rps >= 1500))

    st = results["start_latency"]
    start, topk = st.get("resumable_start"), st.get("topk_search")
    x = _ratio(start and start["p50_ms"], topk and topk["p50_ms"])
    label = "resumable start vs plain top-10 search (p50)"
    out.append(_target(label, "<= 1.2x", x, "x", None if x is None else x <= 1.2))

    ingest = results.get("ingest", {})
    up = (ingest.get("upsert_api") or {}).get("rows_per_s")
    label = "upsert API, batches of 500"
    out.append(_target(label, ">= 8,000 rows/s", up, "rows/s", None if up is None else up >= 8000))
    # What stops it: PostgreSQL's own insert of the same rows into the same index.
    floor = (ingest.get("insert_floor") or {}).get("rows_per_s")
    label = "  the same rows by COPY, same batches, same HNSW index (floor)"
    out.append(_target(label, "-", floor, "rows/s", None))
    load = (ingest.get("load_file") or {}).get("copy_rows_per_s")
    label = "pgpager load without index (binary COPY)"
    met = None if load is None else load >= 150_000
    out.append(_target(label, ">= 150,000 rows/s", load, "rows/s", met))
    return out


def write_json(results: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = results["started_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    path = out_dir / f"bench-{stamp}.json"
    text = json.dumps(results, indent=2, allow_nan=False, default=str)
    path.write_text(text + "\n")
    (out_dir / "latest.json").write_text(text + "\n")
    return path


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """latency-vs-depth (log-log, one line per method) and throughput-vs-clients PNGs."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    params = results["parameters"]
    subtitle = f"{params['rows']:,} x {params['dim']}, {results['machine']['cpu_count']} CPUs"

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, entry in results["latency_by_depth"].items():
        if not entry.get("available"):
            continue
        pts = sorted((int(d), s["p50_ms"]) for d, s in entry["depths"].items() if s)
        if pts:
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker="o",
                label=METHOD_LABELS.get(method, method),
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("depth (rows before the page)")
    ax.set_ylabel("p50 latency per page of 10 (ms)")
    ax.set_title(f"Page latency by depth ({subtitle})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths.append(out_dir / "latency_vs_depth.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    rows = results["throughput"]
    clients = [r["clients"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(clients, [r["requests_per_s"] for r in rows], marker="o", label="requests/s")
    ax.set_xscale("log", base=2)
    ax.set_xticks(clients, [str(c) for c in clients])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("concurrent clients (one handle each)")
    ax.set_ylabel("next requests/s")
    ax.set_title(f"Resumable next throughput ({subtitle})")
    ax.grid(True, which="both", alpha=0.3)
    p50 = ax.twinx()
    p50.plot(
        clients,
        [r["p50_ms"] for r in rows],
        marker="s",
        linestyle="--",
        color="tab:orange",
        label="p50 ms",
    )
    p50.set_ylabel("p50 latency (ms)")
    p50.set_ylim(bottom=0)
    fig.legend(loc="upper left", bbox_to_anchor=(0.1, 0.9))
    fig.tight_layout()
    paths.append(out_dir / "throughput_vs_clients.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


def _ms(s: dict[str, Any] | None, key: str = "p50_ms") -> str:
    return "n/a" if not s or s.get(key) is None else f"{s[key]:.2f}"


def _num(v: Any, fmt: str = "{:,.2f}") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return fmt.format(v)


def _render_text(text: dict[str, Any] | None, console: Console) -> None:
    if not text:
        return
    if not text.get("available"):
        console.print(f"text ({text['model']}): n/a ({text.get('reason')})", highlight=False)
        return
    up, q = text["upsert"], text["query_latency"]
    t = Table(title=f"Text: {text['model']}")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_row(
        f"embedding throughput, upsert of {up['texts']:,} texts in batches of {up['batch']}",
        f"{_num(up['texts_per_s'], '{:,.1f}')} texts/s",
    )
    t.add_row(
        f"upsert of a batch of {up['batch']} texts, p50 / p99 ms",
        f"{_ms(up['batch_latency'])} / {_ms(up['batch_latency'], 'p99_ms')}",
    )
    for key, label in (
        ("vector_search", "top-10 search by vector"),
        ("text_search", "top-10 search by text"),
        ("vector_resumable_start", "resumable start by vector"),
        ("text_resumable_start", "resumable start by text"),
    ):
        t.add_row(f"{label}, p50 / p99 ms", f"{_ms(q[key])} / {_ms(q[key], 'p99_ms')}")
    console.print(t)


def render(results: dict[str, Any], console: Console) -> None:
    m, p = results["machine"], results["parameters"]
    console.print(
        f"[bold]pgpager bench[/]: {p['rows']:,} x {p['dim']} {p['metric']} ({p['data']}), "
        f"{p['queries']} queries, ef_search {p['server_settings']['hnsw_ef_search']}; "
        f"{m['cpu_count']} CPUs, {m['memory_gb']} GB, PostgreSQL {m['postgres']}, "
        f"pgvector {m['pgvector']} ({p['database']}); {results['duration_s']} s"
    )
    depths = [str(d) for d in p["depths"]]

    t = Table(title="Page latency by depth (page of 10): p50 / p99 ms")
    t.add_column("method")
    for d in depths:
        t.add_column(f"depth {int(d):,}", justify="right")
    t.add_column("deep/shallow", justify="right")
    for method, entry in results["latency_by_depth"].items():
        label = METHOD_LABELS.get(method, method)
        if not entry.get("available"):
            t.add_row(label, *["n/a"] * len(depths), "n/a")
            continue
        cells = [
            f"{_ms(entry['depths'].get(d))} / {_ms(entry['depths'].get(d), 'p99_ms')}"
            for d in depths
        ]
        t.add_row(label, *cells, _num(entry["deep_shallow_ratio"], "{:.2f}x"))
    console.print(t)
    nxt = results["latency_by_depth"]["resumable_next"]
    if nxt.get("server_mean_ms") is not None:
        console.print(
            f"resumable next inside the server (its metrics): p50 {_num(nxt.get('server_p50_ms'))}"
            f" ms, mean {nxt['server_mean_ms']:.2f} ms; the rest of the latency is HTTP and the "
            "client",
            highlight=False,
        )
    commit = (results.get("floors") or {}).get("durable_commit")
    if commit is not None:
        console.print(
            f"durable commit of a page's ids (one INSERT that waits for its WAL flush, the "
            f"floor under a next's delivery record): {_ms(commit)} / {_ms(commit, 'p99_ms')} ms",
            highlight=False,
        )

    st = results["start_latency"]
    t = Table(title="Start latency: p50 / p99 ms")
    t.add_column("call")
    t.add_column("p50 / p99", justify="right")
    for key, label in (
        ("resumable_start", "resumable query start (first page)"),
        ("topk_search", "plain top-10 search (offset 0)"),
        ("stored_query_create", "stored query create"),
    ):
        t.add_row(label, f"{_ms(st.get(key))} / {_ms(st.get(key), 'p99_ms')}")
    console.print(t)

    t = Table(title="Resumable next throughput (one handle per client)")
    for col in (
        "clients",
        "requests/s",
        "p50 ms",
        "p99 ms",
        "CPU ms/req: server",
        "PostgreSQL",
        "client",
        "cores: server",
        "PostgreSQL",
    ):
        t.add_column(col, justify="right")
    for r in results["throughput"]:
        t.add_row(
            str(r["clients"]),
            _num(r["requests_per_s"], "{:,.0f}"),
            _num(r["p50_ms"]),
            _num(r["p99_ms"]),
            _num(r.get("server_cpu_ms_per_request")),
            _num(r.get("postgres_cpu_ms_per_request")),
            _num(r.get("client_cpu_ms_per_request")),
            _num(r.get("server_cores_busy")),
            _num(r.get("postgres_cores_busy")),
        )
    console.print(t)

    t = Table(title="Capacity: handles open at once")
    for col in (
        "handles",
        "open/s",
        "backend MB",
        "server MB",
        "MB/handle",
        "next p50",
        "next p99",
    ):
        t.add_column(col, justify="right")
    for r in results["capacity"]:
        t.add_row(
            f"{r['handles']:,}",
            _num(r["opens_per_s"], "{:,.0f}"),
            _num(r["backend_anon_delta_mb"], "{:,.1f}"),
            _num(r["server_rss_delta_mb"], "{:,.1f}"),
            _num(r["mb_per_handle"], "{:.3f}"),
            _num(r["next_p50_ms"]),
            _num(r["next_p99_ms"]),
        )
    console.print(t)

    q, ing = results["quality"], results["ingest"]
    t = Table(title="Quality and ingest")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for d, r in q["recall"].items():
        t.add_row(f"recall@{int(d):,} (mean / min)", f"{r:.4f} / {q['recall_min'][d]:.4f}")
    n = q.get("recall_by_style_queries")
    for style, by_k in q.get("recall_by_style", {}).items():
        recalls = " / ".join(f"{v:.4f}" for v in by_k.values())
        t.add_row(f"{style}: recall@{' / @'.join(by_k)} (first rows, {n} queries)", recalls)
    for style, fp in q.get("first_page_recall", {}).items():
        t.add_row(
            f"{style}: first-page recall@10 over {fp['queries']} queries, mean / min "
            "(queries under 0.5)",
            f"{fp['mean']:.4f} / {fp['min']:.4f} ({fp['under_half']})",
        )
    for text, f in q.get("filtered_recall", {}).items():
        for style, s in f["styles"].items():
            t.add_row(
                f"{style}: first-page recall@10, filter {text} ({f['matching']:,} of "
                f"{f['rows']:,} rows, {f['served_by']}; {f['queries']} queries), mean / min",
                f"{s['mean']:.4f} / {s['min']:.4f}",
            )
    switch = results.get("exact_switch") or {}
    if switch.get("crossing_next"):
        t.add_row(
            f"exact-phase switch: the next crossing it, p50 / max ms (at {switch['positions']})",
            f"{_ms(switch['crossing_next'])} / {_num(switch['crossing_max_ms'])}",
        )
        t.add_row("  next (10) just before the switch, p50 ms", _ms(switch["next_before_it"]))
    c = q["completeness"]
    t.add_row("duplicates", str(q["duplicates"]))
    t.add_row(
        f"completeness ({c['rows']:,} rows, ended in {c['final_phase']} phase)",
        f"{c['ratio'] * 100:.3f}%",
    )
    lf, up = ing["load_file"], ing["upsert_api"]
    t.add_row("load (binary COPY), rows/s", _num(lf["copy_rows_per_s"], "{:,.0f}"))
    t.add_row(
        f"load incl. HNSW build ({lf['index_build_s']} s), rows/s",
        _num(lf["rows_per_s_with_index"], "{:,.0f}"),
    )
    t.add_row(f"upsert API, batches of {up['batch']}, rows/s", _num(up["rows_per_s"], "{:,.0f}"))
    floor = ing.get("insert_floor")
    if floor is not None:
        t.add_row(
            "  the same rows by COPY into the same index (floor), rows/s",
            _num(floor["rows_per_s"], "{:,.0f}"),
        )
    console.print(t)

    _render_text(results.get("text"), console)

    t = Table(title="Targets (reported, not asserted)")
    for col in ("target", "goal", "measured", "verdict"):
        t.add_column(col, justify="left" if col == "target" else "right")
    for tg in results["targets"]:
        verdict = {True: "[green]met[/]", False: "[red]missed[/]", None: "n/a"}[tg["met"]]
        measured = "n/a" if tg["measured"] is None else f"{tg['measured']}{tg['unit']}"
        t.add_row(tg["name"], tg["target"], measured, verdict)
    console.print(t)
    if results.get("transport_retries"):
        console.print(
            f"retried after a dropped connection: {results['transport_retries']}", highlight=False
        )
    for warning in results.get("warnings", []):
        console.print(f"warning: {warning}", highlight=False)
    if results.get("transport_retries"):
        console.print(
            f"retried after a dropped connection: {results['transport_retries']}", highlight=False
        )
    for warning in results.get("warnings", []):
        console.print(f"warning: {warning}", highlight=False)
    for method, entry in results["latency_by_depth"].items():
        if not entry.get("available"):
            console.print(f"{METHOD_LABELS[method]}: n/a ({entry.get('reason')})", highlight=False)
