"""The Upstash Vector-compatible API, one index per collection at ``/upstash/{collection}``.

The unmodified ``upstash-vector`` SDK works against it:
``Index(url="http://host:port/upstash/<collection>", token=...)``. Every call is a POST whose
JSON body uses camelCase names; a namespace is a path suffix (``/query/<namespace>``). Replies
are ``{"result": ...}``, errors ``{"error": "<message>", "status": <code>}`` with the same
status codes as the native API. Text ("data") is embedded with the collection's embedding model
(the ``*-data`` routes, and ``data`` without a vector anywhere); a collection without a model
answers 400 saying how to create one with a model.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Controller, Request, Response, Router, post, route
from litestar.exceptions import HTTPException, ValidationException

from pgpager.errors import InvalidRequest, NotFound, NotSupported, PgpagerError, UnknownModel
from pgpager.http.auth import key_id
from pgpager.http.errors import (
    INTERNAL_MESSAGE,
    http_message,
    log_domain_error,
    retry_after,
    validation_message,
)
from pgpager.http.request import decode_body
from pgpager.services.collections import Collections
from pgpager.services.embedding import find_model
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


class UpsertDataItem(Body):
    id: VectorId
    data: str | None = None
    metadata: dict[str, Any] | None = None


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


class DenseIndexInfo(msgspec.Struct, rename="camel"):
    dimension: int
    similarity_function: str
    embedding_model: str


class InfoResult(msgspec.Struct, rename="camel", omit_defaults=True):
    vector_count: int
    pending_vector_count: int
    index_size: int
    dimension: int
    similarity_function: str
    namespaces: dict[str, NamespaceInfo]
    index_type: str
    dense_index: DenseIndexInfo | None = None
    """Present when the collection has an embedding model, as Upstash reports one."""


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


def sparse_unsupported() -> NotSupported:
    return NotSupported("sparse vectors are not supported: pgpager collections are dense")


def dense_query(body: QueryBody) -> dict[str, Any]:
    """The query's ``vector`` and ``data`` (text to embed): the service takes exactly one."""
    if body.sparse_vector is not None:
        raise sparse_unsupported()
    return {"vector": body.vector, "data": body.data}


def upstash_model_name(name: str | None) -> str | None:
    """A collection's model as Upstash names it (BGE_SMALL_EN_V1_5); a name pgpager does not
    know (written with SQL) as it is."""
    if name is None:
        return None
    try:
        return find_model(name).upstash_name
    except UnknownModel:
        return name


async def run_queries(
    upstash: UpstashIndex,
    request: Request[Any, Any, Any],
    collection: str,
    namespace: str | None,
) -> Ok:
    """/query and /query-data: one query, or a list of them (query_many), each by vector or by
    text."""
    body = await required(request, list[QueryBody] | QueryBody)

    async def one(q: QueryBody) -> list[QueryResult]:
        hits = await upstash.query(
            collection,
            **dense_query(q),
            top_k=q.top_k,
            namespace=namespace,
            filter=q.filter or None,
            include=include_of(q),
        )
        return [QueryResult.of(h) for h in hits]

    if isinstance(body, list):
        upstash.check_fan_out(len(body))
        return Ok([await one(q) for q in body])
    return Ok(await one(body))


async def start_resumable(
    resumable: ResumableQueries,
    request: Request[Any, Any, Any],
    collection: str,
    namespace: str | None,
) -> Ok:
    """/resumable-query and /resumable-query-data: by vector or by text."""
    body: ResumableBody = await required(request, ResumableBody)
    page = await resumable.start(
        collection,
        **dense_query(body),
        top_k=body.top_k,
        namespace=namespace,
        filter=body.filter or None,
        include=include_of(body),
        max_idle=body.max_idle,
        api_key_id=key_id(request),
    )
    return Ok(ResumableStarted(page.handle, [QueryResult.of(h) for h in page.results]))


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
        """Insert or replace vectors: a list of {id, vector, metadata?, data?} or one object. An
        item with data and no vector is embedded with the collection's model."""
        body = await required(request, list[UpsertItem] | UpsertItem)
        items = body if isinstance(body, list) else [body]
        for item in items:
            if item.sparse_vector is not None:
                raise sparse_unsupported()
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
    async def upsert_data(
        self,
        vectors: Vectors,
        request: Request[Any, Any, Any],
        collection: str,
        namespace: str | None = None,
    ) -> Ok:
        """Insert or replace text: a list of {id, data, metadata?} or one object, embedded with
        the collection's model and stored with the text."""
        body = await required(request, list[UpsertDataItem] | UpsertDataItem)
        items = body if isinstance(body, list) else [body]
        for i, item in enumerate(items):
            if item.data is None:
                where = f"vectors[{i}]"
                raise InvalidRequest(f"{where}: data (the text to embed) is required", item=where)
        await vectors.upsert(
            collection,
            [{"id": vector_id(i.id), "data": i.data, "metadata": i.metadata} for i in items],
            namespace,
        )
        return Ok(SUCCESS)

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
        return await run_queries(upstash, request, collection, namespace)

    @post(paths("query-data"), opt={"scope": "read"}, status_code=200, operation_id=operation_id)
    async def query_data(
        self,
        upstash: UpstashIndex,
        request: Request[Any, Any, Any],
        collection: str,
        namespace: str | None = None,
    ) -> Ok:
        """The topK nearest vectors to a text, embedded with the collection's model; a list of
        queries gets a list of result lists."""
        return await run_queries(upstash, request, collection, namespace)

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
        return await start_resumable(resumable, request, collection, namespace)

    @post(
        paths("resumable-query-data"),
        opt={"scope": "read"},
        status_code=200,
        operation_id=operation_id,
    )
    async def resumable_query_data(
        self,
        resumable: ResumableQueries,
        request: Request[Any, Any, Any],
        collection: str,
        namespace: str | None = None,
    ) -> Ok:
        """Start a resumable query for a text, embedded once with the collection's model: the
        first topK results and its handle (uuid)."""
        return await start_resumable(resumable, request, collection, namespace)

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
        c = i.collection
        similarity = SIMILARITY[c.metric]
        model = upstash_model_name(c.embedding_model)
        return Ok(
            InfoResult(
                vector_count=i.vector_count,
                pending_vector_count=0,
                index_size=i.size_bytes,
                dimension=c.dimension,
                similarity_function=similarity,
                namespaces={ns: NamespaceInfo(n) for ns, n in {"": 0, **i.namespaces}.items()},
                index_type="DENSE",
                dense_index=None
                if model is None
                else DenseIndexInfo(c.dimension, similarity, embedding_model=model),
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
def error_body(message: str, status: int) -> dict[str, Any]:
    """Upstash's error shape; the SDK raises UpstashError(message) on it."""
    return {"error": message, "status": status}


def error(message: str, status: int, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(error_body(message, status), status_code=status, headers=headers)


def domain_error(request: Request[Any, Any, Any], exc: PgpagerError) -> Response[Any]:
    log_domain_error(request, exc)
    return error(exc.message, exc.status, retry_after(exc))


def validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    return error(validation_message(exc)[0], 422)


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return error(http_message(request, exc), exc.status_code, exc.headers)


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("%s %s: unexpected error", request.method, request.url.path)
    return error(INTERNAL_MESSAGE, 500)


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
