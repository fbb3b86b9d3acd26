"""The ``pgpager`` command: serve, load, and the admin commands. Commands are thin: they parse,
call one service, and render. Errors print one line (a traceback only with ``-v``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import psycopg

from pgpager.errors import ConfigurationError, PgpagerError
from pgpager.settings import ENV_PREFIX, Settings

if TYPE_CHECKING:
    from pgpager.runtime import Runtime
    from pgpager.store.sessions import Session
    from pgpager.store.stored import StoredQuery

T = TypeVar("T")
log = logging.getLogger("pgpager")


def env(name: str) -> str:
    return ENV_PREFIX + name.upper()


class Obj:
    """What the root command hands its subcommands."""

    def __init__(self, verbose: bool, overrides: dict[str, Any]) -> None:
        self.verbose = verbose
        self.overrides = overrides

    def settings(self, **more: Any) -> Settings:
        return Settings.from_env(**{**self.overrides, **more})


def fail(message: str, code: int = 1) -> None:
    # One line, whatever the message: psycopg's connection errors span several.
    click.echo(f"pgpager: error: {' '.join(message.split())}", err=True)
    sys.exit(code)


def run(obj: Obj, fn: Callable[[], T]) -> T:
    """Run ``fn``; domain and database errors become one line on stderr and exit code 1."""
    try:
        return fn()
    except (PgpagerError, psycopg.Error, ValueError, OSError) as exc:
        if obj.verbose:
            raise
        if isinstance(exc, PgpagerError):
            message = exc.message
        elif isinstance(exc, psycopg.Error):
            message = f"database error: {exc}"
        else:
            message = str(exc)
        fail(message)
        raise AssertionError("unreachable") from None


def run_async(obj: Obj, coro_fn: Callable[[], Awaitable[T]]) -> T:
    return run(obj, lambda: asyncio.run(coro_fn()))  # type: ignore[arg-type]


def with_runtime(
    obj: Obj,
    fn: Callable[[Runtime], Awaitable[T]],
    *,
    schema: bool = True,
    migrate: bool = False,
    **overrides: Any,
) -> T:
    """Run ``fn(runtime)`` against the server's database (the embedded one is joined if a server
    runs it, started for the while otherwise). ``schema``: require the schema at this
    pgpager's revision first (``migrate``: bring it there). ``overrides``: settings given as
    command options."""
    from pgpager.runtime import Runtime, database

    settings = run(obj, lambda: obj.settings(**overrides))

    async def go(url: str) -> T:
        async with Runtime.open(settings, url, serve=False) as rt:
            if schema:
                await rt.admin.require_schema()
            return await fn(rt)

    def do() -> T:
        with database(settings, migrate=migrate) as url:
            return asyncio.run(go(url))

    return run(obj, do)


def confirm(question: str, yes: bool) -> None:
    """Ask before a destructive action; without a terminal to ask on, refuse (never hang)."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question} needs confirmation, but stdin is not a terminal: pass --yes")
    try:
        ok = click.confirm(f"{question}?", default=False, err=True)
    except click.Abort:
        ok = False
        click.echo("", err=True)
    if not ok:
        fail("not confirmed; nothing was changed")


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (and nothing else) on stdout."
)
yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


class Duration(click.ParamType[float, Any]):
    """A duration: 90, 90s, 10m, 2h, 1d or combined (1h30m)."""

    name = "duration"
    UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
    PART = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower().replace(" ", "")
        parts = self.PART.findall(text)
        if (
            not text
            or "".join(n + u for n, u in parts) != text
            or (len(parts) > 1 and any(u == "" for _, u in parts))
        ):
            self.fail(
                f"{value!r} is not a duration: use e.g. 90s, 10m, 2h, 1d or 1h30m", param, ctx
            )
        return sum(float(n) * self.UNITS[u or "s"] for n, u in parts)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", is_flag=True, help="Show debug logs and tracebacks.")
@click.option(
    "--database-url",
    envvar=env("database_url"),
    show_envvar=True,
    help="PostgreSQL URL. Unset: the embedded PostgreSQL.",
)
@click.option(
    "--data-dir",
    envvar=env("data_dir"),
    show_envvar=True,
    type=click.Path(path_type=Path),
    help="Data directory of the embedded PostgreSQL.",
)
@click.version_option(package_name="pgpager")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, database_url: str | None, data_dir: Path | None) -> None:
    """pgpager: pagination server for vector search on PostgreSQL + pgvector."""
    from pgpager import logs

    logs.configure("debug" if verbose else "warning", "text", access_log=False)
    ctx.obj = Obj(verbose, {"database_url": database_url, "data_dir": data_dir})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@cli.command()
