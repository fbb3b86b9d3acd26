"""The OpenAPI document tells the truth: schemathesis calls every operation of the in-process
app with generated (valid and invalid) inputs and fails on any 5xx, on a status the document
does not list, and on a body or content type that does not match it. Once on a server without
API keys, once with keys (an admin, a read-only and an sql-only key, none, and a wrong one),
and once as stateful scenarios that follow links (a handle or query id from one response used
in the next call).

Bounded and deterministic: a fixed seed, derandomized Hypothesis, a few examples per operation
(``PGPAGER_FUZZ_EXAMPLES``, default 8, raises it for a longer run).
"""

from __future__ import annotations

import copy
import os
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi

from pgpager.http.app import create_app
from pgpager.settings import Settings
from tests.conftest import create_database, db_name, drop_database

EXAMPLES = int(os.environ.get("PGPAGER_FUZZ_EXAMPLES", "8"))

COLLECTION = "fuzz_c"
"""Pre-created 3-d collection that collection-scoped operations are pointed at most of the time,
so that they reach the services rather than stopping at "no such collection"."""
DIMENSION = 3

TOKENS = {
    "admin": "fuzz-admin-token-0123456789",
    "read": "fuzz-reader-token-0123456789",
    "sql": "fuzz-sql-token-0123456789",
}
API_KEYS = ",".join(f"{token}:{scope}" for scope, token in TOKENS.items())
CREDENTIALS: list[str | None] = [
    f"Bearer {TOKENS['admin']}",
    f"Bearer {TOKENS['read']}",
    f"Bearer {TOKENS['sql']}",
    None,
    "Bearer not-a-key-of-this-server",
]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 12,
        "generation": {"mode": "all", "max-examples": EXAMPLES},
        # The coverage phase sends every boundary value of every parameter: thorough, but it
        # alone takes minutes here; the fuzzing phase in negative mode covers the same ground.
        "phases": {"coverage": {"enabled": False}},
    }
)

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


def _document() -> dict[str, Any]:
    """The document the app serves at /docs/openapi.json; building it needs no database."""
    app = create_app(Settings.from_env(environ={}), "postgresql:///unused")
    document: dict[str, Any] = app.openapi_schema.to_schema()
    return document


DOCUMENT = _document()
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


# --- the server under test --------------------------------------------------------------------
@pytest.fixture(scope="module")
def fuzz_db_url(admin_url: str, template_url: str) -> Iterator[str]:
    name = "pgpager_fuzz_" + secrets.token_hex(4)
    yield create_database(admin_url, name, template=db_name(template_url))
    drop_database(admin_url, name)


def _serve(database_url: str, **overrides: Any) -> Iterator[Any]:
    """The app with its lifespan started, and the shared collection with a few vectors."""
    app = create_app(
        Settings.from_env(environ={}, sweep_interval_s=3600.0, **overrides), database_url
    )
    headers = {"Authorization": f"Bearer {TOKENS['admin']}"}
    create = SCHEMA["/v1/collections"]["POST"].Case(
        body={"name": COLLECTION, "dimension": DIMENSION, "metric": "cosine"}
    )
    r = create.call(app=app, headers=headers)
    assert r.status_code in (201, 409), r.text
    upsert = SCHEMA["/v1/collections/{name}/vectors"]["POST"].Case(
        path_parameters={"name": COLLECTION},
        body={
            "vectors": [
                {"id": f"v{i}", "vector": [1.0, float(i), 0.5], "metadata": {"i": i}}
                for i in range(20)
            ]
        },
    )
    r = upsert.call(app=app, headers=headers)
    assert r.status_code == 200, r.text
    try:
        yield app
    finally:
        # The ASGI transport keeps each app's lifespan running until told; stop the pool,
        # cursor hosts and sweeper before the database is dropped.
        asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def open_app(fuzz_db_url: str) -> Iterator[Any]:
    yield from _serve(fuzz_db_url)


@pytest.fixture(scope="module")
def keyed_app(fuzz_db_url: str) -> Iterator[Any]:
    yield from _serve(fuzz_db_url, api_keys=API_KEYS)


# --- steering generation towards real code --------------------------------------------------
def _nul_variants(value: Any) -> list[Any]:
    """Copies of ``value`` with a NUL appended to one of its strings, each string in turn."""
    if isinstance(value, str):
        return [value + "\x00"]
    if isinstance(value, dict):
        return [{**value, k: v} for k, item in value.items() for v in _nul_variants(item)]
    if isinstance(value, list):
        return [
            [*value[:i], v, *value[i + 1 :]]
            for i, item in enumerate(value)
            for v in _nul_variants(item)
        ]
    return []


