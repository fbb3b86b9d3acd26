"""``pgpager collections``: list, create, inspect and drop collections."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from pgpager.cli.common import Obj, confirm, json_option, with_runtime, yes_option

if TYPE_CHECKING:
    from pgpager.runtime import Runtime


@click.group()
def collections() -> None:
    """Collections: list, create, inspect, drop."""


@collections.command("list")
@json_option
@click.pass_obj
def collections_list(obj: Obj, as_json: bool) -> None:
    """List collections, with row counts estimated from the table statistics."""
    from pgpager import render
    from pgpager.store.collections import Collection

    async def go(rt: Runtime) -> tuple[list[Collection], dict[str, int]]:
        return await rt.collections.list_all(), await rt.collections.estimated_counts()

    found, counts = with_runtime(obj, go)
    if as_json:
        render.print_json(
            [{**render.jsonable(c), "vectors_estimate": counts.get(c.name)} for c in found]
        )
        return
    if not found:
        render.line("no collections yet: create one with 'pgpager collections create NAME -d DIM'")
        return
    render.table(
        [
            "NAME",
            "DIMENSION",
            "METRIC",
            "HNSW M",
            "EF_CONSTRUCTION",
            "MODEL",
            "VECTORS (EST.)",
            "CREATED",
        ],
        [
            (
                c.name,
                c.dimension,
                c.metric,
                c.hnsw_m,
                c.hnsw_ef_construction,
                c.embedding_model or "-",
                f"~{counts.get(c.name, 0):,}",
                render.when(c.created_at),
            )
            for c in found
        ],
    )


@collections.command("create")
@click.argument("name")
@click.option(
    "--dimension", "-d", type=int, help="Vector dimension (not needed with --model: it has one)."
)
@click.option(
    "--metric",
    type=click.Choice(["cosine", "euclidean", "dot_product"]),
    help="Distance metric.  [default: the model's, or cosine]",
)
@click.option("--m", "hnsw_m", type=int, default=16, show_default=True, help="HNSW m.")
@click.option(
    "--ef-construction", type=int, default=64, show_default=True, help="HNSW ef_construction."
)
@click.option(
    "--model",
    "--embedding-model",
    "embedding_model",
    help="Embedding model: text sent to the collection is embedded with it "
    "('pgpager models list' shows them). Sets the dimension.",
)
@json_option
@click.pass_obj
def collections_create(
    obj: Obj,
    name: str,
    dimension: int | None,
    metric: str | None,
    hnsw_m: int,
    ef_construction: int,
    embedding_model: str | None,
    as_json: bool,
) -> None:
    """Create collection NAME (a table in schema pgpager_data with an HNSW index). Give
    --dimension, or --model to have text embedded (the model is loaded, and fetched from the
    model hub if need be, now)."""
    from pgpager import render
    from pgpager.store.collections import Collection

    if dimension is None and embedding_model is None:
        raise click.UsageError("give --dimension, or --model to have text embedded")

    async def go(rt: Runtime) -> Collection:
        return await rt.collections.create(
            name=name,
            dimension=dimension,
            metric=metric,
            hnsw_m=hnsw_m,
            hnsw_ef_construction=ef_construction,
            embedding_model=embedding_model,
        )

    c = with_runtime(obj, go)
    if as_json:
        render.print_json(c)
        return
    model = f", model {c.embedding_model}" if c.embedding_model else ""
    render.line(
        f"created collection {c.name}: {c.dimension}-d, {c.metric}{model}, HNSW m={c.hnsw_m} "
        f"ef_construction={c.hnsw_ef_construction}, table {c.qualified}"
    )


@collections.command("info")
@click.argument("name")
@json_option
@click.pass_obj
def collections_info(obj: Obj, name: str, as_json: bool) -> None:
    """Show collection NAME: exact vector count per namespace, indexes, size."""
    from pgpager import render
    from pgpager.store.collections import CollectionInfo

    async def go(rt: Runtime) -> CollectionInfo:
        return await rt.collections.info(name)

    i = with_runtime(obj, go)
    c = i.collection
    if as_json:
        render.print_json(
            {
                **render.jsonable(c),
                "table": c.qualified,
                "vector_count": i.vector_count,
                "namespaces": i.namespaces,
                "indexes": i.indexes,
                "size_bytes": i.size_bytes,
            }
        )
        return
    namespaces = ", ".join(f"{ns or '(default)'}: {n:,}" for ns, n in i.namespaces.items())
    indexes = "; ".join(
        f"{x['name']} ({x['method']}, {render.size(x['size_bytes'])}"
        + ("" if x["valid"] else ", INVALID")
        + ")"
        for x in i.indexes
    )
    render.fields(
        [
            ("name", c.name),
            ("table", c.qualified),
            ("dimension", c.dimension),
            ("metric", c.metric),
            ("hnsw", f"m={c.hnsw_m} ef_construction={c.hnsw_ef_construction}"),
            ("model", c.embedding_model),
            ("created", render.when(c.created_at)),
            ("vectors", f"{i.vector_count:,}"),
            ("namespaces", namespaces),
            ("indexes", indexes),
            ("size", render.size(i.size_bytes)),
        ]
    )


@collections.command("drop")
@click.argument("name")
@yes_option
@click.pass_obj
def collections_drop(obj: Obj, name: str, yes: bool) -> None:
    """Drop collection NAME: its table, its vectors and its handles."""
    from pgpager import render

    async def go(rt: Runtime) -> None:
        i = await rt.collections.info(name)
        confirm(f"drop collection {name} and its {i.vector_count:,} vectors", yes)
        await rt.collections.drop(name)

    with_runtime(obj, go)
    render.line(f"dropped collection {name}")