@click.option(
    "--host",
    envvar=env("host"),
    show_envvar=True,
    default="127.0.0.1",
    show_default=True,
    help="Address to bind. A non-loopback address requires API keys.",
)
@click.option(
    "--port",
    envvar=env("port"),
    show_envvar=True,
    default=8000,
    show_default=True,
    type=int,
    help="Port to bind.",
)
@click.option(
    "--log-level",
    envvar=env("log_level"),
    show_envvar=True,
    default="info",
    show_default=True,
    help="Log level: debug, info, warning, error.",
)
@click.pass_obj
def serve(obj: Obj, host: str, port: int, log_level: str) -> None:
    """Run the HTTP server (on the embedded PostgreSQL unless a database URL is set)."""
    import uvicorn

    from pgpager import logs
    from pgpager.http.app import create_app
    from pgpager.runtime import database

    settings = run(obj, lambda: obj.settings(host=host, port=port, log_level=log_level))
    level = "debug" if obj.verbose else settings.log_level
    run(obj, lambda: logs.configure(level, settings.log_format, settings.access_log))

    def check() -> None:
        if not settings.keys() and not is_loopback(settings.host):
            raise ConfigurationError(
                f"refusing to serve on {settings.host} without API keys: set PGPAGER_API_KEYS "
                "(e.g. 'a-long-secret:admin') or bind to 127.0.0.1"
            )

    run(obj, check)

    def go() -> None:
        with database(settings, exclusive=True) as url:
            where = (
                "external PostgreSQL"
                if settings.database_url
                else f"embedded PostgreSQL in {settings.data_dir}"
            )
            log.info("serving on http://%s:%s (%s)", settings.host, settings.port, where)
            # uvicorn re-raises the signal that stopped it once it has shut down; with the
            # default SIGTERM action that would kill us before the embedded server is stopped.
            signal.signal(signal.SIGTERM, lambda signum, frame: None)
            uvicorn.run(
                create_app(settings, url),
                host=settings.host,
                port=settings.port,
                # Logging is configured above: no uvicorn formatters, no levels of its own.
                log_config=None,
                log_level=None,
                access_log=settings.access_log,
                timeout_graceful_shutdown=10,
            )

    run(obj, go)


@cli.command()
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


# --- db --------------------------------------------------------------------------------------
@cli.group()
def db() -> None:
    """Database schema migrations."""


@db.command()
@click.option("--revision", default="head", show_default=True)
@click.pass_obj
def upgrade(obj: Obj, revision: str) -> None:
    """Migrate the schema up to REVISION."""
    from pgpager import migrations
    from pgpager.runtime import database

    def do() -> None:
        with database(obj.settings(), migrate=False) as url:
            migrations.upgrade(url, revision)
            click.echo(f"at revision {migrations.current(url)}")

    run(obj, do)


@db.command()
@click.argument("revision")
@yes_option
@click.pass_obj
def downgrade(obj: Obj, revision: str, yes: bool) -> None:
    """Migrate the schema down to REVISION ('base' removes everything pgpager created)."""
    from pgpager import migrations
    from pgpager.runtime import database

    confirm(f"downgrade the schema to {revision} (this can drop data)", yes)

    def do() -> None:
        with database(obj.settings(), migrate=False) as url:
            migrations.downgrade(url, revision)
            click.echo(f"at revision {migrations.current(url)}")

    run(obj, do)


@db.command()
@json_option
@click.pass_obj
def current(obj: Obj, as_json: bool) -> None:
    """Show the schema revision of the database and the newest one this pgpager knows."""
    from pgpager import migrations, render
    from pgpager.runtime import database

    def do() -> tuple[str | None, str | None]:
        with database(obj.settings(), migrate=False) as url:
            return migrations.current(url), migrations.head()

    revision, head = run(obj, do)
    if as_json:
        render.print_json({"current": revision, "head": head, "up_to_date": revision == head})
    else:
        click.echo(f"current: {revision}  head: {head}")


# --- handles ---------------------------------------------------------------------------------
STATES = ("active", "exhausted", "stopped", "expired")


@cli.group()
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


# --- stored queries --------------------------------------------------------------------------
@cli.group()
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


