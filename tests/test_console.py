"""The routes the web console stands on, in-process: who a key is (``/v1/whoami``), the admin
view of every key's handles with stop, the console's files, and docs pages that load nothing
from outside pgpager. The console itself is driven in a browser in test_console_browser.py."""

from __future__ import annotations

import re
from typing import Any

from pgpager.http.static import CONSOLE_DIR
from pgpager.settings import SCOPES, parse_api_keys

KEYS = "reader-token-1:read,sql-token-1:sql,admin-token-1:admin"
READER = {"Authorization": "Bearer reader-token-1"}
SQL = {"Authorization": "Bearer sql-token-1"}
ADMIN = {"Authorization": "Bearer admin-token-1"}
KEY_IDS = {k.token: k.id for k in parse_api_keys(KEYS)}


async def test_whoami_names_the_key_and_what_it_may_do(make_client: Any) -> None:
    async with make_client(api_keys=KEYS) as client:
        r = await client.get("/v1/whoami")
        assert r.status_code == 401, r.text
        r = await client.get("/v1/whoami", headers={"Authorization": "Bearer not-a-key-000"})
        assert r.status_code == 401, r.text
        for headers, token, scopes in (
            (READER, "reader-token-1", ["read"]),
            (SQL, "sql-token-1", ["sql"]),
            (ADMIN, "admin-token-1", list(SCOPES)),
        ):
            r = await client.get("/v1/whoami", headers=headers)
            assert r.status_code == 200, r.text
            assert r.json() == {
                "key_id": KEY_IDS[token],
                "scopes": scopes,
                "keys_configured": True,
            }


async def test_whoami_without_keys(client: Any) -> None:
    r = await client.get("/v1/whoami")
    assert r.json() == {"key_id": None, "scopes": list(SCOPES), "keys_configured": False}


async def test_admin_lists_and_stops_every_keys_handles(
    make_client: Any, collection_name: str
) -> None:
    async with make_client(api_keys=KEYS) as client:
        r = await client.post(
            "/v1/collections", json={"name": collection_name, "dimension": 3}, headers=ADMIN
        )
        assert r.status_code == 201, r.text
        vectors = [{"id": f"v{i}", "vector": [1, i, 0]} for i in range(5)]
        r = await client.post(
            f"/v1/collections/{collection_name}/vectors", json={"vectors": vectors}, headers=ADMIN
        )
        assert r.status_code == 200, r.text
        r = await client.post(
            f"/v1/collections/{collection_name}/resumable-queries",
            json={"vector": [1, 0, 0], "top_k": 2},
            headers=READER,
        )
        assert r.status_code == 201, r.text
        handle = r.json()["handle"]

        # Only an admin key sees them.
        assert (await client.get("/v1/admin/handles", headers=READER)).status_code == 403
        r = await client.get(
            "/v1/admin/handles", params={"collection": collection_name}, headers=ADMIN
        )
        assert r.status_code == 200, r.text
        (row,) = r.json()["handles"]
        assert row["handle"] == handle
        assert row["state"] == "active"
        assert row["position"] == 2
        assert row["api_key_id"] == KEY_IDS["reader-token-1"]
        assert row["owner_instance"]
        assert 0 < row["expires_in_seconds"] <= 3600
        assert row["age_seconds"] >= row["idle_seconds"] >= 0

        r = await client.delete(f"/v1/admin/handles/{handle}", headers=READER)
        assert r.status_code == 403, r.text
        r = await client.delete(f"/v1/admin/handles/{handle}", headers=ADMIN)
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "stopped"
        assert r.json()["expires_in_seconds"] is None
        assert "operator" in r.json()["state_reason"]

        # The key that opened it hears so; stopping again leaves it as it is.
        r = await client.post(
            f"/v1/resumable-queries/{handle}/next", json={"additional_k": 2}, headers=READER
        )
        assert r.status_code == 410, r.text
        r = await client.delete(f"/v1/admin/handles/{handle}", headers=ADMIN)
        assert (r.status_code, r.json()["state"]) == (200, "stopped")
        r = await client.get(
            "/v1/admin/handles",
            params={"state": "active", "collection": collection_name},
            headers=ADMIN,
        )
        assert r.json()["handles"] == []

        r = await client.delete("/v1/admin/handles/no-such-handle", headers=ADMIN)
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "handle_not_found"
        r = await client.get("/v1/admin/handles", params={"state": "gone"}, headers=ADMIN)
        assert r.status_code == 422, r.text


async def test_console_files_are_served_without_a_key(make_client: Any) -> None:
    async with make_client(api_keys=KEYS, public_docs=False) as client:
        for name in ("index.html", "console.js", "console.css"):
            r = await client.get(f"/console/{name}")
            assert r.status_code == 200, (name, r.status_code)
            assert r.content == (CONSOLE_DIR / name).read_bytes()
        for path in ("/console/", "/console"):
            r = await client.get(path)
            assert r.status_code == 200, path
            assert r.content == (CONSOLE_DIR / "index.html").read_bytes()


def _references(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)


async def test_docs_pages_load_only_pgpagers_own_files(client: Any) -> None:
    """/docs and /docs/swagger name no other host: every script, style and icon is a path on
    this server, and each one is there."""
    for page in ("/docs", "/docs/swagger"):
        r = await client.get(page)
        assert r.status_code == 200, page
        refs = _references(r.text)
        assert any(ref.endswith("swagger-ui-bundle.js") for ref in refs), refs
        for ref in refs:
            assert ref.startswith("/") and not ref.startswith("//"), (page, ref)
            asset = await client.get(ref)
            assert asset.status_code == 200, (page, ref)
            assert len(asset.content) > 0
        assert "http://" not in r.text.split("<body>")[0]
        assert "https://" not in r.text.split("<body>")[0]
