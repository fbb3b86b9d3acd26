"""Bearer API keys with scopes; 401/403 in the JSON error shape."""

from __future__ import annotations

from typing import Any

import pytest

KEYS = "reader-token-1:read,writer-token-1:read+write,admin-token-1:admin"


async def test_scopes(make_client: Any, collection_name: str) -> None:
    async with make_client(api_keys=KEYS) as client:
        r = await client.get("/v1/collections")
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"

        r = await client.get("/v1/collections", headers={"Authorization": "Bearer wrong-token-0"})
        assert r.status_code == 401

        reader = {"Authorization": "Bearer reader-token-1"}
        writer = {"Authorization": "Bearer writer-token-1"}
        admin = {"Authorization": "Bearer admin-token-1"}
        assert (await client.get("/v1/collections", headers=reader)).status_code == 200

        body = {"name": collection_name, "dimension": 3}
        r = await client.post("/v1/collections", json=body, headers=reader)
        assert r.status_code == 403
        assert "write" in r.json()["error"]["message"]
        assert (await client.post("/v1/collections", json=body, headers=writer)).status_code == 201
        assert (
            await client.delete(f"/v1/collections/{collection_name}", headers=admin)
        ).status_code == 204

        # /health stays open for load balancers.
        assert (await client.get("/health")).status_code == 200


async def test_no_keys_means_open(client: Any) -> None:
    assert (await client.get("/v1/collections")).status_code == 200


async def test_health_and_docs(client: Any) -> None:
    r = await client.get("/health")
    assert r.json()["database"] == "ok"
    schema = (await client.get("/docs/openapi.json")).json()
    assert "/v1/collections" in schema["paths"]
    assert (await client.get("/docs")).status_code == 200


@pytest.mark.parametrize("private", [False, True])
async def test_docs_and_metrics_are_open_by_a_documented_choice(
    make_client: Any, private: bool
) -> None:
    async with make_client(
        api_keys=KEYS, public_docs=not private, public_metrics=not private
    ) as client:
        for path in ("/docs/openapi.json", "/docs/swagger", "/metrics"):
            r = await client.get(path)
            assert r.status_code == (401 if private else 200), (path, r.status_code)
            r = await client.get(path, headers={"Authorization": "Bearer reader-token-1"})
            assert r.status_code == 200, (path, r.status_code)
        assert (await client.get("/health")).status_code == 200, "health is always open"
