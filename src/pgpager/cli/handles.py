"""``pgpager handles``: list, inspect, stop and sweep resumable-query handles."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from pgpager.cli.common import Duration, Obj, confirm, env, json_option, with_runtime, yes_option

if TYPE_CHECKING:
    from pgpager.runtime import Runtime
    from pgpager.store.sessions import Session

STATES = ("active", "exhausted", "stopped", "expired")


@click.group()
def handles() -> None:
    """Resumable-query handles: list, inspect, stop, sweep."""


def handle_view(s: Session) -> dict[str, Any]:
    q = s.query
    return {
        "id": s.id,
        "collection": s.collection,
        "namespace": s.namespace,
        "state": s.state,
        "state_reason": s.state_reason,
        "phase": s.phase,
        "position": s.position,
        "top_k": q.get("top_k"),
        "filter": q.get("filter"),
        "include": q.get("include", {}),
        "created_at": s.created_at,
        "last_used_at": s.last_used_at,
        "age_s": round(s.age_s, 3),
        "idle_s": round(s.idle_s, 3),
        "max_idle_s": s.max_idle_s,
        "max_lifetime_s": s.max_lifetime_s,
        "expires_at": s.expires_at if s.state == "active" else None,
        "closed_at": s.closed_at,
        "owner_instance": s.owner_instance,
        "owner_pid": s.owner_pid,
        "api_key_id": s.api_key_id,
    }


def expires_in(s: Session) -> float | None:
    return (s.expires_at - s.now).total_seconds() if s.state == "active" else None


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

    async def go(rt: Runtime) -> list[Session]:
        return await rt.admin.list_handles(
            collection=collection,
            state=state,
            owner=owner,
            idle_over_s=idle_over,
            limit=limit,
        )

    found = with_runtime(obj, go)
    if as_json:
        render.print_json([handle_view(s) for s in found])
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
                s.id,
                s.collection,
                s.state,
                s.phase,
                s.position,
                render.duration(s.age_s),
                render.duration(s.idle_s),
                render.duration(expires_in(s)),
                s.owner_instance or "-",
            )
            for s in found
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

    async def go(rt: Runtime) -> HandleDetail:
        return await rt.admin.handle_detail(handle)

    d = with_runtime(obj, go)
    s = d.session
    vector = s.query.get("vector") or []
    if as_json:
        view = handle_view(s)
        view["vector_dimension"] = len(vector)
        view["query"] = s.query
        view["backend"] = d.backend
        view["cursor"] = {"status": d.cursor, "detail": d.cursor_detail}
        render.print_json(view)
        return
    include = s.query.get("include", {})
    flags = ", ".join(k for k in ("vectors", "metadata", "data") if include.get(k)) or "ids only"
    head = ", ".join(f"{x:.4g}" for x in vector[:4]) + (", ..." if len(vector) > 4 else "")
    b = d.backend
    backend = (
        f"pid {b.pid} ({b.application_name}, {b.state}, in transaction since "
        f"{render.when(b.xact_start)})"
        if b
        else (f"pid {s.owner_pid}: gone" if s.owner_pid else None)
    )
    render.fields(
        [
            ("handle", s.id),
            ("collection", s.collection),
            ("namespace", repr(s.namespace)),
            ("vector", f"{len(vector)}-d [{head}]"),
            ("top_k", s.query.get("top_k")),
            ("filter", s.query.get("filter")),
            ("include", flags),
            ("state", s.state + (f" ({s.state_reason})" if s.state_reason else "")),
            ("phase", s.phase),
            ("position", f"{s.position} rows delivered"),
            ("created", f"{render.when(s.created_at)} ({render.duration(s.age_s)} ago)"),
            ("last used", f"{render.when(s.last_used_at)} ({render.duration(s.idle_s)} ago)"),
            ("max idle", render.duration(s.max_idle_s)),
            (
                "expires",
                f"{render.when(s.expires_at)} (in {render.duration(expires_in(s))})"
                if s.state == "active"
                else f"closed {render.when(s.closed_at)}",
            ),
            ("owner", s.owner_instance),
            ("backend", backend),
            ("cursor", f"{d.cursor}: {d.cursor_detail}"),
            ("api key", s.api_key_id),
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

    ids = list(dict.fromkeys(handle_ids))

    async def go(rt: Runtime) -> list[StopOutcome]:
        found = await rt.admin.find_handles(ids)
        active = [s for s in found if s.state == "active"]
        if active:
            what = f"handle {active[0].id}" if len(active) == 1 else f"{len(active)} handles"
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
