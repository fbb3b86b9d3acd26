"""``pgpager load``: bulk loading from .npy and .jsonl files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pgpager.cli.common import Obj, with_runtime

if TYPE_CHECKING:
    from pgpager.runtime import Runtime


@click.command()
@click.argument("collection")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--namespace", default="", help="Namespace to load into.")
@click.option(
    "--defer-index",
    is_flag=True,
    help="Drop the HNSW index before loading and build it once after (faster for big loads).",
)
@click.pass_obj
def load(obj: Obj, collection: str, file: Path, namespace: str, defer_index: bool) -> None:
    """Bulk-load FILE (.npy: ids are row numbers; .jsonl: id, vector, metadata, data)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from pgpager.services.loading import count_rows

    async def go(rt: Runtime) -> int:
        with Progress(
            *Progress.get_default_columns()[:-1],
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=False,
            disable=not sys.stderr.isatty(),
        ) as bar:
            task = bar.add_task(f"loading {file.name}", total=count_rows(file))
            return await rt.loader.load(
                collection,
                file,
                namespace=namespace,
                defer_index=defer_index,
                progress=lambda n: bar.advance(task, n),
            )

    n = with_runtime(obj, go, migrate=True)
    suffix = f" (namespace {namespace!r})" if namespace else ""
    click.echo(f"loaded {n} vectors into {collection}{suffix}")