# --- collections -----------------------------------------------------------------------------
@cli.group()
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
@click.option("--dimension", "-d", type=int, required=True, help="Vector dimension.")
@click.option(
    "--metric",
    type=click.Choice(["cosine", "euclidean", "dot_product"]),
    default="cosine",
    show_default=True,
)
@click.option("--m", "hnsw_m", type=int, default=16, show_default=True, help="HNSW m.")
@click.option(
    "--ef-construction", type=int, default=64, show_default=True, help="HNSW ef_construction."
)
@click.option("--embedding-model", help="Name of the model that made the vectors (a label).")
@json_option
@click.pass_obj
def collections_create(
    obj: Obj,
    name: str,
    dimension: int,
    metric: str,
    hnsw_m: int,
    ef_construction: int,
    embedding_model: str | None,
    as_json: bool,
) -> None:
    """Create collection NAME (a table in schema pgpager_data with an HNSW index)."""
    from pgpager import render
    from pgpager.store.collections import Collection

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
    render.line(
        f"created collection {c.name}: {c.dimension}-d, {c.metric}, HNSW m={c.hnsw_m} "
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


# --- status ----------------------------------------------------------------------------------
def describe_database(settings: Settings, url: str) -> str:
    """Where the database is, without the password."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(url)
    if not settings.database_url:
        return f"embedded PostgreSQL in {settings.data_dir}"
    host = str(info.get("host") or "localhost")
    port = f":{info['port']}" if info.get("port") else ""
    user = f"{info['user']}@" if info.get("user") else ""
    return f"{user}{host}{port}"


@cli.command()
@click.option(
    "--exact",
    is_flag=True,
    help="Count vectors with count(*) on every collection table (slow on big tables).",
)
@json_option
@click.pass_obj
def status(obj: Obj, exact: bool, as_json: bool) -> None:
    """Database, schema, collections, vectors, handles, stored queries and running servers."""
    from pgpager import render
    from pgpager.services.admin import Status

    async def go(rt: Runtime) -> tuple[Status, str]:
        return await rt.admin.status(exact=exact), describe_database(rt.settings, rt.database_url)

    st, where = with_runtime(obj, go, schema=False)
    if as_json:
        render.print_json(
            {
                "database": {"reachable": True, "where": where, **render.jsonable(st.server)},
                "schema": {
                    "current": st.schema_revision,
                    "head": st.schema_head,
                    "up_to_date": st.schema_current,
                },
                "collections": st.collections,
                "vectors": st.vectors,
                "vectors_counted": st.vectors_counted,
                "handles": {s: st.handles.get(s, 0) for s in STATES},
                "stored_queries": st.stored_queries,
                "servers": st.servers,
                "handle_owners": st.handle_owners,
                "orphaned_owners": st.orphaned_owners,
            }
        )
        return
    sv = st.server
    if st.schema_revision is None:
        schema = f"none (head {st.schema_head}): run 'pgpager db upgrade'"
    elif st.schema_current:
        schema = f"{st.schema_revision} (up to date)"
    else:
        schema = f"{st.schema_revision}, head is {st.schema_head}: run 'pgpager db upgrade'"
    if st.vectors is None:
        vectors = None
    elif st.vectors_counted == "exact":
        vectors = f"{st.vectors:,} (exact count)"
    else:
        vectors = f"~{st.vectors:,} (estimate from table statistics; --exact counts them)"
    handles_line = ", ".join(f"{st.handles.get(s, 0)} {s}" for s in STATES)
    stored = ", ".join(f"{n} {state}" for state, n in sorted(st.stored_queries.items())) or "none"
    servers = "; ".join(
        f"{s.instance} ({s.connections} connections since {render.when(s.connected_since)})"
        for s in st.servers
    )
    servers = f"{len(st.servers)} connected" + (f": {servers}" if servers else "")
    pairs: list[tuple[str, Any]] = [
        (
            "database",
            f"{sv.database} on {where}: reachable, PostgreSQL {sv.server_version}, "
            f"pgvector {sv.pgvector_version or 'not installed'}",
        ),
        ("schema", schema),
        ("collections", st.collections),
        ("vectors", vectors),
        ("handles", handles_line if st.schema_revision else None),
        ("stored queries", stored if st.schema_revision else None),
        ("servers", servers),
    ]
    if st.orphaned_owners:
        pairs.append(
            (
                "note",
                "active handles owned by instances not connected "
                f"({', '.join(st.orphaned_owners)}): they rehydrate on their next request",
            )
        )
    render.fields(pairs)


@cli.command()
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
    keep: bool,
) -> None:
    """Measure pagination latency by depth, throughput, capacity, recall and ingest rate
    against a real `pgpager serve` started on a free loopback port."""
    from pgpager.bench.runner import BenchConfig, run_bench

    config = BenchConfig.preset(quick).with_(
        rows=rows,
        dim=dim,
        seed=seed,
        npy=npy,
        queries=queries,
        metric=metric,
        out_dir=out_dir,
        keep=keep,
    )
    run(obj, lambda: run_bench(obj.settings(), config))


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
