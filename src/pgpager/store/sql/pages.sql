-- name: begin_snapshot
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY

-- name: use_hnsw
-- Session settings of the approximate plan, local to the transaction. enable_sort = off makes
-- the planner take the HNSW index scan at every LIMIT/OFFSET, so all pages read one stream.
-- Relaxed order: the rows strict order would drop come a little late instead, and the
-- re-sorting window (pgpager.window) puts them back in place.
SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),
       set_config('hnsw.ef_search', %(ef_search)s, true),
       set_config('hnsw.max_scan_tuples', %(max_scan_tuples)s, true),
       set_config('hnsw.scan_mem_multiplier', %(scan_mem_multiplier)s, true),
       set_config('enable_sort', 'off', true)

-- name: declare_stream
-- The HNSW stream of an offset page (pages.IndexStream), read as far as it is fetched.
DECLARE pgpager_offset_stream NO SCROLL CURSOR FOR {nearest}

-- name: fetch_stream
FETCH FORWARD {n} FROM pgpager_offset_stream

-- name: use_sort
SELECT set_config('enable_sort', 'on', true)

-- name: count_matching
SELECT count(*)
FROM (
    SELECT 1 FROM pgpager_data.{table} AS t
    WHERE namespace = %(namespace)s AND ({condition})
    LIMIT %(bound)s
) AS matching

-- name: list_page
SELECT id, {embedding}, {metadata}, {data}
FROM pgpager_data.{table} AS t
WHERE namespace = %(namespace)s AND {after} AND ({condition})
ORDER BY id
LIMIT %(limit)s OFFSET %(offset)s
