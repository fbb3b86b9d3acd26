"""The web console in a real browser (headless Chromium, no internet) against a real
``pgpager serve``: sign in with an API key, see what the key may do, page a resumable query to
its end with "Load more", page through offset pages up to the cap's error, stop a handle from
the handles table, run a stored query and delete it, watch the metrics chart, and read the
docs offline. Each view's screenshot is kept (tests/.artifacts, or $PGPAGER_TEST_ARTIFACTS).

Without Chromium the set-up installs it (tests/browser.py); where it cannot, these tests fail
(they do not skip)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pgpager.settings import parse_api_keys
from tests.browser import Browser
from tests.conftest import ServerProcess, create_database, db_name, drop_database
from tests.helpers import MINILM, eventually_sync

ADMIN_TOKEN = "console-admin-token"
READ_TOKEN = "console-read-token"
SQL_TOKEN = "console-sql-token"
CAP = 30  # PGPAGER_QUERY_MAXIMUM_RESULTS: offset + limit may not exceed it
ROWS = 57
GENRES = ("drama", "comedy", "noir")


def _vectors() -> list[dict[str, Any]]:
    return [
        {
            "id": f"film-{i:03d}",
            "vector": [1.0, i / ROWS, (i % 7) / 7],
            "metadata": {"genre": GENRES[i % 3], "n": i},
        }
        for i in range(ROWS)
    ]


class Console:
    """A server with data, and the browser looking at it."""

    def __init__(self, server: ServerProcess, browser: Browser) -> None:
        self.server = server
        self.browser = browser
        self.collection = "films"

    def api(self, method: str, path: str, token: str = ADMIN_TOKEN, **kw: Any) -> Any:
        r = httpx.request(
            method,
            self.server.url + path,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            **kw,
        )
        return r

    def sign_in(self, token: str, hash_: str = "") -> None:
        b = self.browser
        self.signed_out(hash_)
        b.wait("!document.querySelector('#login').hidden", "the console asks for a key")
        b.fill("#login-key", token)
        b.click("#login-go")
        b.wait("document.querySelector('#who').textContent.includes('key ')", "signed in")

    def signed_out(self, hash_: str = "") -> None:
        """A fresh page of the console with no key in the tab's storage. (A navigation that
        changes only the #fragment does not load the page again: hence about:blank.)"""
        b = self.browser
        b.open("about:blank")
        b.open(self.server.url + "/console/")
        b.js("sessionStorage.clear()")
        b.open("about:blank")
        b.open(self.server.url + "/console/" + hash_)

    def go(self, hash_: str) -> None:
        self.browser.js(f"location.hash = {json.dumps(hash_)}")
        view = hash_.split("/")[0]
        self.browser.wait(
            f"!document.querySelector('#view-{view}').hidden", f"the {view} view is shown"
        )


@pytest.fixture(scope="module")
def console(
    admin_url: str, template_url: str, model_dir: Path, model_cache_dir: Path
) -> Iterator[Console]:
    name = "pgpager_console_" + secrets.token_hex(4)
    url = create_database(admin_url, name, template=db_name(template_url))
    server = ServerProcess(
        url,
        {
            "PGPAGER_API_KEYS": f"{ADMIN_TOKEN}:admin,{READ_TOKEN}:read,{SQL_TOKEN}:sql",
            "PGPAGER_QUERY_MAXIMUM_RESULTS": str(CAP),
            "PGPAGER_LOG_LEVEL": "warning",
            "PGPAGER_EMBEDDING_MODEL_DIR": str(model_dir),
            "PGPAGER_MODEL_CACHE_DIR": str(model_cache_dir),
        },
    )
    browser: Browser | None = None
    try:
        server.start()
        browser = Browser()
        c = Console(server, browser)
        r = c.api("POST", "/v1/collections", json={"name": c.collection, "dimension": 3})
        assert r.status_code == 201, r.text
        r = c.api("POST", f"/v1/collections/{c.collection}/vectors", json={"vectors": _vectors()})
        assert r.status_code == 200, r.text
        yield c
        assert browser.errors == [], "JavaScript errors on the page"
    finally:
        if browser is not None:
            browser.close()
        server.stop()
        server.cleanup()
        drop_database(admin_url, name)


