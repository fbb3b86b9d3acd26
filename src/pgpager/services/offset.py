"""Offset pagination (Weaviate style): vector search and listing with ``limit`` + ``offset``,
capped at ``query_maximum_results``, plus keyset listing (``after``) with no depth limit.

A page is a slice of one deterministic sequence per query, so that on unchanged data ten
pages of 10 equal one page of 100:

- when the namespace and filter match at most ``flat_search_cutoff`` rows, the sequence is
  the exact order by (distance, id);
- otherwise it is the HNSW index's stream (iterative scan in relaxed order, fixed
  ``ef_search`` and scan bounds: the same stream for every LIMIT/OFFSET, LIMIT only stops
  pulling) put in order by a re-sorting window (``pgpager.window``: nearest first, and a
  position once decided never depends on how far the stream was read), followed by the rows
  the sequence does not hold in exact order. The stream can end early (the scan bounds, a
  filter) and the window leaves out rows found too late for their place, so a short page is
  completed from that exact tail: pages are full whenever enough rows match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pgpager.errors import InvalidRequest, TooDeep
from pgpager.replicas import Replicas
from pgpager.services import validation
from pgpager.services.embedding import Embedder
from pgpager.settings import Settings
from pgpager.store import collections, pages
from pgpager.store.database import Database
from pgpager.store.filters import compile_filter
from pgpager.store.search import Hit, Include, hit
from pgpager.store.vectors import VectorOut
from pgpager.window import Window, enough

# The scan bounds are fixed per server: they shape the stream, so they must not vary by page.
# Generous enough that a deep unfiltered page rarely needs the exact tail.
MIN_SCAN_TUPLES = 20_000
SCAN_MEM_MULTIPLIER = 2.0

NOTHING = Include()
METADATA_AND_DATA = Include(metadata=True, data=True)


@dataclass(frozen=True)
class ObjectPage:
    objects: list[VectorOut]
    next: str | None
    """The id to pass as ``after`` for the next page; None when no row follows."""


def check_window(
    settings: Settings, collection: str, limit: int, offset: int, *, listing: bool
) -> None:
    if limit < 1:
        raise InvalidRequest(f"limit must be at least 1 (got {limit})", field="limit")
    if offset < 0:
        raise InvalidRequest(f"offset must not be negative (got {offset})", field="offset")
    cap = settings.query_maximum_results
    if offset + limit > cap:
        deeper = "list further with after=<last id> (no depth limit), " if listing else ""
        raise TooDeep(
            f"offset + limit = {offset + limit} exceeds {cap}, the most results offset "
            f"pagination serves (PGPAGER_QUERY_MAXIMUM_RESULTS); to page deeper, {deeper}"
            f"use a resumable query (POST /v1/collections/{collection}/resumable-queries) "
            "or a stored query (POST /v1/queries)",
            limit=limit,
            offset=offset,
            maximum=cap,
        )


class OffsetPages:
    """Vector search and listing by limit + offset, and keyset listing. Pages are read on a
    replica in rotation when there is one (a replica lags by at most
    ``replica_max_lag_s``: a write made just before may not show yet)."""

    def __init__(
        self, db: Database, settings: Settings, embedder: Embedder, replicas: Replicas
    ) -> None:
        self.db = db
        self.settings = settings
        self.embedder = embedder
        self.replicas = replicas

    async def search(
        self,
        collection: str,
        *,
        vector: Any,
        data: Any = None,
        limit: int = 10,
        offset: int = 0,
        namespace: str | None = None,
        filter: str | None = None,
        include: Include = NOTHING,
    ) -> list[Hit]:
        """Results ``offset`` .. ``offset + limit`` of the nearest-first order, for the query
        ``vector`` or the text ``data`` (embedded with the collection's model)."""
        check_window(self.settings, collection, limit, offset, listing=False)
        ns = validation.namespace(namespace)
        where = compile_filter(filter)
        text_query = None
        if data is not None or vector is None:
            # Embedded before the snapshot is taken: no connection waits on the model.
            text_query = await self.embedder.query_vector(
                await collections.find(self.db, collection), vector=vector, data=data
            )

        async def read(db: Database) -> list[Hit]:
            async with pages.snapshot(db) as conn:
                c, estimate = await collections.get_with_estimate(conn, collection)
                q = text_query
                if q is None:
                    q = validation.vector(vector, c.dimension, "vector", c.metric)
                cutoff = self.settings.flat_search_cutoff
                if await pages.few_matching(conn, c, ns, where, cutoff, estimate=estimate):
                    return await pages.nearest_page(
                        conn, c, q, ns, where, include, limit=limit, offset=offset, exact=True
                    )
                await pages.use_hnsw(
                    conn,
                    ef_search=self.settings.hnsw_ef_search,
                    max_scan_tuples=max(MIN_SCAN_TUPLES, 4 * self.settings.query_maximum_results),
                    scan_mem_multiplier=SCAN_MEM_MULTIPLIER,
                )
                # The stream through the window, until offset + limit rows are decided: a
                # window more, and more again for each row the window leaves out (``enough``
                # reads a margin at once; the cursor reads on from there). Ids, distances and
                # scores only; the page's own columns after.
                want = offset + limit
                stream = pages.IndexStream(conn, c, q, ns, where)
                window: Window[tuple[Any, ...]] = Window()
                decided: list[tuple[Any, ...]] = []
                ended = False
                step = enough(want)
                while len(decided) < want and not ended:
                    rows = await stream.fetch(step)
                    ended = len(rows) < step
                    decided += window.feed((r[1], r[0], r) for r in rows)
                    step = max(1000, 2 * (want - len(decided)))
                sequence = decided + window.drain() if ended else decided
                page = [hit(r) for r in sequence[offset : offset + limit]]
                if page and include != NOTHING:
                    page = await pages.hits_by_id(conn, c, q, ns, include, [h.id for h in page])
                if len(page) == limit:
                    return page
                # The stream ended before offset + limit: the rest of the page comes from the
                # exact order of the rows its sequence does not hold.
                await pages.use_sort(conn)
                tail = await pages.nearest_page(
                    conn,
                    c,
                    q,
                    ns,
                    where,
                    include,
                    limit=limit - len(page),
                    offset=max(0, offset - len(sequence)),
                    exact=True,
                    exclude=[r[0] for r in sequence],
                )
                return page + tail

        return await self.replicas.read(read)

    async def list_objects(
        self,
        collection: str,
        *,
        limit: int = 10,
        offset: int = 0,
        after: str | None = None,
        namespace: str | None = None,
        filter: str | None = None,
        include: Include = METADATA_AND_DATA,
    ) -> ObjectPage:
        """Rows ordered by id: ``offset`` rows skipped (capped), or all rows after the id
        ``after`` (keyset, any depth)."""
        check_window(self.settings, collection, limit, offset, listing=True)
        if after == "":
            after = None
        if after is not None:
            if offset:
                raise InvalidRequest("give either offset or after, not both", field="after")
            validation.vector_id(after, "after", self.settings.max_id_length)
        ns = validation.namespace(namespace)
        where = compile_filter(filter)

        async def read(db: Database) -> list[VectorOut]:
            async with pages.snapshot(db) as conn:
                c = await collections.get(conn, collection)
                # One row more than asked tells whether a next page exists.
                return await pages.list_page(
                    conn, c, ns, where, include, after=after, limit=limit + 1, offset=offset
                )

        rows = await self.replicas.read(read)
        more = len(rows) > limit
        rows = rows[:limit]
        return ObjectPage(objects=rows, next=rows[-1].id if more else None)
