"""Every HTTP response names the instance that answered (X-Pgpager-Instance), errors included:
a load balancer that keeps a handle on one instance, or a person reading a 404, needs it as
much on a failure as on a page."""

from __future__ import annotations

from typing import Any

KEYS = "admin-token-1:admin,reader-token-1:read"
READER = {"Authorization": "Bearer reader-token-1"}


async def test_errors_of_every_kind_carry_the_instance_header(make_client: Any) -> None:
    async with make_client(api_keys=KEYS, instance_id="inst-7") as client:
        asked = [
            ("GET", "/no/such/route", {}, None),  # 404 from the router
            ("PUT", "/health", {}, None),  # 405
            ("GET", "/v1/collections", {}, None),  # 401: no key
            ("POST", "/v1/collections", READER, {"name": "x"}),  # 403: a read key
            ("GET", "/v1/collections/no_such", READER, None),  # 404 of pgpager's own
            ("POST", "/v1/resumable-queries/nope/next", READER, {}),  # next, fast path
            ("POST", "/v1/resumable-queries/nope/next", READER, {"k": 1}),  # 422, Litestar
            ("POST", "/upstash/no_such/query", READER, {"vector": [1.0], "topK": 1}),
            ("GET", "/v1/orgs/self/queries/no-such", READER, None),
        ]
        for method, path, headers, body in asked:
            r = await client.request(method, path, headers=headers, json=body)
            assert r.status_code >= 400, (method, path, r.status_code)
            assert r.headers.get("x-pgpager-instance") == "inst-7", (method, path, r.headers)
            assert len(r.headers.get_list("x-pgpager-instance")) == 1
        # And a success, once (no second copy added on the way out).
        r = await client.get("/health")
        assert r.status_code == 200
        assert r.headers.get_list("x-pgpager-instance") == ["inst-7"]
        r = await client.options("/health")
        assert r.headers.get_list("x-pgpager-instance") == ["inst-7"]