def test_a_key_sees_what_it_may_do_and_the_collections(console: Console) -> None:
    b = console.browser
    console.signed_out()
    b.wait("!document.querySelector('#login').hidden", "the console asks for a key")
    b.fill("#login-key", "not-a-key-of-this-server")
    b.click("#login-go")
    b.wait("document.querySelector('#login-error').textContent", "a wrong key is refused")
    assert "unknown API key" in b.text("#login-error")

    # A read key: no handles view (admin), no SQL (sql scope).
    console.sign_in(READ_TOKEN, "#collections")
    visible = (
        "Array.from(document.querySelectorAll('#nav a[data-view]'))"
        ".filter(a => !a.hidden).map(a => a.dataset.view)"
    )
    assert b.js(visible) == ["collections", "search", "queries", "metrics"]
    assert b.js("document.querySelector('input[name=sq-mode][value=sql]').closest('label').hidden")
    b.wait("document.querySelector('#collections-table tr[data-name=films]')", "films is listed")
    cells = b.texts("#collections-table tr[data-name=films] td")
    assert cells[:5] == ["films", str(ROWS), "3", "cosine", "-"]
    assert cells[5].startswith("hnsw m=16")
    assert cells[6].endswith("kB") or cells[6].endswith("MB")
    console.browser.screenshot("console-collections")

    # An sql key: stored SQL only; an admin key: everything.
    console.sign_in(SQL_TOKEN)
    assert b.js(visible) == ["search", "queries", "metrics"]
    assert b.js("document.querySelector('#search-collection').closest('label').hidden")
    console.sign_in(ADMIN_TOKEN)
    assert b.js(visible) == ["collections", "search", "handles", "queries", "metrics"]


def test_load_more_until_exhausted(console: Console) -> None:
    b = console.browser
    console.sign_in(ADMIN_TOKEN)
    console.go("search/films")
    b.click("#search-tabs button[data-tab=resumable]")
    b.fill("#search-query", "[1, 0.5, 0]")
    b.fill("#search-filter", "genre = 'drama'")
    b.fill("#search-size", "4")
    b.js("document.querySelector('#rs-auto').checked = false")
    b.click("#rs-start")
    b.wait("document.querySelector('#rs-state').textContent === 'active'", "a handle is open")
    handle = b.text("#rs-handle")
    assert b.js("document.querySelectorAll('#rs-results tbody tr').length") == 4
    assert b.text("#rs-position") == "4"

    def more() -> str:
        if b.js("!document.querySelector('#rs-more').disabled"):
            b.js("document.querySelector('#rs-more').click()")
        return b.text("#rs-state")

    eventually_sync(more, until=lambda s: s == "exhausted", what="load more to the end")
    ids = b.texts("#rs-results tbody tr td:nth-child(2)")
    drama = {v["id"] for v in _vectors() if v["metadata"]["genre"] == "drama"}
    assert len(ids) == len(drama) == 19
    assert set(ids) == drama
    assert b.text("#rs-count") == "19"
    assert b.text("#rs-position") == "19"
    assert b.js("document.querySelector('#rs-more').disabled")
    assert b.js("document.querySelector('#rs-stop').disabled")
    r = console.api("GET", f"/v1/resumable-queries/{handle}")
    assert (r.json()["state"], r.json()["position"]) == ("exhausted", 19)
    b.screenshot("console-resumable")

    # Infinite scroll: with "load on scroll" on, scrolling to the end loads the next batch.
    b.js("document.querySelector('#rs-auto').checked = true")
    b.fill("#search-filter", "")
    b.click("#rs-start")
    b.wait("document.querySelector('#rs-state').textContent === 'active'", "a new handle")
    b.js("window.scrollTo(0, document.body.scrollHeight)")
    b.wait(
        "document.querySelectorAll('#rs-results tbody tr').length > 4",
        "scrolling down loads more",
    )
    b.click("#rs-stop")
    b.wait("document.querySelector('#rs-state').textContent === 'stopped'", "Stop stops it")
    r = console.api("GET", f"/v1/resumable-queries/{b.text('#rs-handle')}")
    assert r.json()["state"] == "stopped"


