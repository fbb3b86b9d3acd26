"""The Upstash Vector-compatible API, one index per collection at ``/upstash/{collection}``.

The unmodified ``upstash-vector`` SDK works against it:
``Index(url="http://host:port/upstash/<collection>", token=...)``. Every call is a POST whose
JSON body uses camelCase names; a namespace is a path suffix (``/query/<namespace>``). Replies
are ``{"result": ...}``, errors ``{"error": "<message>", "status": <code>}`` with the same
status codes as the native API. Text ("data") upserts and queries need an embedding model,
which pgpager does not have: they fail with a message saying to send vectors.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Controller, Request, Response, Router, post, route
from litestar.exceptions import HTTPException, ValidationException

from pgpager.errors import InvalidRequest, NotFound, NotSupported, PgpagerError
from pgpager.http.auth import key_id
from pgpager.http.errors import log_domain_error, retry_after
from pgpager.http.request import decode_body
from pgpager.services.collections import Collections
from pgpager.services.resumable import ResumableQueries
from pgpager.services.upstash import UpstashIndex
from pgpager.services.vectors import Vectors
from pgpager.store.search import Hit, Include
from pgpager.store.vectors import VectorOut

log = logging.getLogger(__name__)

SIMILARITY = {"cosine": "COSINE", "euclidean": "EUCLIDEAN", "dot_product": "DOT_PRODUCT"}
SUCCESS = "Success"

# --- request bodies ---------------------------------------------------------------------------
VectorId = str | int


class Body(msgspec.Struct, rename="camel"):
    """Unknown fields are ignored, as Upstash's server does, so SDK versions that send more
    fields keep working."""


class UpsertItem(Body):
    id: VectorId
    vector: list[float] | None = None
    sparse_vector: Any = None
    metadata: dict[str, Any] | None = None
    data: str | None = None


class QueryBody(Body):
    vector: list[float] | None = None
    sparse_vector: Any = None
    data: str | None = None
    top_k: int = 10
    include_vectors: bool = False
    include_metadata: bool = False
    include_data: bool = False
    filter: str = ""


class ResumableBody(QueryBody):
    max_idle: int | None = None


class NextBody(Body):
    uuid: str
    additional_k: int = 10


class EndBody(Body):
    uuid: str


class FetchBody(Body):
    ids: list[VectorId] | None = None
    prefix: str | None = None
    include_vectors: bool = False
    include_metadata: bool = False
    include_data: bool = False


class RangeBody(Body):
    limit: int
    cursor: str | int = ""
    prefix: str | None = None
    include_vectors: bool = False
    include_metadata: bool = False
    include_data: bool = False


class DeleteBody(Body):
    ids: list[VectorId] | None = None
    prefix: str | None = None
    filter: str | None = None


class UpdateBody(Body):
    id: VectorId
    vector: list[float] | None = None
    sparse_vector: Any = None
    data: str | None = None
    metadata: dict[str, Any] | None = None
    metadata_update_mode: str = "OVERWRITE"


# --- response bodies --------------------------------------------------------------------------
class Ok(msgspec.Struct):
    result: Any


class QueryResult(msgspec.Struct, omit_defaults=True):
    id: str
    score: float
    vector: list[float] | None = None
    metadata: dict[str, Any] | None = None
    data: str | None = None

    @classmethod
    def of(cls, h: Hit) -> QueryResult:
        return cls(h.id, h.score, h.vector, h.metadata, h.data)


class FetchResult(msgspec.Struct, omit_defaults=True):
    id: str
    vector: list[float] | None = None
    metadata: dict[str, Any] | None = None
    data: str | None = None

    @classmethod
    def of(cls, v: VectorOut, include: Include) -> FetchResult:
        return cls(
            v.id,
            v.vector if include.vectors else None,
            v.metadata if include.metadata else None,
            v.data if include.data else None,
        )


class RangeResult(msgspec.Struct, rename="camel"):
    next_cursor: str
    vectors: list[FetchResult]


class NamespaceInfo(msgspec.Struct, rename="camel"):
    vector_count: int
    pending_vector_count: int = 0


class InfoResult(msgspec.Struct, rename="camel"):
    vector_count: int
    pending_vector_count: int
    index_size: int
    dimension: int
    similarity_function: str
    namespaces: dict[str, NamespaceInfo]


class ResumableStarted(msgspec.Struct):
    uuid: str
    scores: list[QueryResult]


class Deleted(msgspec.Struct):
    deleted: int


class Updated(msgspec.Struct):
    updated: int


# --- parsing helpers --------------------------------------------------------------------------
async def decode(request: Request[Any, Any, Any], type_: Any) -> Any:
    """The JSON body as ``type_``; None when the body is empty (the SDK sends no body for
    info, reset and the namespace calls)."""
    raw = await request.body()
    if not raw.strip():
        return None
    return decode_body(raw, type_)


async def required(request: Request[Any, Any, Any], type_: Any) -> Any:
    body = await decode(request, type_)
    if body is None:
        raise InvalidRequest("this request needs a JSON body")
    return body


def vector_id(value: VectorId) -> str:
    # The SDK accepts integer ids (Vector.id: int | str); pgpager ids are text.
    return str(value) if isinstance(value, int) else value


def no_embedding(collection: str) -> NotSupported:
    return NotSupported(
        f"collection {collection!r} cannot embed text: pgpager has no embedding model. "
        "Embed the text yourself and send vectors (upsert with vector=..., query with "
        "vector=...); the text can still be stored alongside as data."
    )


def sparse_unsupported() -> NotSupported:
    return NotSupported("sparse vectors are not supported: pgpager collections are dense")


def dense_query(collection: str, body: QueryBody) -> list[float]:
    if body.sparse_vector is not None:
        raise sparse_unsupported()
    if body.data is not None and body.vector is None:
        raise no_embedding(collection)
    if body.vector is None:
        raise InvalidRequest("vector is required", field="vector")
    return body.vector


def include_of(body: QueryBody | FetchBody | RangeBody) -> Include:
    return Include(body.include_vectors, body.include_metadata, body.include_data)


def operation_id(handler: Any, method: str, components: list[Any]) -> str:
    """OpenAPI ids from method and full path: handlers here serve two paths each, which
    Litestar's default ids would not tell apart."""
    words = [c if isinstance(c, str) else f"by {c.name}" for c in components]
    return method.lower() + "".join(w.replace("-", " ").title().replace(" ", "") for w in words)


