"""The SQL sandbox against other users: one API key's stored SQL must not hurt another key's
queries, the pgpager servers, or the disk (issue 12, item 9).

Two ``sql`` keys share a server; key B attacks, and each test checks what key A or the server
sees afterwards (A's query still running, the cursors still held, the limit named in a 4xx).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient
from psycopg import sql as pgsql
from psycopg.conninfo import make_conninfo

from pgpager.settings import parse_api_keys
from tests.helpers import eventually

Client = AsyncTestClient[Any]

KEYS = "sandbox-key-a:read+write+sql,sandbox-key-b:read+sql"
A = {"Authorization": "Bearer sandbox-key-a"}
B = {"Authorization": "Bearer sandbox-key-b"}
KEY_A, KEY_B = (k.id for k in parse_api_keys(KEYS))


@asynccontextmanager
async def two_keys(make_client: Any, **overrides: Any) -> AsyncIterator[Client]:
    async with make_client(api_keys=KEYS, **overrides) as client:
        yield client


async def sql(client: Client, who: dict[str, str], query: str, **body: Any) -> Any:
    return await client.post("/v1/queries", json={"sql": {"query": query}, **body}, headers=who)


async def state(client: Client, who: dict[str, str], qid: str) -> str:
    r = await client.get(f"/v1/queries/{qid}", headers=who)
    return str(r.json()["data"]["state"])


async def running_sleep(client: Client, who: dict[str, str], tag: str, seconds: int = 60) -> str:
    """Start an async ``pg_sleep`` and wait until it runs; returns its query id."""
    r = await sql(client, who, f'SELECT pg_sleep({seconds}) AS "{tag}"', **{"async": True})
    assert r.status_code == 200, r.text
    qid = str(r.json()["query_id"])

    async def now() -> str:
        return await state(client, who, qid)

    await eventually(now, until=lambda s: s == "RUNNING", what="the query runs", timeout_s=20)
    return qid


def a_backend_running(url: str) -> bool:
    """Key A's reader backend is there, in its query (its text shows the cursor's FETCH)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE usename = %s AND state = 'active' AND query LIKE 'FETCH%%'",
            [f"pgpager_reader_{KEY_A}"],
        ).fetchone()
    return row is not None and row[0] == 1


def refused(r: Any, what: str) -> None:
    """A 4xx from PostgreSQL's own privilege check (42501) naming what was refused."""
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["detail"]["sqlstate"] == "42501", err
    assert what in err["message"], err


# --- one key against another's running query -----------------------------------------------
async def test_each_key_runs_as_a_role_of_its_own(make_client: Any) -> None:
    async with two_keys(make_client) as client:
        who = (
            "SELECT current_user AS cu, session_user AS su, "
            "pg_has_role('pgpager_reader', 'USAGE') AS r"
        )
        a = (await sql(client, A, who)).json()["results"]
        b = (await sql(client, B, who)).json()["results"]
    assert a == [{"cu": f"pgpager_reader_{KEY_A}", "su": f"pgpager_reader_{KEY_A}", "r": True}]
    assert b == [{"cu": f"pgpager_reader_{KEY_B}", "su": f"pgpager_reader_{KEY_B}", "r": True}]


@pytest.mark.parametrize("signal", ["pg_terminate_backend", "pg_cancel_backend"])
async def test_key_b_cannot_stop_key_a_query(make_client: Any, pg_url: str, signal: str) -> None:
    tag = f"sandbox-{uuid.uuid4().hex[:8]}"
    async with two_keys(make_client) as client:
        qid = await running_sleep(client, A, tag)

        async def a_running() -> bool:
            return a_backend_running(pg_url)

        await eventually(a_running, what="key A's query runs", timeout_s=20)
        # B sees A's backend in pg_stat_activity (its pid, not its query text) and signals it.
        r = await sql(
            client,
            B,
            f"SELECT {signal}(pid) AS hit, query FROM pg_stat_activity "
            "WHERE application_name = 'pgpager-stored-sql' AND pid <> pg_backend_pid()",
        )
        refused(r, {"pg_terminate_backend": "terminate", "pg_cancel_backend": "cancel"}[signal])
        assert await state(client, A, qid) == "RUNNING"
        assert a_backend_running(pg_url)
        # A's own key still may: the same role.
        assert (await client.delete(f"/v1/queries/{qid}", headers=A)).status_code == 200


