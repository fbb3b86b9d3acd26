"""``pgpager bench``: the benchmark against a real ``pgpager serve``."""

from __future__ import annotations

from pathlib import Path

import click

from pgpager.cli.common import Obj


@click.command()
@click.option(
    "--quick",
    is_flag=True,
    help="CI-sized run: 20,000 x 64, depths to 1,000, 1,000 handles; under 2 minutes.",
)
@click.option("--rows", type=int, help="Synthetic rows.  [default: 100000; --quick: 20000]")
@click.option("--dim", type=int, help="Synthetic dimensions.  [default: 128; --quick: 64]")
@click.option("--seed", type=int, help="Seed of the synthetic data.  [default: 7]")
@click.option(
    "--npy",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Use these embeddings (a 2-d .npy) instead of synthetic data.",
)
@click.option("--queries", type=int, help="Query vectors.  [default: 20; --quick: 5]")
@click.option(
    "--metric",
    type=click.Choice(["cosine", "euclidean", "dot_product"]),
    default="cosine",
    show_default=True,
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bench-results"),
    show_default=True,
    help="Where the JSON file and plots go.",
)
@click.option(
    "--text-model",
    help="Embedding model of the text section (it needs the model on this host, see "
    "'pgpager models list').  [default: sentence-transformers/all-MiniLM-L6-v2]",
)
@click.option("--keep", is_flag=True, help="Keep the bench_<random> collections.")
@click.pass_obj
def bench(
    obj: Obj,
    quick: bool,
    rows: int | None,
    dim: int | None,
    seed: int | None,
    npy: Path | None,
    queries: int | None,
    metric: str,
    out_dir: Path,
    text_model: str | None,
    keep: bool,
) -> None:
    """Measure pagination latency by depth, throughput, capacity, recall and ingest rate, and
    embedding throughput and text-query latency, against a real `pgpager serve` started on a
    free loopback port."""
    from pgpager.bench.runner import BenchConfig, run_bench

    config = BenchConfig.preset(quick).with_(
        rows=rows,
        dim=dim,
        seed=seed,
        npy=npy,
        queries=queries,
        metric=metric,
        out_dir=out_dir,
        text_model=text_model,
        keep=keep,
    )
    run_bench(obj.settings(), config)