def paths(name: str) -> list[str]:
    """The path of an operation on the default namespace and on a named one."""
    return [f"/{name}", f"/{name}/{{namespace:str}}"]


# --- routes -----------------------------------------------------------------------------------
class UpstashController(Controller):
    path = "/"
    tags = ["upstash-compatible"]

    @post(paths("upsert"), opt={"scope": "write"}, status_code=200, operation_id=operation_id)
    async def upsert(
        self,
        vectors: Vectors,
        request: Request[Any, Any, Any],
        collection: str,
        namespace: str | None = None,
    ) -> Ok:
        """Insert or replace vectors: a list of {id, vector, metadata?, data?} or one object."""
        body = await required(request, list[UpsertItem] | UpsertItem)
        items = body if isinstance(body, list) else [body]
        for item in items:
            if item.sparse_vector is not None:
                raise sparse_unsupported()
            if item.vector is None and item.data is not None:
                raise no_embedding(collection)
        await vectors.upsert(
            collection,
            [
                {"id": vector_id(i.id), "vector": i.vector, "metadata": i.metadata, "data": i.data}
                for i in items
            ],
            namespace,
        )
        return Ok(SUCCESS)

    @post(paths("upsert-data"), opt={"scope": "write"}, status_code=200, operation_id=operation_id)
    async def upsert_data(self, collection: str, namespace: str | None = None) -> Ok:
        """Text upserts need an embedding model, which pgpager does not have."""
        raise no_embedding(collection)

    @post(paths("update"), opt={"scope": "write"}, status_code=200, operation_id=operation_id)
    async def update(
        self,
        upstash: UpstashIndex,
        request: Request[Any, Any, Any],
        collection: str,
        namespace: str | None = None,
    ) -> Ok:
        """Change one vector's vector, data or metadata (OVERWRITE or PATCH)."""
        body: UpdateBody = await required(request, UpdateBody)
        if body.sparse_vector is not None:
            raise sparse_unsupported()
        updated = await upstash.update(
            collection,
            vid=vector_id(body.id),
            vector=body.vector,
            metadata=body.metadata,
            data=body.data,
            mode=body.metadata_update_mode,
            namespace=namespace,
        )
        return Ok(Updated(int(updated)))

    @post(paths("query"), opt={"scope": "read"}, status_code=200, operation_id=operation_id)
    async def query(
        self,
        upstash: UpstashIndex,
        request: Request[Any, Any, Any],
        collection: str,
        namespace: str | None = None,
    ) -> Ok:
        """The topK nearest vectors; a list of queries gets a list of result lists."""
        body = await required(request, list[QueryBody] | QueryBody)

        async def one(q: QueryBody) -> list[QueryResult]:
            hits = await upstash.query(
                collection,
                vector=dense_query(collection, q),
                top_k=q.top_k,
                namespace=namespace,
                filter=q.filter or None,
                include=include_of(q),
            )
            return [QueryResult.of(h) for h in hits]

        # A list of queries (query_many) gets a list of result lists.
        if isinstance(body, list):
            upstash.check_fan_out(len(body))
            return Ok([await one(q) for q in body])
        return Ok(await one(body))

    @post(paths("query-data"), opt={"scope": "read"}, status_code=200, operation_id=operation_id)
    async def query_data(self, collection: str, namespace: str | None = None) -> Ok:
        """Text queries need an embedding model, which pgpager does not have."""
        raise no_embedding(collection)

    @post(
        paths("resumable-query"), opt={"scope": "read"}, status_code=200, operation_id=operation_id
    )
    async def resumable_query(
        self,
        resumable: ResumableQueries,
        request: Request[Any, Any, Any],
        collection: str,
        namespace: str | None = None,
    ) -> Ok:
        """Start a resumable query: the first topK results and its handle (uuid)."""
        body: ResumableBody = await required(request, ResumableBody)
        page = await resumable.start(
            collection,
            vector=dense_query(collection, body),
            top_k=body.top_k,
            namespace=namespace,
            filter=body.filter or None,
            include=include_of(body),
            max_idle=body.max_idle,
            api_key_id=key_id(request),
        )
        return Ok(ResumableStarted(page.handle, [QueryResult.of(h) for h in page.results]))

    @post(
        paths("resumable-query-data"),
        opt={"scope": "read"},
        status_code=200,
        operation_id=operation_id,
    )
    async def resumable_query_data(self, collection: str, namespace: str | None = None) -> Ok:
        """Text queries need an embedding model, which pgpager does not have."""
        raise no_embedding(collection)

    @post(
        "/resumable-query-next", opt={"scope": "read"}, status_code=200, operation_id=operation_id
    )
    async def resumable_query_next(
        self, resumable: ResumableQueries, request: Request[Any, Any, Any], collection: str
    ) -> Ok:
        """The next additionalK results of a resumable query."""
        body: NextBody = await required(request, NextBody)
        page = await resumable.next(body.uuid, body.additional_k, key_id(request))
        return Ok([QueryResult.of(h) for h in page.results])

    @post("/resumable-query-end", opt={"scope": "read"}, status_code=200, operation_id=operation_id)
    async def resumable_query_end(
        self, resumable: ResumableQueries, request: Request[Any, Any, Any], collection: str
    ) -> Ok:
        """Stop a resumable query."""
        body: EndBody = await required(request, EndBody)
        await resumable.stop(body.uuid, key_id(request))
        return Ok(SUCCESS)

    @post(paths("fetch"), opt={"scope": "read"}, status_code=200, operation_id=operation_id)
    async def fetch(
        self,
        vectors: Vectors,
        upstash: UpstashIndex,
        request: Request[Any, Any, Any],
        collection: str,
        namespace: str | None = None,
    ) -> Ok:
        """Vectors by ids (null where absent), or every vector whose id has a prefix."""
        body: FetchBody = await required(request, FetchBody)
        include = include_of(body)
        if (body.ids is None) == (body.prefix is None):
            raise InvalidRequest("give either ids or prefix", field="ids")
        if body.prefix is not None:
            rows = await upstash.fetch_prefix(
                collection,
                prefix=body.prefix,
                namespace=namespace,
                include=include,
            )
            return Ok([FetchResult.of(v, include) for v in rows])
        assert body.ids is not None
        found = await vectors.fetch(collection, [vector_id(i) for i in body.ids], namespace)
        return Ok([None if v is None else FetchResult.of(v, include) for v in found])

    @post(paths("range"), opt={"scope": "read"}, status_code=200, operation_id=operation_id)
    async def range(
        self,
        upstash: UpstashIndex,
        request: Request[Any, Any, Any],
        collection: str,
        namespace: str | None = None,
    ) -> Ok:
        """Vectors ordered by id, a page at a time; nextCursor is "" at the end."""
        body: RangeBody = await required(request, RangeBody)
        include = include_of(body)
        rows, next_cursor = await upstash.range_page(
            collection,
            cursor=str(body.cursor),
            limit=body.limit,
            prefix=body.prefix,
            namespace=namespace,
            include=include,
        )
        return Ok(RangeResult(next_cursor, [FetchResult.of(v, include) for v in rows]))

    @route(
        paths("delete"),
        http_method=["POST", "DELETE"],
        opt={"scope": "write"},
        status_code=200,
        operation_id=operation_id,
    )
    async def delete(
        self,
        vectors: Vectors,
        request: Request[Any, Any, Any],
        collection: str,
        namespace: str | None = None,
    ) -> Ok:
        """Delete vectors by ids, id prefix or metadata filter."""
        # Also accepted: a bare list of ids, or one id, as older clients send.
        body = await required(request, DeleteBody | list[VectorId] | str)
        if not isinstance(body, DeleteBody):
            body = DeleteBody(ids=body if isinstance(body, list) else [body])
        n = await vectors.delete(
            collection,
            ids=None if body.ids is None else [vector_id(i) for i in body.ids],
            prefix=body.prefix,
            filter=body.filter,
            namespace=namespace,
        )
        return Ok(Deleted(n))

    @route(
        paths("reset"),
        http_method=["POST", "DELETE"],
        opt={"scope": "write"},
        status_code=200,
        operation_id=operation_id,
    )
    async def reset(
        self,
        upstash: UpstashIndex,
        request: Request[Any, Any, Any],
        collection: str,
        namespace: str | None = None,
    ) -> Ok:
        """Delete every vector of the namespace, or of all namespaces with ?all."""
        # The SDK resets every namespace with a bare query flag: POST /reset?all
        every = "all" in request.query_params
        await upstash.reset(collection, None if every else (namespace or ""))
        return Ok(SUCCESS)

    @route(
        "/info",
        http_method=["GET", "POST"],
        opt={"scope": "read"},
        status_code=200,
        operation_id=operation_id,
    )
    async def info(self, collections: Collections, collection: str) -> Ok:
        """Vector counts, size on disk, dimension, similarity function, namespaces."""
        i = await collections.info(collection)
        return Ok(
            InfoResult(
                vector_count=i.vector_count,
                pending_vector_count=0,
                index_size=i.size_bytes,
                dimension=i.collection.dimension,
                similarity_function=SIMILARITY[i.collection.metric],
                namespaces={ns: NamespaceInfo(n) for ns, n in {"": 0, **i.namespaces}.items()},
            )
        )

    @route(
        "/list-namespaces",
        http_method=["GET", "POST"],
        opt={"scope": "read"},
        status_code=200,
        operation_id=operation_id,
    )
    async def list_namespaces(self, upstash: UpstashIndex, collection: str) -> Ok:
        """The namespaces' names; the default namespace "" is always there."""
        return Ok(list(await upstash.namespaces(collection)))

    @route(
        paths("delete-namespace"),
        http_method=["POST", "DELETE"],
        opt={"scope": "write"},
        status_code=200,
        operation_id=operation_id,
    )
    async def delete_namespace(
        self, vectors: Vectors, upstash: UpstashIndex, collection: str, namespace: str = ""
    ) -> Ok:
        """Delete a namespace and its vectors."""
        await upstash.delete_namespace(collection, namespace)
        return Ok(SUCCESS)

    @route(
        "/{operation:path}",
        http_method=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
        operation_id=operation_id,
    )
    async def unknown(self, collection: str, operation: str) -> Ok:
        # Without this, a call pgpager does not implement would get the native error shape.
        raise NotFound(f"pgpager does not implement the Upstash operation {operation!r}")


# --- errors -----------------------------------------------------------------------------------
def error(message: str, status: int, headers: dict[str, str] | None = None) -> Response[Any]:
    """Upstash's error shape; the SDK raises UpstashError(message) on it."""
    return Response({"error": message, "status": status}, status_code=status, headers=headers)


def domain_error(request: Request[Any, Any, Any], exc: PgpagerError) -> Response[Any]:
    log_domain_error(request, exc)
    return error(exc.message, exc.status, retry_after(exc))


def validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    problems = exc.extra if isinstance(exc.extra, list) else []
    parts = [
        str(p.get("message")) + (f" (at {p['key']})" if p.get("key") else "")
        for p in problems
        if isinstance(p, dict)
    ]
    return error("; ".join(parts) or exc.detail or "the request is not valid", 422)


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return error(str(exc.detail), exc.status_code, exc.headers)


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("%s %s: unexpected error", request.method, request.url.path)
    return error("internal error; this is a bug, see the server log", 500)


upstash_router = Router(
    path="/upstash/{collection:str}",
    route_handlers=[UpstashController],
    exception_handlers={
        PgpagerError: domain_error,
        ValidationException: validation_error,
        HTTPException: http_error,
        Exception: unexpected_error,
    },
)