def _sometimes_nul(value: Any) -> st.SearchStrategy[Any]:
    """``value``, or one time in four with a NUL in one of its strings: PostgreSQL text cannot
    hold NUL, so every string must be refused (422) before it reaches SQL, not fail there."""
    variants = _nul_variants(value)
    if not variants:
        return st.just(value)
    return st.integers(0, 3).flatmap(
        lambda n: st.sampled_from(variants) if n == 3 else st.just(value)
    )


def aim_at_collection(context: schemathesis.HookContext, path_parameters: Any) -> Any:
    """flatmap_path_parameters: the collection is the shared one three times in four. Dropping
    it would starve every later operation, so the drop keeps its generated name."""
    operation = context.operation
    if not isinstance(path_parameters, dict) or operation is None:
        return st.just(path_parameters)
    keys = [k for k in ("name", "collection") if k in path_parameters]
    dropping = operation.method.upper() == "DELETE" and operation.path.endswith("/{name}")
    if not keys or dropping:
        return _sometimes_nul(path_parameters)
    aimed = {**path_parameters, **dict.fromkeys(keys, COLLECTION)}
    return st.sampled_from([aimed, aimed, aimed, path_parameters]).flatmap(_sometimes_nul)


def _fit(value: Any) -> Any:
    """A list of numbers cut or zero-padded to the collection's dimension; anything else as
    is. (An empty list becomes the zero vector, which cosine distance cannot order.)"""
    if isinstance(value, list) and all(isinstance(x, float | int) for x in value):
        return [float(x) for x in (value + [0.0] * DIMENSION)[:DIMENSION]]
    return value


SQL = [
    ("SELECT 1 AS one", []),
    ("SELECT n, n * 0.5 AS half FROM generate_series(1, 40) AS n", []),
    ("SELECT $1::text AS p", ["p"]),
]


