"""Vector operations the Upstash-compatible API needs beyond the native ones: top-k query,
keyset ranges with an id prefix, fetch by prefix, in-place update (overwrite or JSON merge
patch), reset, and namespaces."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from pgpager.errors import InvalidCursor, InvalidRequest, NamespaceNotFound
from pgpager.services import validation
from pgpager.services.embedding import Embedder, text_to_embed
from pgpager.services.offset import OffsetPages
from pgpager.settings import Settings
from pgpager.store import collections, vectors
from pgpager.store.database import Database
from pgpager.store.search import Hit, Include
from pgpager.store.vectors import VectorOut

METADATA_MODES = ("OVERWRITE", "PATCH")


# --- range ------------------------------------------------------------------------------------
def encode_cursor(last_id: str) -> str:
    """An opaque cursor for the id a page ended at. Never "" or "0", the start cursors
    Upstash clients send, so a vector whose id is "0" is not skipped."""
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str | None:
    """The id to continue after, or None to start from the beginning."""
    if cursor in ("", "0"):
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        last_id = raw.decode()
    except (binascii.Error, ValueError):
        last_id = None
    if last_id is None or encode_cursor(last_id) != cursor:
        raise InvalidCursor(
            f"cursor {cursor[:40]!r} is not a nextCursor returned by range; "
            "start with an empty cursor",
            field="cursor",
        )
    return last_id


def _check_limit(settings: Settings, limit: int) -> None:
    cap = settings.max_batch_size
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= cap:
        raise InvalidRequest(
            f"limit must be between 1 and {cap} (PGPAGER_MAX_BATCH_SIZE); got {limit!r}",
            field="limit",
            limit=cap,
        )


def _prefix(prefix: str | None, *, allow_empty: bool) -> str:
    if prefix is None or prefix == "":
        if allow_empty:
            return ""
        raise InvalidRequest("prefix must not be empty", field="prefix")
    if "\x00" in prefix:
        raise InvalidRequest("prefix must not contain NUL characters", field="prefix")
    return prefix


# --- update -----------------------------------------------------------------------------------
def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch: objects merge key by key, null removes a key, anything else
    replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- namespaces -------------------------------------------------------------------------------


class UpstashIndex:
    """What the Upstash-compatible API needs beyond the native operations."""

    def __init__(
        self, db: Database, settings: Settings, pages: OffsetPages, embedder: Embedder
    ) -> None:
        self.db = db
        self.settings = settings
        self.pages = pages
        self.embedder = embedder

    async def query(
        self,
        collection: str,
        *,
        vector: Any,
        data: Any = None,
        top_k: int,
        namespace: str | None,
        filter: str | None,
        include: Include,
    ) -> list[Hit]:
        """The ``top_k`` nearest vectors (to ``vector``, or to the text ``data``): the first page
        of offset pagination."""
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InvalidRequest(f"topK must be a positive integer (got {top_k!r})", field="topK")
        return await self.pages.search(
            collection,
            vector=vector,
            data=data,
            limit=top_k,
            offset=0,
            namespace=namespace,
            filter=filter,
            include=include,
        )

    def check_fan_out(self, queries: int) -> None:
        """A request may carry at most ``max_queries_per_request`` queries."""
        cap = self.settings.max_queries_per_request
        if queries > cap:
            raise InvalidRequest(
                f"the request holds {queries} queries; the limit is {cap} "
                "(PGPAGER_MAX_QUERIES_PER_REQUEST): send them in several requests",
                limit=cap,
            )

    async def range_page(
        self,
        collection: str,
        *,
        cursor: str,
        limit: int,
        prefix: str | None,
        namespace: str | None,
        include: Include,
    ) -> tuple[list[VectorOut], str]:
        """Vectors ordered by id after ``cursor``, and the next cursor ("" at the end)."""
        _check_limit(self.settings, limit)
        after = decode_cursor(cursor)
        # One row more than asked tells whether a next page exists.
        rows = await vectors.id_range(
            self.db,
            collection,
            validation.namespace(namespace),
            after=after,
            prefix=_prefix(prefix, allow_empty=True),
            limit=limit + 1,
            include=include,
        )
        if len(rows) > limit:
            rows = rows[:limit]
            return rows, encode_cursor(rows[-1].id)
        return rows, ""

    async def fetch_prefix(
        self,
        collection: str,
        *,
        prefix: str,
        namespace: str | None,
        include: Include,
    ) -> list[VectorOut]:
        """Every vector whose id starts with ``prefix``, ordered by id, up to the batch size."""
        cap = self.settings.max_batch_size
        rows = await vectors.id_range(
            self.db,
            collection,
            validation.namespace(namespace),
            after=None,
            prefix=_prefix(prefix, allow_empty=False),
            limit=cap + 1,
            include=include,
        )
        if len(rows) > cap:
            raise InvalidRequest(
                f"more than {cap} vectors have ids starting with {prefix!r} "
                "(PGPAGER_MAX_BATCH_SIZE): page through them with range(prefix=...)",
                field="prefix",
                limit=cap,
            )
        return rows

    async def update(
        self,
        collection: str,
        *,
        vid: Any,
        vector: Any = None,
        metadata: Any = None,
        data: Any = None,
        mode: str = "OVERWRITE",
        namespace: str | None = None,
    ) -> bool:
        """Change the vector, metadata or data of one vector. False if the id does not exist.
        In a collection with an embedding model, new ``data`` without a ``vector`` is embedded
        and replaces the vector too (as Upstash does); elsewhere data is only stored."""
        ns = validation.namespace(namespace)
        checked_id = validation.vector_id(vid, "id", self.settings.max_id_length)
        if mode not in METADATA_MODES:
            raise InvalidRequest(
                f"metadataUpdateMode must be one of {', '.join(METADATA_MODES)} (got {mode!r})",
                field="metadataUpdateMode",
            )
        if vector is None and metadata is None and data is None:
            raise InvalidRequest("give at least one of vector, metadata or data to update")
        c = await collections.find(self.db, collection)
        q = None if vector is None else validation.vector(vector, c.dimension, "vector", c.metric)
        meta = validation.metadata(metadata, "metadata")
        where = f"vector {checked_id!r}"
        text = validation.data(data, where, self.settings.max_data_bytes)
        limit = self.settings.max_metadata_bytes
        # Metadata that replaces the stored one is measured before anything is embedded or
        # locked; a patch is measured as it comes out, merged into the stored metadata.
        overwrite = (
            validation.metadata_json(meta, where, limit)
            if meta is not None and mode == "OVERWRITE"
            else None
        )
        if q is None and text is not None and c.embedding_model is not None:
            model = self.embedder.model_of(c)
            q = (await self.embedder.embed(model, [text_to_embed(text, "data")]))[0]

        def change(stored: Any) -> Any:
            if meta is None:
                return stored
            if overwrite is not None:
                return overwrite
            if isinstance(stored, msgspec.Raw):
                raise InvalidRequest(
                    "the stored metadata nests too deeply to patch: overwrite it instead",
                    field="metadataUpdateMode",
                )
            return validation.metadata_json(merge_patch(stored or {}, meta), where, limit)

        return await vectors.update(
            self.db, collection, ns, checked_id, vector=q, data=text, metadata=change
        )

    async def reset(self, collection: str, namespace: str | None) -> None:
        """Delete every vector of one namespace, or of all namespaces (``namespace=None``)."""
        ns = None if namespace is None else validation.namespace(namespace)
        await vectors.reset(self.db, collection, ns)

    async def namespaces(self, collection: str) -> dict[str, int]:
        """Vector count per namespace; the default namespace "" is always there, as in Upstash."""
        counts = (await collections.info(self.db, collection)).namespaces
        return {"": 0, **counts}

    async def delete_namespace(self, collection: str, namespace: str) -> None:
        ns = validation.namespace(namespace)
        if ns == "":
            raise InvalidRequest("the default namespace cannot be deleted; reset it instead")
        if ns not in await self.namespaces(collection):
            raise NamespaceNotFound(
                f"namespace {ns!r} does not exist in collection {collection!r}", namespace=ns
            )
        await vectors.reset(self.db, collection, ns)
