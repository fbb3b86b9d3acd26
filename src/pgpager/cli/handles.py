"""``pgpager handles``: list, inspect, stop and sweep resumable-query handles."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from pgpager.cli.common import Duration, Obj, confirm, env, json_option, with_runtime, yes_option

if TYPE_CHECKING:
    from pgpager.runtime import Runtime
    from pgpager.store.sessions import Session

STATES = ("active", "exhausted", "stopped", "expired")


@click.group()
def handles() -> None:
    """Resumable-query handles: list, inspect, stop, sweep."""


@handles.command("list")
@click.option("--collection", help="Only handles on this collection.")
@click.option("--state", type=click.Choice(STATES), help="Only handles in this state.")
@click.option(
    "--idle-over",
    type=Duration(),
    metavar="DURATION",
    help="Only handles idle longer than this (e.g. 90s, 10m, 2h, 1d).",
)
@click.option("--owner", metavar="INSTANCE", help="Only handles owned by this server instance.")
@click.option(
    "--limit",
    default=200,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Most handles to show (newest first).",
)
@json_option
@click.pass_obj
def handles_list(
    obj: Obj,
    collection: str | None,
    state: str | None,
    idle_over: float | None,
    owner: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List handles, newest first."""
    from pgpager import render
    from pgpager.services.resumable import HandleView

    async def go(rt: Runtime) -> list[Session]:
        return await rt.admin.list_handles(
            collection=collection,
            state=state,
            owner=owner,
            idle_over_s=idle_over,
            limit=limit,
        )

    found = with_runtime(obj, go)
    views = [HandleView.of(s) for s in found]
    if as_json:
        render.print_json(views)
        return
    if not found:
        render.line("no handles match")
        return
    render.table(
        [
            "HANDLE",
            "COLLECTION",
            "STATE",
            "PHASE",
            "POSITION",
            "AGE",
            "IDLE",
            "EXPIRES IN",
            "OWNER",
        ],
        [
            (
                v.id,
                v.collection,
                v.state,
                v.phase,
                v.position,
                render.duration(v.age_s),
                render.duration(v.idle_s),
                render.duration(v.expires_in_s(s.now)),
                v.owner_instance or "-",
            )
            for s, v in zip(found, views, strict=True)
        ],
    )
    if len(found) == limit:
        click.echo(f"(showing the newest {limit}; use --limit for more)", err=True)


@handles.command("show")
@click.argument("handle")
@json_option
@click.pass_obj
def handles_show(obj: Obj, handle: str, as_json: bool) -> None:
    """Show one handle: its query, progress, timing, owner and whether its cursor is open."""
    from pgpager import render
    from pgpager.services.admin import HandleDetail
    from pgpager.services.resumable import HandleView

    async def go(rt: Runtime) -> HandleDetail:
        return await rt.admin.handle_detail(handle)

    d = with_runtime(obj, go)
    s = d.session
    v = HandleView.of(s)
    vector = s.query.get("vector") or []
    if as_json:
        render.print_json(
            {
                **render.jsonable(v),
                "vector_dimension": len(vector),
                "query": s.query,
                "backend": d.backend,
                "cursor": {"status": d.cursor, "detail": d.cursor_detail},
            }
        )
        return
    flags = ", ".join(k for k in ("vectors", "metadata", "data") if v.include.get(k)) or "ids only"
    head = ", ".join(f"{x:.4g}" for x in vector[:4]) + (", ..." if len(vector) > 4 else "")
    b = d.backend
    backend = (
        f"pid {b.pid} ({b.application_name}, {b.state}, in transaction since "
        f"{render.when(b.xact_start)})"
        if b
        else (f"pid {v.owner_pid}: gone" if v.owner_pid else None)
    )
    render.fields(
        [
            ("handle", v.id),
            ("collection", v.collection),
            ("namespace", repr(v.namespace)),
            ("vector", f"{len(vector)}-d [{head}]"),
            ("top_k", v.top_k),
            ("filter", v.filter),
            ("include", flags),
            ("state", v.state + (f" ({v.state_reason})" if v.state_reason else "")),
            ("phase", v.phase),
            ("position", f"{v.position} rows delivered"),
            ("created", f"{render.when(v.created_at)} ({render.duration(v.age_s)} ago)"),
            ("last used", f"{render.when(v.last_used_at)} ({render.duration(v.idle_s)} ago)"),
            ("max idle", render.duration(v.max_idle_s)),
            (
                "expires",
                f"{render.when(v.expires_at)} (in {render.duration(v.expires_in_s(s.now))})"
                if v.expires_at is not None
                else f"closed {render.when(v.closed_at)}",
            ),
            ("owner", v.owner_instance),
            ("backend", backend),
            ("cursor", f"{d.cursor}: {d.cursor_detail}"),
            ("api key", v.api_key_id),
        ]
    )


@handles.command("stop")
@click.argument("handle_ids", metavar="HANDLE...", nargs=-1, required=True)
@yes_option
@json_option
@click.pass_obj
def handles_stop(obj: Obj, handle_ids: tuple[str, ...], yes: bool, as_json: bool) -> None:
    """Stop handles. A running server closes their cursors at once; a later 'next' gets 410."""
    from pgpager import render
    from pgpager.services.admin import StopOutcome
    from pgpager.store.sessions import STOPPABLE

    ids = list(dict.fromkeys(handle_ids))

    async def go(rt: Runtime) -> list[StopOutcome]:
        found = await rt.admin.find_handles(ids)
        open_ = [s for s in found if s.state in STOPPABLE]
        if open_:
            what = f"handle {open_[0].id}" if len(open_) == 1 else f"{len(open_)} handles"
            confirm(f"stop {what}", yes)
        return await rt.admin.stop_handles(ids)

    outcomes = with_runtime(obj, go)
    if as_json:
        render.print_json(outcomes)
        return
    for o in outcomes:
        if o.stopped:
            note = f" (server {o.owner_instance} closes its cursor)" if o.owner_instance else ""
            render.line(f"stopped {o.id}{note}")
        else:
            render.line(f"{o.id} was already {o.state}; left as it is")


@handles.command("sweep")
@click.option("--dry-run", is_flag=True, help="Show what would be expired; change nothing.")
@click.option(
    "--batch-size",
    envvar=env("sweep_batch_size"),
    show_envvar=True,
    type=int,
    help="Most handles or stored queries acted on.  [default: 500]",
)
@json_option
@click.pass_obj
def handles_sweep(obj: Obj, dry_run: bool, batch_size: int | None, as_json: bool) -> None:
    """Run one sweeper tick now: expire idle handles, reclaim orphaned ones, purge old rows,
    expire stored queries."""
    from pgpager import render
    from pgpager.services.sweeper import SweepReport

    async def go(rt: Runtime) -> SweepReport:
        return await rt.admin.sweep(dry_run=dry_run)

    report = with_runtime(obj, go, sweep_batch_size=batch_size)
    if as_json:
        render.print_json(report)
        return
    verb = "would expire" if dry_run else "expired"
    for c in report.expired:
        render.line(f"{verb} {c.id}: {c.reason}")
    render.line(
        report.summary()
        if not dry_run
        else f"{verb} {len(report.expired)} handles (dry run: nothing was changed)"
    )