async def test_key_b_cannot_read_key_a_query_text(make_client: Any) -> None:
    tag = f"sandbox-{uuid.uuid4().hex[:8]}"
    async with two_keys(make_client) as client:
        qid = await running_sleep(client, A, tag)
        body = (
            await sql(
                client,
                B,
                "SELECT query FROM pg_stat_activity "
                "WHERE application_name = 'pgpager-stored-sql' AND pid <> pg_backend_pid()",
            )
        ).json()
        assert body["results"] == [{"query": "<insufficient privilege>"}]
        assert (await client.delete(f"/v1/queries/{qid}", headers=A)).status_code == 200


# --- the servers' NOTIFY channel ---------------------------------------------------------------
async def test_reader_cannot_notify_the_servers(
    make_client: Any, pg_url: str, collection_name: str
) -> None:
    """``*recycle`` on ``pgpager_handles`` would make every server drop all its cursors, and a
    handle id there closes that handle's cursor: the reader may not send on it at all."""
    async with two_keys(make_client) as client:
        r = await client.post(
            "/v1/collections", json={"name": collection_name, "dimension": 2}, headers=A
        )
        assert r.status_code == 201, r.text
        vectors = [{"id": f"v{i}", "vector": [1, i]} for i in range(5)]
        r = await client.post(
            f"/v1/collections/{collection_name}/vectors", json={"vectors": vectors}, headers=A
        )
        assert r.status_code == 200, r.text
        handles = []
        for _ in range(2):
            r = await client.post(
                f"/v1/collections/{collection_name}/resumable-queries",
                json={"vector": [1, 0], "top_k": 1},
                headers=A,
            )
            assert r.status_code == 201, r.text
            handles.append(r.json()["handle"])
        kept, barrier = handles
        resumable = client.app.state.runtime.resumable
        assert set(handles) <= set(resumable.live)
        generations = [h.generation for h in resumable.hosts.hosts]

        for payload in ["*recycle", kept]:
            r = await sql(client, B, f"SELECT pg_notify('pgpager_handles', '{payload}') AS n")
            refused(r, "pg_notify")

        # Notifications arrive in commit order: once a legitimate close sent after the
        # attempts has been heard, anything the reader had sent would have been heard too.
        def close_barrier() -> None:
            with psycopg.connect(pg_url) as conn:
                conn.execute("SELECT pg_notify('pgpager_handles', %s)", [barrier])

        async def heard() -> bool:
            close_barrier()
            return barrier not in resumable.live

        await eventually(heard, what="the close is heard")
        assert kept in resumable.live
        assert [h.generation for h in resumable.hosts.hosts] == generations
        r = await client.post(
            f"/v1/resumable-queries/{kept}/next", json={"additional_k": 1}, headers=A
        )
        assert r.status_code == 200 and r.json()["position"] == 2, r.text


# --- resources: the disk, memory, transaction ids, locks -------------------------------------
async def test_temp_files_are_limited_and_the_limit_is_named(
    make_client: Any, fresh_db_url: str
) -> None:
    async with two_keys(make_client, url=fresh_db_url, sql_temp_file_limit_mb=1) as client:
        # generate_series in FROM is materialized: past work_mem it goes to a temporary file.
        r = await sql(client, B, "SELECT count(*) AS n FROM generate_series(1, 2000000)")
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["detail"]["sqlstate"] == "53400"
        assert "PGPAGER_SQL_TEMP_FILE_LIMIT_MB" in err["message"], err
        assert "temp_file_limit" in err["message"], err
        # The same query fits under a bigger limit, and the other key is unaffected meanwhile.
        r = await sql(client, A, "SELECT count(*) AS n FROM generate_series(1, 200)")
        assert r.json()["results"] == [{"n": 200}]
    async with two_keys(make_client, url=fresh_db_url, sql_temp_file_limit_mb=64) as client:
        r = await sql(client, B, "SELECT count(*) AS n FROM generate_series(1, 2000000)")
        assert r.status_code == 200 and r.json()["results"] == [{"n": 2_000_000}], r.text