def test_offset_pages_up_to_the_cap(console: Console) -> None:
    b = console.browser
    console.sign_in(READ_TOKEN)
    console.go("search/films")
    b.click("#search-tabs button[data-tab=offset]")
    b.fill("#search-query", "[1, 0.2, 0.4]")
    b.fill("#search-filter", "")
    b.fill("#search-size", "10")
    b.fill("#off-page", "1")
    b.click("#off-go")
    seen: list[str] = []
    for page in (1, 2, 3):
        if page > 1:
            b.click(f"#off-pager button[data-page='{page}']:not(.prev):not(.next)")
        b.wait(
            f"document.querySelector('#off-range').textContent === "
            f"'rows {(page - 1) * 10 + 1}-{page * 10}'",
            f"page {page} is shown",
        )
        rows = b.texts("#off-results tbody tr td:nth-child(2)")
        assert len(rows) == 10
        assert b.texts("#off-results tbody tr td:first-child") == [
            str((page - 1) * 10 + i) for i in range(1, 11)
        ]
        seen += rows
    assert len(set(seen)) == 30
    expected = console.api(
        "POST",
        "/v1/collections/films/search",
        token=READ_TOKEN,
        json={"vector": [1, 0.2, 0.4], "limit": 30},
    ).json()
    assert seen == [h["id"] for h in expected["results"]]
    b.screenshot("console-offset")

    # Page 4 needs offset 30 + limit 10 > the cap: the API's own words are shown.
    b.click("#off-pager button.next")
    b.wait("document.querySelector('#off-error').textContent", "the cap's error is shown")
    r = console.api(
        "POST",
        "/v1/collections/films/search",
        token=READ_TOKEN,
        json={"vector": [1, 0.2, 0.4], "limit": 10, "offset": 30},
    )
    assert r.status_code == 422
    assert b.text("#off-error") == r.json()["error"]["message"]
    assert "PGPAGER_QUERY_MAXIMUM_RESULTS" in b.text("#off-error")
    assert b.js("document.querySelectorAll('#off-results tbody tr').length") == 0
    b.screenshot("console-offset-cap")


def test_stop_a_handle_from_the_handles_table(console: Console) -> None:
    b = console.browser
    r = console.api(
        "POST",
        "/v1/collections/films/resumable-queries",
        token=READ_TOKEN,
        json={"vector": [0, 1, 0], "top_k": 3},
    )
    assert r.status_code == 201, r.text
    handle = r.json()["handle"]
    console.sign_in(ADMIN_TOKEN, "#handles")
    row = f"#handles-table tr[data-handle='{handle}']"
    b.wait(f"document.querySelector(\"{row} .state\")?.textContent === 'active'", "listed")
    cells = b.texts(f"{row} td")
    assert cells[1:5] == ["films", "active", cells[3], "3"]
    assert cells[9] == next(k.id for k in parse_api_keys(READ_TOKEN)), "the reader's key"
    b.screenshot("console-handles")
    b.click(f"{row} button.stop")
    b.wait(
        f"document.querySelector(\"{row} .state\")?.textContent === 'stopped'",
        "the handle shows as stopped",
    )
    assert b.js(f'document.querySelector("{row} button.stop")') is None
    r = console.api(
        "POST",
        f"/v1/resumable-queries/{handle}/next",
        token=READ_TOKEN,
        json={"additional_k": 3},
    )
    assert r.status_code == 410, r.text
    b.screenshot("console-handles-stopped")


def test_stored_query_paged_by_cursor_then_deleted(console: Console) -> None:
    b = console.browser
    console.sign_in(ADMIN_TOKEN)
    console.go("search/films")
    b.click("#search-tabs button[data-tab=stored]")
    b.click("input[name=sq-mode][value=sql]")
    b.fill("#sq-sql", "SELECT g AS n FROM generate_series(1, 25) g ORDER BY g")
    b.fill("#search-size", "10")
    b.click("#sq-run")
    b.wait("document.querySelector('#sq-state').textContent === 'COMPLETED'", "the query ran")
    assert b.text("#sq-total") == "25"
    assert b.text("#sq-page") == "1 of 3"
    query_id = b.text("#sq-id")
    seen = b.texts("#sq-results tbody td")
    for page in (2, 3):
        b.click("#sq-next")
        b.wait(f"document.querySelector('#sq-page').textContent === '{page} of 3'", f"page {page}")
        seen += b.texts("#sq-results tbody td")
    assert seen == [str(n) for n in range(1, 26)]
    assert b.js("document.querySelector('#sq-next').disabled")
    b.screenshot("console-stored-query")

    # A stored vector search on the collection, too.
    b.click("input[name=sq-mode][value=vector]")
    assert b.js("document.querySelector('#sq-sql').offsetParent === null"), "SQL text hidden"
    b.fill("#search-query", "[1, 0, 0]")
    b.fill("#search-filter", "genre = 'noir'")
    b.fill("#sq-limit", "12")
    b.fill("#search-size", "5")
    b.click("#sq-run")
    b.wait(
        "document.querySelector('#sq-state').textContent === 'COMPLETED'"
        f" && document.querySelector('#sq-id').textContent !== '{query_id}'",
        "the vector search ran",
    )
    assert b.text("#sq-total") == "12"
    assert len(b.texts("#sq-results tbody tr")) == 5

    # The stored queries view lists them; Delete removes one.
    console.go("queries")
    row = f"#queries-table tr[data-query='{query_id}']"
    b.wait(f'document.querySelector("{row}")', "the query is listed")
    assert b.text(f"{row} .state") == "COMPLETED"
    assert b.texts(f"{row} td")[3] == "25"
    b.screenshot("console-queries")
    b.click(f"{row} button.delete")
    b.wait(f'!document.querySelector("{row}")', "the deleted query leaves the list")
    assert console.api("GET", f"/v1/queries/{query_id}").status_code == 404


