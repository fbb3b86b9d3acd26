"""``pgpager status``: the state of the whole installation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from pgpager.cli.common import Obj, json_option, with_runtime
from pgpager.cli.handles import STATES
from pgpager.settings import Settings

if TYPE_CHECKING:
    from pgpager.runtime import Runtime


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


@click.command()
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