async def test_a_result_bigger_than_the_size_limit_keeps_nothing(
    make_client: Any, pg_url: str
) -> None:
    """Few rows, each big: the row cap alone would let one query fill the disk."""
    async with two_keys(make_client, stored_query_max_size_mb=1) as client:
        r = await sql(client, B, "SELECT repeat('x', 1000) AS s FROM generate_series(1, 2000)")
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert "PGPAGER_STORED_QUERY_MAX_SIZE_MB" in err["message"], err
        with psycopg.connect(pg_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pgpager.stored_query_rows WHERE query_id = %s",
                [err["detail"]["query_id"]],
            ).fetchone()
        assert row == (0,)
        r = await sql(client, B, "SELECT repeat('x', 1000) AS s FROM generate_series(1, 500)")
        assert r.status_code == 200 and r.json()["results_total_doc_count"] == 500, r.text


async def test_reader_limits_are_set_and_cannot_be_lifted(
    make_client: Any, fresh_db_url: str
) -> None:
    async with two_keys(
        make_client, url=fresh_db_url, sql_temp_file_limit_mb=3, sql_work_mem_mb=2
    ) as client:
        r = await sql(
            client,
            B,
            "SELECT current_setting('temp_file_limit') AS temp, current_setting('work_mem') AS mem",
        )
        assert r.json()["results"] == [{"temp": "3MB", "mem": "2MB"}], r.text
        r = await sql(client, B, "SELECT set_config('temp_file_limit', '-1', false) AS s")
        refused(r, "set_config")
        r = await sql(client, B, "SELECT set_config('work_mem', '64GB', false) AS s")
        refused(r, "set_config")


@pytest.mark.parametrize(
    ("attempt", "function"),
    [
        ("SELECT txid_current() AS x", "txid_current"),
        ("SELECT pg_current_xact_id() AS x", "pg_current_xact_id"),
        ("SELECT pg_advisory_lock(hashtext('pgpager.instance'), 1) AS x", "pg_advisory_lock"),
        ("SELECT pg_try_advisory_lock(42) AS x", "pg_try_advisory_lock"),
        ("SELECT pg_advisory_xact_lock_shared(42) AS x", "pg_advisory_xact_lock_shared"),
        ("SELECT pg_advisory_unlock_all() AS x", "pg_advisory_unlock_all"),
        # Non-transactional: it writes WAL at once, read-only transaction or not.
        (
            "SELECT pg_logical_emit_message(false, 'x', repeat('x', 1000)) AS x",
            "pg_logical_emit_message",
        ),
    ],
)
async def test_reader_cannot_burn_xids_lock_or_write_wal(
    make_client: Any, attempt: str, function: str
) -> None:
    async with two_keys(make_client) as client:
        refused(await sql(client, B, attempt), function)
        # The refusal is the sandbox, not a broken reader: plain SQL still runs.
        r = await sql(client, B, "SELECT 1 AS one")
        assert r.status_code == 200 and r.json()["results"] == [{"one": 1}], r.text


