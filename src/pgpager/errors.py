"""Domain errors. Each class is one situation; its docstring is the default message.

The HTTP edge maps ``status`` to the response code and renders one JSON shape:
``{"error": {"code": ..., "message": ..., "detail": ...}}``.
"""

from __future__ import annotations

from typing import Any


class PgpagerError(Exception):
    """Something went wrong in pgpager."""

    status: int = 500
    code: str = "internal_error"
    retry_after_s: int | None = None
    """Sent as ``Retry-After``: when trying again may succeed."""

    def __init__(self, message: str | None = None, **detail: Any) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.detail = detail
        super().__init__(self.message)


# --- configuration and start-up (not HTTP) ---------------------------------------------------
class ConfigurationError(PgpagerError):
    """pgpager is not configured correctly."""

    code = "configuration_error"


class DatabaseUnavailable(PgpagerError):
    """The database cannot be reached."""

    status = 503
    code = "database_unavailable"
    retry_after_s = 2


class DataDirectoryLocked(ConfigurationError):
    """Another pgpager server is already using this data directory."""


class PortInUse(ConfigurationError):
    """Another program is listening on this port."""


# --- caller mistakes --------------------------------------------------------------------------
class InvalidRequest(PgpagerError):
    """The request is not valid."""

    status = 422
    code = "invalid_request"


class BadRequest(PgpagerError):
    """The request is malformed."""

    status = 400
    code = "bad_request"


class NotSupported(BadRequest):
    """pgpager does not support this feature."""

    code = "not_supported"


class UnknownModel(InvalidRequest):
    """pgpager does not support this embedding model: GET /v1/models lists the ones it does."""

    code = "unknown_model"


class NoEmbeddingModel(BadRequest):
    """This collection has no embedding model, so it cannot embed text: send vectors, or create
    a collection with an embedding_model."""

    code = "no_embedding_model"


class DuplicateId(InvalidRequest):
    """A vector with this id exists already."""

    code = "duplicate_id"


class InvalidFilter(InvalidRequest):
    """The metadata filter is not valid."""

    code = "invalid_filter"


class TooDeep(InvalidRequest):
    """offset + limit exceeds the maximum number of results for offset pagination."""

    code = "query_maximum_results_exceeded"


class Unauthorized(PgpagerError):
    """Missing or unknown API key: send 'Authorization: Bearer <token>'."""

    status = 401
    code = "unauthorized"


class Forbidden(PgpagerError):
    """This API key lacks the scope this request needs."""

    status = 403
    code = "forbidden"


class NotFound(PgpagerError):
    """Not found."""

    status = 404
    code = "not_found"


class CollectionNotFound(NotFound):
    """No such collection."""

    code = "collection_not_found"


class VectorNotFound(NotFound):
    """No vector with this id."""

    code = "vector_not_found"


class NamespaceNotFound(NotFound):
    """No such namespace in this collection."""

    code = "namespace_not_found"


class HandleNotFound(NotFound):
    """No such resumable query handle."""

    code = "handle_not_found"


class QueryNotFound(NotFound):
    """No such stored query."""

    code = "query_not_found"


class Conflict(PgpagerError):
    """The resource already exists."""

    status = 409
    code = "conflict"


class CollectionExists(Conflict):
    """A collection with this name already exists."""

    code = "collection_exists"


class CollectionBusy(Conflict):
    """The collection is in use; try again in a moment."""

    code = "collection_busy"


class Gone(PgpagerError):
    """The resource is no longer available."""

    status = 410
    code = "gone"


class HandleClosed(Gone):
    """This resumable query handle is closed."""

    code = "handle_closed"


class QueryExpired(Gone):
    """The results of this stored query have expired."""

    code = "query_expired"


class QueryCancelled(Gone):
    """The stored query was cancelled: it has no results."""

    code = "query_cancelled"


class QueryNotReady(Conflict):
    """The stored query has not completed: poll GET /v1/queries/{query_id} for its state."""

    code = "query_not_ready"


class InvalidCursor(BadRequest):
    """The cursor is not valid for this query: pass a next_cursor this query returned."""

    code = "invalid_cursor"


class SqlUnavailable(PgpagerError):
    """Stored SQL queries are unavailable: the key's reader role is not ready or cannot log in."""

    status = 503
    code = "sql_unavailable"
    retry_after_s = 5


class ModelUnavailable(PgpagerError):
    """The embedding model cannot be loaded."""

    status = 503
    code = "model_unavailable"


class TooManyHandles(PgpagerError):
    """Too many active resumable queries."""

    status = 429
    code = "too_many_handles"
    retry_after_s = 5


class QueryFailed(InvalidRequest):
    """The query failed."""

    code = "query_failed"


class QueryTimeout(PgpagerError):
    """The query ran past its time limit."""

    status = 408
    code = "query_timeout"
