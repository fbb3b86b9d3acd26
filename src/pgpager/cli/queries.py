"""``pgpager queries``: list, inspect and delete stored queries."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import click

from pgpager.cli.common import Obj, confirm, json_option, with_runtime, yes_option

if TYPE_CHECKING:
    from pgpager.runtime import Runtime
    from pgpager.store.stored import StoredQuery


@click.group()
def queries() -> None:
    """Stored queries: list, inspect, delete."""


def expires_in_s(q: StoredQuery) -> float:
    return (q.expires_at - dt.datetime.now(dt.UTC)).total_seconds()


@queries.command("list")
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Most queries to show (newest first).",
)
@json_option
@click.pass_obj
def queries_list(obj: Obj, limit: int, as_json: bool) -> None:
    """List unexpired stored queries of every API key, newest first."""
    from pgpager import render

    async def go(rt: Runtime) -> list[StoredQuery]:
        return await rt.admin.list_stored_queries(limit=limit)

    found = with_runtime(obj, go)
    if as_json:
        render.print_json(found)
        return
    if not found:
        render.line("no stored queries")
        return
    render.table(
        ["QUERY ID", "KIND", "STATE", "ROWS", "SIZE", "CREATED", "EXPIRES IN", "OWNER"],
        [
            (
                q.query_id,
                q.kind,
                q.state,
                "-" if q.doc_count is None else f"{q.doc_count:,}",
                render.size(q.size_bytes),
                render.when(q.created_at),
                render.duration(expires_in_s(q)),
                q.owner_instance or "-",
            )
            for q in found
        ],
    )
    if len(found) == limit:
        click.echo(f"(showing the newest {limit}; use --limit for more)", err=True)


@queries.command("show")
@click.argument("query_id")
@json_option
@click.pass_obj
def queries_show(obj: Obj, query_id: str, as_json: bool) -> None:
    """Show one stored query: state, timing, rows kept, expiry."""
    from pgpager import render

    async def go(rt: Runtime) -> StoredQuery:
        return await rt.admin.stored_query(query_id)

    q = with_runtime(obj, go)
    if as_json:
        render.print_json(q)
        return
    elapsed = None if q.elapsed_time_ms is None else f"{q.elapsed_time_ms:,} ms"
    expiry = f"{render.when(q.expires_at)} " + (
        "(expired)" if q.expired else f"(in {render.duration(expires_in_s(q))})"
    )
    render.fields(
        [
            ("query id", q.query_id),
            ("kind", q.kind),
            ("state", q.state),
            ("error", q.error),
            ("rows kept", None if q.doc_count is None else f"{q.doc_count:,}"),
            ("size", render.size(q.size_bytes)),
            ("elapsed", elapsed),
            ("created", render.when(q.created_at)),
            ("started", render.when(q.started_at)),
            ("finished", render.when(q.finished_at)),
            ("expires", expiry),
            ("owner", q.owner_instance),
            ("api key", q.api_key_id),
        ]
    )


@queries.command("delete")
@click.argument("query_ids", metavar="QUERY_ID...", nargs=-1, required=True)
@yes_option
@json_option
@click.pass_obj
def queries_delete(obj: Obj, query_ids: tuple[str, ...], yes: bool, as_json: bool) -> None:
    """Delete stored queries and their kept rows; later pages get 404."""
    from pgpager import render

    ids = list(dict.fromkeys(query_ids))

    async def go(rt: Runtime) -> list[StoredQuery]:
        found = [await rt.admin.stored_query(i) for i in ids]
        rows = sum(q.doc_count or 0 for q in found)
        what = f"stored query {ids[0]}" if len(ids) == 1 else f"{len(ids)} stored queries"
        confirm(f"delete {what} and {rows:,} kept rows", yes)
        return [await rt.admin.delete_stored_query(i) for i in ids]

    deleted = with_runtime(obj, go)
    if as_json:
        render.print_json([{"query_id": q.query_id, "deleted": True} for q in deleted])
        return
    for q in deleted:
        render.line(f"deleted stored query {q.query_id} ({q.state}, {q.doc_count or 0:,} rows)")