# --- fairness -----------------------------------------------------------------------------------
async def test_one_key_cannot_take_every_slot(make_client: Any) -> None:
    """Key A fills its per-key slots with slow queries and queues more; key B's query still
    starts at once and completes."""
    tag = f"sandbox-{uuid.uuid4().hex[:8]}"
    async with two_keys(
        make_client, stored_query_concurrency=2, stored_query_concurrency_per_key=1
    ) as client:
        first = await running_sleep(client, A, tag)
        queued = []
        for _ in range(3):
            r = await sql(client, A, f'SELECT pg_sleep(60) AS "{tag}"', **{"async": True})
            queued.append(r.json()["query_id"])
        r = await sql(client, B, "SELECT 7 AS n", **{"async": True})
        qid = r.json()["query_id"]

        async def b_state() -> str:
            return await state(client, B, qid)

        assert await eventually(
            b_state, until=lambda s: s in ("COMPLETED", "FAILED"), what="key B's query ends"
        ) == ("COMPLETED")
        r = await client.get(f"/v1/queries/{qid}/pages", headers=B)
        assert r.json()["results"] == [{"n": 7}]
        # A's own cap held: one running, the rest waiting their turn.
        assert await state(client, A, first) == "RUNNING"
        assert [await state(client, A, q) for q in queued] == ["QUEUED"] * 3
        for q in [first, *queued]:
            assert (await client.delete(f"/v1/queries/{q}", headers=A)).status_code == 200


# --- a server whose database role may not create roles ----------------------------------------
async def test_unprivileged_server_says_what_a_dba_must_do(
    make_client: Any, fresh_db_url: str
) -> None:
    """pgpager's role without CREATEROLE or superuser (a managed database): SQL answers 503 with
    the statements a DBA must run, and works once they have run them."""
    service = "pgpager_t_svc_" + secrets.token_hex(4)
    token = "unprivileged-" + secrets.token_hex(8)
    role = f"pgpager_reader_{parse_api_keys(token)[0].id}"

    def as_superuser(*statements: str | pgsql.Composable) -> None:
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    service_id = pgsql.Identifier(service)
    as_superuser(
        pgsql.SQL("CREATE ROLE {} LOGIN IN ROLE pg_read_all_data, pg_write_all_data").format(
            service_id
        ),
        # What migration 0005 grants its own role: the service needs them (liveness locks,
        # NOTIFY, set_config), the readers must not have them.
        pgsql.SQL(
            "DO $$ DECLARE f regprocedure; BEGIN "
            "FOR f IN SELECT function FROM pgpager.sandbox_functions LOOP "
            "EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, {}); END LOOP; END $$"
        ).format(pgsql.Literal(service)),
    )
    try:
        url = make_conninfo(fresh_db_url, user=service)
        async with make_client(url=url, api_keys=f"{token}:sql") as client:
            ask = {"sql": {"query": "SELECT 1 AS one"}}
            headers = {"Authorization": f"Bearer {token}"}
            r = await client.post("/v1/queries", json=ask, headers=headers)
            assert r.status_code == 503, r.text
            err = r.json()["error"]
            assert err["code"] == "sql_unavailable"
            assert "CREATEROLE" in err["message"]
            assert f"CREATE ROLE {role} LOGIN" in err["message"]

            as_superuser(
                pgsql.SQL("CREATE ROLE {} LOGIN IN ROLE pgpager_reader").format(
                    pgsql.Identifier(role)
                )
            )
            r = await client.post("/v1/queries", json=ask, headers=headers)
            assert r.status_code == 503, r.text
            message = r.json()["error"]["message"]
            assert "temp_file_limit" in message and "work_mem" in message
            assert "--" not in message
            as_superuser(*message.split("as a superuser: ", 1)[1].split("; "))

            r = await client.post("/v1/queries", json=ask, headers=headers)
            assert r.status_code == 200 and r.json()["results"] == [{"one": 1}], r.text
    finally:
        as_superuser(
            pgsql.SQL("DROP OWNED BY {}").format(service_id),
            pgsql.SQL("DROP ROLE {}").format(service_id),
            pgsql.SQL("DROP ROLE IF EXISTS {}").format(pgsql.Identifier(role)),
        )
