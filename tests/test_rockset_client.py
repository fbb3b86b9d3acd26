"""The official ``rockset`` client (PyPI 2.1.2), unmodified, against a real ``pgpager serve``
with API keys: the seed-004 flow and every Queries method the client has.

``RocksetClient`` accepts only ``*.rockset.com`` hosts, so the client is built as it builds
itself: its ``Configuration`` and ``ApiClient``, and its ``QueriesApiWrapper`` class.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rockset import ApiClient, Configuration
from rockset.exceptions import (
    BadRequestException,
    NotFoundException,
    UnauthorizedException,
)
from rockset.models import AsyncQueryOptions, QueryParameter, QueryRequestSql
from rockset.rockset_client import QueriesApiWrapper

from tests.conftest import ServerProcess
from tests.helpers import eventually_sync

KEY = "rockset-key-one:read+sql"
OTHER = "rockset-key-two:read+sql"
SERIES_25 = "SELECT g AS n FROM generate_series(1, 25) g ORDER BY g"


@pytest.fixture(scope="module")
def server(pg_url: str) -> Iterator[ServerProcess]:
    s = ServerProcess(pg_url, {"PGPAGER_API_KEYS": f"{KEY},{OTHER}"})
    s.start()
    yield s
    s.stop()


def client_for(server: ServerProcess, token: str) -> QueriesApiWrapper:
    config = Configuration(host=server.url, api_key=token)
    return QueriesApiWrapper(ApiClient(config))


@pytest.fixture(scope="module")
def rs(server: ServerProcess) -> QueriesApiWrapper:
    return client_for(server, KEY.split(":")[0])


def body_of(exc: Exception) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(exc.body)
    return out


# --- the seed's flow --------------------------------------------------------------------------
def test_seed_flow_start_cursor_pages_offset_status(rs: QueriesApiWrapper) -> None:
    r = rs.query(sql=QueryRequestSql(query=SERIES_25), max_initial_results=10)
    assert [row["n"] for row in r.results] == list(range(1, 11))
    assert r.results_total_doc_count == 25
    assert r.pagination.current_page_doc_count == 10
    assert r.pagination.start_cursor is None
    cursor = r.pagination.next_cursor
    assert cursor and r.pagination.next_page_link.endswith(f"cursor={cursor}&docs=10")
    qid = r.query_id

    page = rs.get_query_results(query_id=qid, cursor=cursor, docs=10)
    assert [row["n"] for row in page.results] == list(range(11, 21))
    assert page.pagination.next_cursor_offset == 20
    assert page.pagination.start_cursor == cursor
    last = rs.get_query_results(query_id=qid, cursor=page.pagination.next_cursor, docs=10)
    assert [row["n"] for row in last.results] == list(range(21, 26))
    assert last.pagination.next_cursor is None and last.pagination.next_page_link is None

    by_offset = rs.get_query_results(query_id=qid, offset=22, docs=2)
    assert [row["n"] for row in by_offset.results] == [23, 24]
    assert by_offset.pagination.next_cursor_offset == 24
    from_cursor = rs.get_query_results(query_id=qid, cursor=cursor, offset=3, docs=1)
    assert [row["n"] for row in from_cursor.results] == [14]

    info = rs.get_query(query_id=qid).data
    assert info.status == "COMPLETED" and info["state"] == "COMPLETED"
    assert info.sql == SERIES_25
    assert info.executed_by and info.executed_by == info["run_by"]
    assert info.expires_at > info.submitted_at
    assert info.stats.result_set_document_count == 25
    assert info.stats["doc_count"] == 25
    # Finished queries are not active.
    assert qid not in [q.query_id for q in rs.list_active_queries().data]


def test_named_parameters_of_every_scalar_type(rs: QueriesApiWrapper) -> None:
    params = [
        QueryParameter(name="i", type="int", value="-42"),
        QueryParameter(name="f", type="float", value="2.5"),
        QueryParameter(name="b", type="bool", value="True"),
        QueryParameter(name="s", type="string", value="it's :not_a_param"),
        QueryParameter(name="d", type="date", value="2024-05-31"),
        QueryParameter(name="dt", type="datetime", value="2024-05-31 12:30:00"),
        QueryParameter(name="t", type="time", value="12:30:15"),
        QueryParameter(name="ts", type="timestamp", value="2024-05-31T12:30:00Z"),
        QueryParameter(name="by", type="bytes", value="AAH/"),
        QueryParameter(name="us", type="microsecond_interval", value="1500000"),
        QueryParameter(name="n", type="null", value=""),
    ]
    text = (
        "SELECT :i AS i, :f AS f, :b AS b, :s AS s, :d AS d, :dt AS dt, :t AS t, "
        "(:ts)::timestamptz AT TIME ZONE 'UTC' AS ts, :by AS by, :us AS us, :n::int AS n, "
        "':i' AS literal, pg_typeof(:i)::text AS i_type, pg_typeof(:ts)::text AS ts_type"
    )
    r = rs.query(sql=QueryRequestSql(query=text, parameters=params))
    assert r.results == [
        {
            "i": -42,
            "f": 2.5,
            "b": True,
            "s": "it's :not_a_param",
            "d": "2024-05-31",
            "dt": "2024-05-31T12:30:00",
            "t": "12:30:15",
            "ts": "2024-05-31T12:30:00",
            "by": "\\x0001ff",
            "us": "00:00:01.5",
            "n": None,
            "literal": ":i",
            "i_type": "bigint",
            "ts_type": "timestamp with time zone",
        }
    ]
    # In a WHERE clause, used twice, next to a cast.
    r = rs.query(
        sql=QueryRequestSql(
            query="SELECT n FROM generate_series(1, 100) n WHERE n >= :lo AND n::text <> :lo::text",
            parameters=[QueryParameter(name="lo", type="int", value="95")],
        )
    )
    assert [row["n"] for row in r.results] == [96, 97, 98, 99, 100]


@pytest.mark.parametrize(
    ("query", "params", "says"),
    [
        ("SELECT :lo AS x", [("lo", "int", "ten")], "'lo' has type int"),
        ("SELECT :lo AS x", [("lo", "date", "31/05/2024")], "'lo' has type date"),
        ("SELECT :lo AS x", [("lo", "money", "1")], "'lo' has type 'money'"),
        ("SELECT :lo AS x, :hi AS y", [("lo", "int", "1")], "no parameter named 'hi'"),
        ("SELECT :lo AS x", [("lo", "int", "1"), ("extra", "int", "2")], "'extra'"),
        ("SELECT :lo AS x", [("lo", "int", "1"), ("lo", "int", "2")], "'lo' is given twice"),
    ],
)
def test_bad_named_parameters_are_400_naming_them(
    rs: QueriesApiWrapper, query: str, params: list[tuple[str, str, str]], says: str
) -> None:
    given = [QueryParameter(name=n, type=t, value=v) for n, t, v in params]
    with pytest.raises(BadRequestException) as raised:
        rs.query(sql=QueryRequestSql(query=query, parameters=given))
    body = body_of(raised.value)
    assert raised.value.status == 400
    assert says in body["message"] and body["type"] == "INVALIDINPUT"


def test_syntax_error_points_into_the_users_text(rs: QueriesApiWrapper) -> None:
    with pytest.raises(BadRequestException) as raised:
        rs.query(sql=QueryRequestSql(query="SELEC broken"))
    body = body_of(raised.value)
    assert body["type"] == "QUERY_ERROR"
    assert 'at or near "SELEC"' in body["message"]
    assert (body["line"], body["column"]) == (1, 1)
    # On a later line, after a named parameter that changes the text's length.
    text = "SELECT :long_parameter_name AS a\nFROM generate_series(1, 2) g\nWHERE g IN (1,, 2)"
    with pytest.raises(BadRequestException) as raised:
        rs.query(
            sql=QueryRequestSql(
                query=text,
                parameters=[QueryParameter(name="long_parameter_name", type="int", value="1")],
            )
        )
    body = body_of(raised.value)
    assert (body.get("line"), body.get("column")) == (3, text.splitlines()[2].index(",,") + 2), body
    assert 'at or near ","' in body["message"]
    # Valid SQL that is not a query a cursor can run says so.
    with pytest.raises(BadRequestException) as raised:
        rs.query(sql=QueryRequestSql(query="CREATE TABLE nope (x int)"))
    assert "not a query a cursor can run" in body_of(raised.value)["message"]


def test_default_row_limit_and_initial_page_size(rs: QueriesApiWrapper) -> None:
    text = "SELECT g FROM generate_series(1, 100) g ORDER BY g"
    r = rs.query(sql=QueryRequestSql(query=text, default_row_limit=7))
    assert r.results_total_doc_count == 7 and len(r.results) == 7
    # The query's own LIMIT rules over the default.
    r = rs.query(sql=QueryRequestSql(query=text + " LIMIT 20", default_row_limit=7))
    assert r.results_total_doc_count == 20
    r = rs.query(sql=QueryRequestSql(query=text, initial_paginate_response_doc_count=3))
    assert [row["g"] for row in r.results] == [1, 2, 3] and r.results_total_doc_count == 100


# --- async, active queries, cancel ------------------------------------------------------------
def test_async_with_client_timeout_answers_inline_when_done(rs: QueriesApiWrapper) -> None:
    r = rs.query(
        sql=QueryRequestSql(query=SERIES_25),
        _async=True,
        async_options=AsyncQueryOptions(client_timeout_ms=30_000, max_initial_results=5),
    )
    assert r["status"] == "COMPLETED"
    assert [row["n"] for row in r.results] == [1, 2, 3, 4, 5]
    assert r.results_total_doc_count == 25


def test_async_runs_on_and_is_paged_when_complete(rs: QueriesApiWrapper) -> None:
    r = rs.query(
        sql=QueryRequestSql(query="SELECT g AS n, pg_sleep(0.01) FROM generate_series(1, 60) g"),
        _async=True,
        async_options=AsyncQueryOptions(client_timeout_ms=1, timeout_ms=60_000),
    )
    qid = r.query_id
    assert r["status"] in ("QUEUED", "RUNNING")
    assert "results" not in r.to_dict()
    eventually_sync(
        lambda: rs.get_query(query_id=qid).data.status == "COMPLETED",
        what="the async query completes",
    )
    page = rs.get_query_results(query_id=qid, docs=50)
    assert [row["n"] for row in page.results] == list(range(1, 51))
    rest = rs.get_query_results(query_id=qid, cursor=page.pagination.next_cursor)
    assert [row["n"] for row in rest.results] == list(range(51, 61))


def test_list_active_and_cancel(rs: QueriesApiWrapper) -> None:
    r = rs.query(
        sql=QueryRequestSql(query="SELECT pg_sleep(60) AS slept"),
        _async=True,
        async_options=AsyncQueryOptions(timeout_ms=120_000),
    )
    qid = r.query_id
    eventually_sync(
        lambda: rs.get_query(query_id=qid).data.status == "RUNNING", what="the query runs"
    )
    active = rs.list_active_queries().data
    assert qid in [q.query_id for q in active]
    assert {q.status for q in active} <= {"QUEUED", "RUNNING"}

    started = time.monotonic()
    cancelled = rs.cancel_query(query_id=qid).data
    assert cancelled.status == "CANCELLED" and cancelled.query_id == qid
    assert time.monotonic() - started < 30  # not left to run its 60 s
    info = rs.get_query(query_id=qid).data
    assert info.status == "CANCELLED"
    assert info.query_errors[0].type == "QUERY_CANCELLED"
    assert qid not in [q.query_id for q in rs.list_active_queries().data]
    with pytest.raises(Exception) as raised:
        rs.get_query_results(query_id=qid)
    assert getattr(raised.value, "status", None) == 410
    assert body_of(raised.value)["type"] == "QUERY_CANCELLED"
    # Cancelling an ended query leaves it as it is.
    again = rs.cancel_query(query_id=qid).data
    assert again.status == "CANCELLED"
    done = rs.query(sql=QueryRequestSql(query=SERIES_25))
    assert rs.cancel_query(query_id=done.query_id).data.status == "COMPLETED"
    assert rs.get_query_results(query_id=done.query_id, docs=1).results == [{"n": 1}]


def test_failed_async_query_reports_error_status(rs: QueriesApiWrapper) -> None:
    r = rs.query(
        sql=QueryRequestSql(query="SELECT 1 / (g - 3) FROM generate_series(1, 5) g"), _async=True
    )
    qid = r.query_id
    eventually_sync(
        lambda: rs.get_query(query_id=qid).data.status == "ERROR", what="the query fails"
    )
    info = rs.get_query(query_id=qid).data
    assert info["state"] == "FAILED"
    assert "division by zero" in info.query_errors[0].message
    assert info.query_errors[0].type == "QUERY_ERROR"


# --- keys and errors --------------------------------------------------------------------------
def test_keys_unknown_ids_and_other_keys(server: ServerProcess, rs: QueriesApiWrapper) -> None:
    with pytest.raises(UnauthorizedException) as raised:
        client_for(server, "not-a-key-at-all").list_active_queries()
    assert body_of(raised.value)["type"] == "AUTHEXCEPTION"
    with pytest.raises(NotFoundException) as missing:
        rs.get_query(query_id="5b596206-c632-4a08-8343-0c560f7ef7f1")
    assert body_of(missing.value)["type"] == "NOTFOUND"
    mine = rs.query(sql=QueryRequestSql(query=SERIES_25)).query_id
    other = client_for(server, OTHER.split(":")[0])
    with pytest.raises(NotFoundException):
        other.get_query(query_id=mine)
    with pytest.raises(NotFoundException):
        other.cancel_query(query_id=mine)


def test_seed_curl_with_apikey_header_and_positional_parameters(server: ServerProcess) -> None:
    token = KEY.split(":")[0]
    headers = {"Authorization": f"ApiKey {token}"}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        r = http.post(
            "/v1/orgs/self/queries",
            json={"sql": {"query": "SELECT $1::int + 1 AS x", "parameters": [41]}},
        )
        assert r.status_code == 200, r.text
        assert r.json()["results"] == [{"x": 42}]
        # The native API takes the same header, and named parameters too.
        r = http.post(
            "/v1/queries",
            json={
                "sql": {
                    "query": "SELECT :x + 1 AS x",
                    "parameters": [{"name": "x", "type": "int", "value": "1"}],
                }
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["results"] == [{"x": 2}]
        mixed = http.post(
            "/v1/queries",
            json={"sql": {"query": "SELECT 1", "parameters": [1, {"name": "x", "type": "int"}]}},
        )
        assert mixed.status_code == 422 and "mixes" in mixed.json()["error"]["message"]
        bad = http.post(
            "/v1/orgs/self/queries", json={"sql": {"query": "SELECT 1"}, "max_initial_results": -1}
        )
        assert bad.status_code == 400 and bad.json()["type"] == "INVALIDINPUT"


async def test_sync_query_cancelled_from_elsewhere_answers_410(
    server: ServerProcess, rs: QueriesApiWrapper
) -> None:
    token = KEY.split(":")[0]
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"ApiKey {token}"}, timeout=60
    ) as http:
        tag = "sync_cancel_tag"
        sync = asyncio.create_task(
            http.post(
                "/v1/orgs/self/queries", json={"sql": {"query": f'SELECT pg_sleep(30) AS "{tag}"'}}
            )
        )

        async def running_id() -> str | None:
            listed = (await http.get("/v1/orgs/self/queries")).json()["data"]
            ids = [
                q["query_id"]
                for q in listed
                if tag in (q["sql"] or "") and q["status"] == "RUNNING"
            ]
            return ids[0] if ids else None

        qid = None
        for _ in range(300):
            qid = await running_id()
            if qid:
                break
            await asyncio.sleep(0.1)
        assert qid, "the sync query shows in the active list"
        assert (await http.delete(f"/v1/orgs/self/queries/{qid}")).json()["data"][
            "status"
        ] == "CANCELLED"
        r = await sync
        assert r.status_code == 410, r.text
        assert r.json()["type"] == "QUERY_CANCELLED"


def test_the_readme_recipe_runs_as_written(server: ServerProcess) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("#### Rockset's API and the official `rockset` client") :]
    code = section[section.index("```python\n") + 10 : section.index("```\n", 10)]
    code = code.replace("http://127.0.0.1:8000", server.url).replace("<api key>", KEY.split(":")[0])
    scope: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["r"].results_total_doc_count == 9901
    assert [row["n"] for row in scope["page"].results][:2] == [2100, 2101]
    assert scope["status"] == "COMPLETED"
    assert scope["slow"].query_id in [q.query_id for q in scope["active"]]
    rs = scope["queries"]
    assert rs.get_query(query_id=scope["slow"].query_id).data.status == "CANCELLED"


async def test_oversized_body_is_413_in_rocksets_shape(make_client: Any) -> None:
    async with make_client(max_request_bytes=1000) as client:
        r = await client.post(
            "/v1/orgs/self/queries", json={"sql": {"query": "SELECT 1 -- " + "x" * 2000}}
        )
        assert r.status_code == 413, r.text
        body = r.json()
        assert body["type"] == "CONTENTTOOLARGE" and body["code"] == "request_too_large"
        assert "PGPAGER_MAX_REQUEST_BYTES" in body["message"]