def _stored_queries(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A stored query of each kind: runnable SQL, or a vector search of the collection."""
    rest = {k: v for k, v in body.items() if k not in ("sql", "vector_search")}
    sql = body.get("sql") if isinstance(body.get("sql"), dict) else {}
    search = body.get("vector_search") if isinstance(body.get("vector_search"), dict) else {}
    return [
        *({**rest, "sql": {"query": q, "parameters": p}} for q, p in SQL),
        {**rest, "sql": {**sql, "query": "SELECT $1 AS p"}},
        {
            **rest,
            "vector_search": {
                **search,
                "collection": COLLECTION,
                "vector": _fit(search.get("vector", [])),
            },
        },
    ]


def fit_bodies(context: schemathesis.HookContext, body: Any) -> Any:
    """flatmap_body: half the time the body is nudged to be accepted: vectors get the
    collection's dimension, a stored query gets one kind (sql or vector search) with real SQL
    or the shared collection, so that searches and queries run instead of failing early.
    Then, sometimes, a NUL in one string."""
    operation = context.operation
    if not isinstance(body, dict) or operation is None:
        return st.just(body)
    if operation.method.upper() == "POST" and operation.path.endswith("/queries"):
        return st.sampled_from([*_stored_queries(body), body]).flatmap(_sometimes_nul)
    fitted = dict(body)
    if "vector" in fitted:
        fitted["vector"] = _fit(fitted["vector"])
    if isinstance(fitted.get("vectors"), list):
        fitted["vectors"] = [
            {**v, "vector": _fit(v.get("vector"))} if isinstance(v, dict) else v
            for v in fitted["vectors"]
        ]
    return st.sampled_from([fitted, body]).flatmap(_sometimes_nul)


def with_credential(context: schemathesis.HookContext, case: schemathesis.Case) -> Any:
    """flatmap_case for the keyed run: each call carries one of CREDENTIALS, or none."""

    def send(credential: str | None) -> schemathesis.Case:
        headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        if credential is not None:
            headers["Authorization"] = credential
        case.headers = headers
        return case

    return st.sampled_from(CREDENTIALS).map(send)


def steer(schema: schemathesis.BaseSchema) -> None:
    schema.hook("flatmap_path_parameters")(aim_at_collection)
    schema.hook("flatmap_body")(fit_bodies)


steer(SCHEMA)


# --- one operation at a time ------------------------------------------------------------------
@SCHEMA.parametrize()
@FUZZ_SETTINGS
def test_without_keys(case: schemathesis.Case, open_app: Any) -> None:
    case.call_and_validate(app=open_app, checks=CHECKS)


@SCHEMA.hooks.apply(with_credential, name="flatmap_case")
@SCHEMA.parametrize()
@FUZZ_SETTINGS
def test_with_keys(case: schemathesis.Case, keyed_app: Any) -> None:
    case.call_and_validate(app=keyed_app, checks=CHECKS)


# --- stateful: follow what one response hands to the next call -------------------------------
def _link(target: str, method: str, **parameters: str) -> dict[str, Any]:
    return {
        "operationRef": f"#/paths/{target.replace('/', '~1')}/{method}",
        "parameters": parameters,
    }


HANDLE = "$response.body#/handle"
QUERY_ID = "$response.body#/query_id"
QUERY_PAGES = "/v1/queries/{query_id}/pages"
LINKS: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {
    ("/v1/collections/{name}/resumable-queries", "post", "201"): {
        "Next": _link("/v1/resumable-queries/{handle}/next", "post", handle=HANDLE),
        "Status": _link("/v1/resumable-queries/{handle}", "get", handle=HANDLE),
        "Stop": _link("/v1/resumable-queries/{handle}", "delete", handle=HANDLE),
    },
    ("/v1/resumable-queries/{handle}/next", "post", "200"): {
        "Next": _link("/v1/resumable-queries/{handle}/next", "post", handle=HANDLE),
        "Stop": _link("/v1/resumable-queries/{handle}", "delete", handle=HANDLE),
    },
    ("/v1/queries", "post", "200"): {
        "Status": _link("/v1/queries/{query_id}", "get", query_id=QUERY_ID),
        "Page": _link(
            QUERY_PAGES,
            "get",
            query_id=QUERY_ID,
            cursor="$response.body#/pagination/next_cursor",
        ),
        "Remove": _link("/v1/queries/{query_id}", "delete", query_id=QUERY_ID),
    },
    (QUERY_PAGES, "get", "200"): {
        "NextPage": _link(
            QUERY_PAGES,
            "get",
            query_id="$request.path.query_id",
            cursor="$response.body#/pagination/next_cursor",
        ),
    },
    ("/v1/collections/{name}/objects", "get", "200"): {
        "NextPage": _link(
            "/v1/collections/{name}/objects",
            "get",
            name="$request.path.name",
            after="$response.body#/next",
        ),
    },
}


def _linked_document() -> dict[str, Any]:
    document = copy.deepcopy(DOCUMENT)
    for (path, method, status), links in LINKS.items():
        responses = document["paths"][path][method]["responses"]
        responses.setdefault(status, {"description": "ok"})["links"] = links
    return document


STATEFUL = schemathesis.openapi.from_dict(
    _linked_document(),
    config=schemathesis.Config.from_dict(
        {
            "seed": 12,
            "generation": {"mode": "positive"},
            # Only the links above: inferred ones pair unrelated parameters here.
            "phases": {"stateful": {"inference": {"algorithms": []}}},
        }
    ),
)
steer(STATEFUL)


def test_stateful_without_keys(open_app: Any) -> None:
    class Scenarios(STATEFUL.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"app": open_app}

        def validate_response(self, response: Any, case: schemathesis.Case, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    Scenarios.run(
        settings=settings(FUZZ_SETTINGS, max_examples=max(EXAMPLES, 10), stateful_step_count=6)
    )


# --- what the document cannot say about itself ------------------------------------------------
def _example_path(template: str) -> str:
    return re.sub(
        r"\{(\w+)\}",
        lambda m: COLLECTION if m.group(1) in ("name", "collection") else "x",
        template,
    )


def test_served_document_is_the_fuzzed_one(open_app: Any) -> None:
    with asgi.get_client(open_app) as client:
        r = client.get("/docs/openapi.json")
    assert r.status_code == 200
    assert r.json() == DOCUMENT


def test_options_lists_every_method(open_app: Any) -> None:
    wrong = {}
    with asgi.get_client(open_app) as client:
        for template, item in DOCUMENT["paths"].items():
            documented = {m.upper() for m in item if m in ("get", "put", "post", "delete", "patch")}
            r = client.options(_example_path(template))
            allowed = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
            if r.status_code >= 300 or not documented <= allowed:
                wrong[template] = f"{r.status_code} Allow: {r.headers.get('allow')!r}"
    assert not wrong, "OPTIONS misses methods:\n" + "\n".join(f"{k}: {v}" for k, v in wrong.items())


def test_every_operation_says_how_it_fails() -> None:
    from pgpager.http.openapi import STATUSES

    documented = {
        f"{method.upper()} {path}"
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    }
    assert documented - STATUSES.keys() == set(), "add these to STATUSES in http/openapi.py"
    assert STATUSES.keys() - documented == set(), "no such operations: remove from STATUSES"