def test_metrics_chart(console: Console) -> None:
    b = console.browser
    console.sign_in(READ_TOKEN, "#metrics")
    b.wait("document.querySelector('#m-active').textContent !== '-'", "a first sample")
    r = console.api(
        "POST",
        "/v1/collections/films/resumable-queries",
        token=READ_TOKEN,
        json={"vector": [1, 0, 0], "top_k": 2},
    )
    handle = r.json()["handle"]
    for _ in range(5):
        console.api(
            "POST",
            f"/v1/resumable-queries/{handle}/next",
            token=READ_TOKEN,
            json={"additional_k": 2},
        )
    b.wait("document.querySelector('#m-mean').textContent !== '-'", "a latency sample")
    assert float(b.text("#m-mean")) > 0
    b.wait(
        "document.querySelector('#chart-handles polyline').dataset.points >= 2",
        "the handles line has points",
    )
    assert int(b.js("document.querySelector('#chart-latency polyline.mean').dataset.points")) >= 1
    assert int(b.text("#m-active")) >= 1
    b.screenshot("console-metrics")
    console.api("DELETE", f"/v1/resumable-queries/{handle}", token=READ_TOKEN)


def test_docs_render_offline(console: Console) -> None:
    b = console.browser
    b.requests.clear()
    b.open(console.server.url + "/docs")
    b.wait(
        "document.querySelectorAll('.swagger-ui .opblock').length > 20",
        "Swagger UI renders the operations",
    )
    assert "/v1/whoami" in b.js("document.body.innerText")
    outside = [
        u for u in b.requests if not u.startswith(console.server.url) and not u.startswith("data:")
    ]
    assert outside == [], "the docs asked for files outside pgpager"
    assert any(u.endswith("/static/swagger-ui/swagger-ui-bundle.js") for u in b.requests)
    b.screenshot("docs-swagger", full_page=False)


def test_text_query_in_a_collection_with_a_model(console: Console) -> None:
    r = console.api("POST", "/v1/collections", json={"name": "notes", "embedding_model": MINILM})
    assert r.status_code == 201, r.text
    texts = {
        "pasta": "Boil salted water and simmer the noodles.",
        "stocks": "Shares fell after the rate rise.",
        "cat": "A cat sleeps on the warm windowsill.",
    }
    r = console.api(
        "POST",
        "/v1/collections/notes/vectors",
        json={"vectors": [{"id": k, "data": v} for k, v in texts.items()]},
    )
    assert r.status_code == 200, r.text
    b = console.browser
    console.sign_in(READ_TOKEN, "#search/notes")
    b.wait(
        "document.querySelector('#search-query-what').textContent.startsWith('text')",
        "the notes collection takes text",
    )
    b.click("#search-tabs button[data-tab=resumable]")
    b.js("document.querySelector('#rs-auto').checked = false")
    b.fill("#search-query", "a kitten napping in the sun")
    b.fill("#search-filter", "")
    b.fill("#search-size", "1")
    b.click("#rs-start")
    b.wait("document.querySelector('#rs-state').textContent === 'active'", "a text query ran")
    assert b.texts("#rs-results tbody tr td:nth-child(2)") == ["cat"]
    b.screenshot("console-text-query")
    b.click("#rs-stop")
    b.wait("document.querySelector('#rs-state').textContent === 'stopped'", "stopped")
