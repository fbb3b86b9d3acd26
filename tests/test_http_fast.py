"""`next` served ahead of Litestar's routing (pgpager.http.fast) answers exactly as the Litestar
route does: two apps on one database, one with the fast path and one without, asked the same
things."""

from __future__ import annotations

import json
from typing import Any

from tests.helpers import clustered, load

KEYS = "admin-token-1:admin,reader-token-1:read,other-token-1:read,writer-token-1:write"
READER = {"Authorization": "Bearer reader-token-1"}

# (what is asked, headers, body); the handle is each app's own, or the one named.
CASES: list[tuple[str, dict[str, str], bytes, str | None]] = [
    ("a page", READER, b'{"additional_k": 7}', None),
    ("the default size", READER, b"{}", None),
    ("zero rows", READER, b'{"additional_k": 0}', None),
    ("too many rows", READER, b'{"additional_k": 1001}', None),
    ("a string for a number", READER, b'{"additional_k": "7"}', None),
    ("an unknown field", READER, b'{"additional_k": 3, "x": 1}', None),
    ("no body", READER, b"", None),
    ("not JSON", READER, b"{not json", None),
    ("a JSON list", READER, b"[1]", None),
    ("a body past the fast path's size", READER, b" " * 5000 + b'{"additional_k": 2}', None),
    ("no key", {}, b'{"additional_k": 1}', None),
    ("a wrong key", {"Authorization": "Bearer wrong"}, b'{"additional_k": 1}', None),
    ("a wrong scheme", {"Authorization": "Basic abc"}, b'{"additional_k": 1}', None),
    ("a key without read", {"Authorization": "Bearer writer-token-1"}, b"{}", None),
    ("another key's handle", {"Authorization": "Bearer other-token-1"}, b"{}", None),
    ("an unknown handle", READER, b"{}", "no-such-handle"),
    ("the last rows", READER, b'{"additional_k": 1000}', None),
    ("after exhaustion", READER, b'{"additional_k": 1}', None),
]


def answer(r: Any, handle: str) -> tuple[int, Any, list[str]]:
    # Each app has its own handle; an answer that names it is compared without it.
    body = json.loads(r.text.replace(handle, "HANDLE"))
    # The same header names (their order means nothing in HTTP).
    return r.status_code, body, sorted(name.lower() for name in r.headers)


async def test_fast_next_answers_as_the_route_does(
    make_client: Any, collection_name: str, pg_url: str
) -> None:
    n, dim = 60, 8
    data = clustered(n, dim, seed=2)
    q = (data[0] + 0.01).tolist()
    admin = {"Authorization": "Bearer admin-token-1"}
    async with (
        make_client(api_keys=KEYS) as fast,
        make_client(api_keys=KEYS, http_fast_next=False, instance_id="slow-path") as slow,
    ):
        assert fast.app.fast_next is not None and slow.app.fast_next is None
        r = await fast.post(
            "/v1/collections",
            json={"name": collection_name, "dimension": dim, "metric": "cosine"},
            headers=admin,
        )
        assert r.status_code == 201, r.text
        load(pg_url, collection_name, data)
        handles = []
        for client in (fast, slow):
            r = await client.post(
                f"/v1/collections/{collection_name}/resumable-queries",
                json={"vector": q, "top_k": 5},
                headers=READER,
            )
            assert r.status_code == 201, r.text
            handles.append(r.json()["handle"])

        handed_over: list[str] = []
        fallback = fast.app.fast_next.app

        async def counted(scope: Any, receive: Any, send: Any) -> None:
            handed_over.append(scope["path"])
            await fallback(scope, receive, send)

        fast.app.fast_next.app = counted
        served_fast = []
        for what, headers, body, named in CASES:
            answers = []
            for client, handle in zip((fast, slow), handles, strict=True):
                before = len(handed_over)
                r = await client.post(
                    f"/v1/resumable-queries/{named or handle}/next",
                    content=body,
                    headers={"content-type": "application/json", **headers},
                )
                if client is fast and len(handed_over) == before:
                    served_fast.append(what)
                answers.append(answer(r, named or handle))
            assert answers[0] == answers[1], what
        # Every well-formed, authorized request was the fast path's; the rest Litestar's.
        assert served_fast == [
            "a page",
            "the default size",
            "zero rows",
            "too many rows",
            "another key's handle",
            "an unknown handle",
            "the last rows",
            "after exhaustion",
        ]

        # A stopped handle: the same 410 from both.
        stopped = []
        for client, handle in zip((fast, slow), handles, strict=True):
            r = await client.delete(f"/v1/resumable-queries/{handle}", headers=READER)
            assert r.status_code == 200, r.text
            r = await client.post(
                f"/v1/resumable-queries/{handle}/next", json={"additional_k": 1}, headers=READER
            )
            stopped.append(answer(r, handle))
        assert stopped[0] == stopped[1] and stopped[0][0] == 410
