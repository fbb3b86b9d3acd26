-- name: nearest
-- The nearest-neighbour SELECT of every query style (offset pages, resumable cursors, stored
-- vector searches). Parameters: %(q)s the query vector, %(metric)s, %(namespace)s, the
-- filter's own, and those of the {skip} and {limit} pieces below. The score is pgpager.score
-- (migration 0004), computed outside the ordered subquery (which PostgreSQL keeps as it is,
-- order included) so that it reads the distance instead of computing it again.
SELECT h.id, h.distance, pgpager.score(%(metric)s, h.distance) AS score,
       h.embedding, h.metadata, h.data
FROM (
    SELECT t.id, {distance} AS distance, {embedding}, {metadata}, {data}
    FROM {table} AS t
    WHERE t.namespace = %(namespace)s AND ({condition}) AND {skip}
    ORDER BY {order}
    {limit}
) AS h

-- name: nearest_exact
-- The same rows in exact order: every matching row is scored once and sorted by (distance, id),
-- complete and deterministic. OFFSET 0 keeps the innermost subquery apart, so the ORDER BY above
-- it can never be served by the HNSW index, and the distance is computed once per row (not again
-- for a sort key); the score is computed after the sort, for the rows read only.
SELECT h.id, h.distance, pgpager.score(%(metric)s, h.distance) AS score,
       h.embedding, h.metadata, h.data
FROM (
    SELECT r.* FROM (
        SELECT t.id, {distance} AS distance, {embedding}, {metadata}, {data}
        FROM {table} AS t
        WHERE t.namespace = %(namespace)s AND ({condition}) AND {skip}
        OFFSET 0
    ) AS r
    ORDER BY r.distance, r.id
    {limit}
) AS h

-- name: distance
(t.embedding {operator} %(q)s)

-- name: order_index
-- What the HNSW index serves: a stream in (roughly) increasing distance.
{distance}

-- name: skip_nothing
TRUE

-- name: skip_delivered
-- The rows a resumable handle has delivered (its query_session_rows), for an exact cursor: an
-- anti join, read once. The delivered set grows by thousands of rows a second inside one handle,
-- so the statistics the planner sees lag far behind it: they can say "1 row" for a set of 60,000,
-- and a nested loop over that "1 row" rescans the whole set for every candidate (143 s once, at
-- 63,000 rows). Cursor hosts plan with enable_nestloop off (cursors.HOST_SETTINGS), which leaves
-- a hash or merge anti join: linear at any statistics.
NOT EXISTS (SELECT 1 FROM pgpager.query_session_rows s
            WHERE s.session_id = %(session_id)s AND s.row_id = t.id)

-- name: skip_delivered_each
-- The same rows, for an index stream (a handle rehydrated in its index phase): one primary-key
-- probe per streamed row. OFFSET 0 keeps it a per-row subplan; as a join, the planner could
-- keep the stream's order only with a nested loop, and with statistics behind the delivered set
-- it picks one over a materialized scan of it (quadratic in the rows delivered).
NOT EXISTS (SELECT 1 FROM pgpager.query_session_rows s
            WHERE s.session_id = %(session_id)s AND s.row_id = t.id OFFSET 0)

-- name: skip_ids
-- Rows by id (those an index stream delivered). An anti-join: it stays a hash join when
-- psycopg prepares the statement, where `<> ALL(array)` would scan the array for every row.
NOT EXISTS (SELECT 1 FROM unnest(%(skip_ids)s::text[]) AS x(id) WHERE x.id = t.id)

-- name: only_ids
-- Just the rows in %(only_ids)s (a page whose order is already known): primary-key lookups.
t.id = ANY(%(only_ids)s::text[])

-- name: limit_offset
LIMIT %(limit)s OFFSET %(offset)s

-- name: no_limit
-- (nothing: a cursor reads as far as it is fetched)
