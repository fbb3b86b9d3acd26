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

-- name: distance
(t.embedding {operator} %(q)s)

-- name: order_index
-- What the HNSW index serves: a stream in (roughly) increasing distance.
{distance}

-- name: order_exact
-- An expression no index can serve, so every matching row is scored and sorted: exact,
-- complete and deterministic (ties by id).
{distance} + 0, t.id

-- name: skip_nothing
TRUE

-- name: skip_delivered
-- The rows a resumable handle has delivered (its query_session_rows): a primary-key probe.
NOT EXISTS (SELECT 1 FROM pgpager.query_session_rows s
            WHERE s.session_id = %(session_id)s AND s.row_id = t.id)

-- name: skip_ids
-- Rows by id (those an index stream delivered). An anti-join: it stays a hash join when
-- psycopg prepares the statement, where `<> ALL(array)` would scan the array for every row.
NOT EXISTS (SELECT 1 FROM unnest(%(skip_ids)s::text[]) AS x(id) WHERE x.id = t.id)

-- name: limit_offset
LIMIT %(limit)s OFFSET %(offset)s

-- name: no_limit
-- (nothing: a cursor reads as far as it is fetched)
