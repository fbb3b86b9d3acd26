"""`next` served ahead of Litestar's routing (pgpager.http.fast) answers exactly as the Litestar
routes do, on the native API and on the Upstash API: two apps on one database, one with the
fast path and one without, asked the same things."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from tests.helpers import clustered, load

KEYS = "admin-token-1:admin,reader-token-1:read,other-token-1:read,writer-token-1:write"
READER = {"Authorization": "Bearer reader-token-1"}
HANDLE = "{handle}"  # in a path or a body: each app's own handle

# (what is asked, headers, body); shared by both APIs where the body shape allows.
AUTH_CASES: list[tuple[str, dict[str, str], bytes]] = [
    ("no key", {}, b"{}"),
    ("a wrong key", {"Authorization": "Bearer wrong"}, b"{}"),
    ("a wrong scheme", {"Authorization": "Basic abc"}, b"{}"),
    ("a key without read", {"Authorization": "Bearer writer-token-1"}, b"{}"),
    ("another key's handle", {"Authorization": "Bearer other-token-1"}, b"{}"),
]
NATIVE_CASES: list[tuple[str, dict[str, str], bytes]] = [
    ("a page", READER, b'{"additional_k": 7}'),
    ("the default size", READER, b"{}"),
    ("zero rows", READER, b'{"additional_k": 0}'),
    ("too many rows", READER, b'{"additional_k": 1001}'),
    ("a string for a number", READER, b'{"additional_k": "7"}'),
    ("an unknown field", READER, b'{"additional_k": 3, "x": 1}'),
    ("no body", READER, b""),
    ("not JSON", READER, b"{not json"),
    ("a JSON list", READER, b"[1]"),
    ("a body past the fast path's size", READER, b" " * 5000 + b'{"additional_k": 2}'),
    *AUTH_CASES,
    ("the last rows", READER, b'{"additional_k": 1000}'),
    ("after exhaustion", READER, b'{"additional_k": 1}'),
]
UPSTASH_CASES: list[tuple[str, dict[str, str], bytes]] = [
    ("a page", READER, b'{"uuid": "{handle}", "additionalK": 7}'),
    ("the default size", READER, b'{"uuid": "{handle}"}'),
    ("an unknown field, ignored", READER, b'{"uuid": "{handle}", "additionalK": 2, "x": 1}'),
    ("too many rows", READER, b'{"uuid": "{handle}", "additionalK": 1001}'),
    ("a string for a number", READER, b'{"uuid": "{handle}", "additionalK": "7"}'),
    ("no uuid", READER, b'{"additionalK": 7}'),
    ("an unknown uuid", READER, b'{"uuid": "no-such-handle"}'),
    ("no body", READER, b""),
    ("not JSON", READER, b"{not json"),
    *[(w, h, b'{"uuid": "{handle}", "additionalK": 1}') for w, h, _ in AUTH_CASES],
    ("the last rows", READER, b'{"uuid": "{handle}", "additionalK": 1000}'),
    ("after exhaustion", READER, b'{"uuid": "{handle}", "additionalK": 1}'),
]


def answer(r: Any, handle: str) -> tuple[int, Any, list[str]]:
    # Each app has its own handle; an answer that names it is compared without it.
    body = json.loads(r.text.replace(handle, "HANDLE"))
    if isinstance(body, dict):
        body.pop("handle", None)
    # The same header names (their order means nothing in HTTP).
    return r.status_code, body, sorted(name.lower() for name in r.headers)


class TwoApps:
    """The same requests to an app with the fast path and one without; records which requests
    the fast path handed to Litestar."""

    def __init__(self, fast: Any, slow: Any) -> None:
        self.fast, self.slow = fast, slow
        self.handed_over: list[str] = []
        fallback = fast.app.fast_next.app

        async def counted(scope: Any, receive: Any, send: Any) -> None:
            self.handed_over.append(scope["path"])
            await fallback(scope, receive, send)

        fast.app.fast_next.app = counted

    async def start(self, path: str, body: Any, handle_of: Callable[[Any], str]) -> list[str]:
        """The same resumable query started on both apps: their two handles."""
        handles = []
        for client in (self.fast, self.slow):
            r = await client.post(path, json=body, headers=READER)
            assert r.status_code in (200, 201), r.text
            handles.append(handle_of(r))
        return handles

    async def ask(
        self, path: str, cases: list[tuple[str, dict[str, str], bytes]], handles: list[str]
    ) -> list[str]:
        """Every case to both apps, answers compared; returns the cases the fast path served."""
        served_fast = []
        for what, headers, body in cases:
            answers = []
            for client, handle in zip((self.fast, self.slow), handles, strict=True):
                before = len(self.handed_over)
                r = await client.post(
                    path.replace(HANDLE, handle),
                    content=body.replace(HANDLE.encode(), handle.encode()),
                    headers={"content-type": "application/json", **headers},
                )
                if client is self.fast and len(self.handed_over) == before:
                    served_fast.append(what)
                answers.append(answer(r, handle))
            assert answers[0] == answers[1], what
        return served_fast


@asynccontextmanager
async def two_apps(make_client: Any, name: str, pg_url: str) -> AsyncIterator[TwoApps]:
    n, dim = 60, 8
    async with (
        make_client(api_keys=KEYS) as fast,
        make_client(api_keys=KEYS, http_fast_next=False, instance_id="slow-path") as slow,
    ):
        assert fast.app.fast_next is not None and slow.app.fast_next is None
        r = await fast.post(
            "/v1/collections",
            json={"name": name, "dimension": dim, "metric": "cosine"},
            headers={"Authorization": "Bearer admin-token-1"},
        )
        assert r.status_code == 201, r.text
        load(pg_url, name, clustered(n, dim, seed=2))
        yield TwoApps(fast, slow)


async def test_fast_next_answers_as_the_route_does(
    make_client: Any, collection_name: str, pg_url: str
) -> None:
    async with two_apps(make_client, collection_name, pg_url) as apps:
        handles = await apps.start(
            f"/v1/collections/{collection_name}/resumable-queries",
            {"vector": [1.0] * 8, "top_k": 5},
            lambda r: r.json()["handle"],
        )

        served = await apps.ask("/v1/resumable-queries/{handle}/next", NATIVE_CASES, handles)
        # Every well-formed, authorized request was the fast path's; the rest Litestar's.
        assert served == [
            "a page",
            "the default size",
            "zero rows",
            "too many rows",
            "another key's handle",
            "the last rows",
            "after exhaustion",
        ]
        unknown = [("an unknown handle", READER, b"{}")]
        served = await apps.ask("/v1/resumable-queries/no-such/next", unknown, ["no-such"] * 2)
        assert served == ["an unknown handle"]

        # A stopped handle: the same 410 from both.
        for client, handle in zip((apps.fast, apps.slow), handles, strict=True):
            r = await client.delete(f"/v1/resumable-queries/{handle}", headers=READER)
            assert r.status_code == 200, r.text
        stopped = [("a stopped handle", READER, b'{"additional_k": 1}')]
        served = await apps.ask("/v1/resumable-queries/{handle}/next", stopped, handles)
        assert served == ["a stopped handle"]


async def test_fast_next_answers_as_the_upstash_route_does(
    make_client: Any, collection_name: str, pg_url: str
) -> None:
    async with two_apps(make_client, collection_name, pg_url) as apps:
        handles = await apps.start(
            f"/upstash/{collection_name}/resumable-query",
            {"vector": [1.0] * 8, "topK": 5, "includeMetadata": True},
            lambda r: r.json()["result"]["uuid"],
        )

        path = f"/upstash/{collection_name}/resumable-query-next"
        served = await apps.ask(path, UPSTASH_CASES, handles)
        assert served == [
            "a page",
            "the default size",
            "an unknown field, ignored",
            "too many rows",
            "an unknown uuid",
            "another key's handle",
            "the last rows",
            "after exhaustion",
        ]
        # An ended handle: the same error from both.
        end = b'{"uuid": "{handle}"}'
        for client, handle in zip((apps.fast, apps.slow), handles, strict=True):
            r = await client.post(
                f"/upstash/{collection_name}/resumable-query-end",
                content=end.replace(HANDLE.encode(), handle.encode()),
                headers=READER,
            )
            assert r.status_code == 200, r.text
        stopped = [("a stopped handle", READER, b'{"uuid": "{handle}", "additionalK": 1}')]
        served = await apps.ask(path, stopped, handles)
        assert served == ["a stopped handle"]
