"""The SQL sandbox against other users: one API key's stored SQL must not hurt another key's
queries, the pgpager servers, or the disk (issue 12, item 9).

Two ``sql`` keys share a server; key B attacks, and each test checks what key A or the server
sees afterwards (A's query still running, the cursors still held, the limit named in a 4xx).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar.testing import AsyncTestClient

from tests.test_stored_queries import poll

Client = AsyncTestClient[Any]

KEYS = "sandbox-key-a:read+write+sql,sandbox-key-b:read+sql"
A = {"Authorization": "Bearer sandbox-key-a"}
B = {"Authorization": "Bearer sandbox-key-b"}


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

    await poll(now, lambda s: s == "RUNNING")
    return qid


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

        assert await poll(b_state, lambda s: s in ("COMPLETED", "FAILED"), within_s=10) == (
            "COMPLETED"
        )
        r = await client.get(f"/v1/queries/{qid}/pages", headers=B)
        assert r.json()["results"] == [{"n": 7}]
        # A's own cap held: one running, the rest waiting their turn.
        assert await state(client, A, first) == "RUNNING"
        assert [await state(client, A, q) for q in queued] == ["QUEUED"] * 3
        for q in [first, *queued]:
            assert (await client.delete(f"/v1/queries/{q}", headers=A)).status_code == 200
