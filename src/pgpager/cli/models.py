"""``pgpager models``: the embedding models a collection may name; fetch one ahead of time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pgpager.cli.common import Obj, env, json_option

model_dir_option = click.option(
    "--model-dir",
    envvar=env("embedding_model_dir"),
    show_envvar=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory with one subdirectory per model (for hosts without the model hub).",
)
cache_dir_option = click.option(
    "--cache-dir",
    envvar=env("model_cache_dir"),
    show_envvar=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Where models fetched from the model hub are kept.",
)


def _settings(obj: Obj, model_dir: Path | None, cache_dir: Path | None) -> Any:
    return obj.settings(embedding_model_dir=model_dir, model_cache_dir=cache_dir)


@click.group()
def models() -> None:
    """Embedding models: list them, fetch one ahead of time."""


@models.command("list")
@model_dir_option
@cache_dir_option
@json_option
@click.pass_obj
def models_list(obj: Obj, model_dir: Path | None, cache_dir: Path | None, as_json: bool) -> None:
    """The models pgpager supports, their dimensions, and where each would load from on this
    host (model_dir, cache, or hub: downloaded on first use)."""
    from pgpager import render
    from pgpager.services.embedding import Embedder

    embedder = Embedder(_settings(obj, model_dir, cache_dir))
    try:
        found = [(m, embedder.source(m)) for m in embedder.models()]
    finally:
        embedder.close()
    if as_json:
        render.print_json([{**render.jsonable(m), "source": source} for m, source in found])
        return
    render.table(
        ["MODEL", "DIMENSION", "METRIC", "MAX TOKENS", "SIZE", "SOURCE", "UPSTASH NAME"],
        [
            (m.name, m.dimension, m.metric, m.max_tokens, f"{m.size_mb} MB", source, m.upstash_name)
            for m, source in found
        ],
    )


@models.command("fetch")
@click.argument("name")
@model_dir_option
@cache_dir_option
@click.pass_obj
def models_fetch(obj: Obj, name: str, model_dir: Path | None, cache_dir: Path | None) -> None:
    """Download model NAME from the model hub into the cache (unless it is there, or in the model
    directory already) and check that it loads, so that first use does not wait for it."""
    from pgpager import render
    from pgpager.services.embedding import Embedder, find_model

    model = find_model(name)
    embedder = Embedder(_settings(obj, model_dir, cache_dir))
    try:
        where = embedder.fetch(model)
    finally:
        embedder.close()
    render.line(f"{model.name} ({model.dimension}-d) is ready in {where}")
