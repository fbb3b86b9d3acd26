-- name: list_collections
SELECT name, dimension, metric, hnsw_m, hnsw_ef_construction, embedding_model, table_name,
       created_at
FROM pgpager.collections
ORDER BY name

-- name: get_collection
SELECT name, dimension, metric, hnsw_m, hnsw_ef_construction, embedding_model, table_name,
       created_at
FROM pgpager.collections
WHERE name = %(name)s

-- name: get_collection_and_estimate
-- The collection and the planner's row estimate for its table (-1 if never analyzed), in one
-- round trip.
SELECT c.name, c.dimension, c.metric, c.hnsw_m, c.hnsw_ef_construction, c.embedding_model,
       c.table_name, c.created_at, coalesce(t.reltuples, -1) AS estimated_rows
FROM pgpager.collections c
JOIN pg_namespace s ON s.nspname = 'pgpager_data'
LEFT JOIN pg_class t ON t.relnamespace = s.oid AND t.relname = c.table_name
WHERE c.name = %(name)s

-- name: insert_collection
INSERT INTO pgpager.collections
    (name, dimension, metric, hnsw_m, hnsw_ef_construction, embedding_model, table_name)
VALUES
    (%(name)s, %(dimension)s, %(metric)s, %(hnsw_m)s, %(hnsw_ef_construction)s,
     %(embedding_model)s, %(table_name)s)
RETURNING name, dimension, metric, hnsw_m, hnsw_ef_construction, embedding_model, table_name,
          created_at

-- name: delete_collection
DELETE FROM pgpager.collections WHERE name = %(name)s RETURNING table_name

-- name: create_table
CREATE TABLE pgpager_data.{table} (
    id text NOT NULL,
    namespace text NOT NULL DEFAULT '',
    embedding vector({dimension}) NOT NULL,
    metadata jsonb,
    data text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, id)
)

-- name: create_hnsw_index
CREATE INDEX {index} ON pgpager_data.{table}
USING hnsw (embedding {opclass}) WITH (m = {m}, ef_construction = {ef_construction})

-- name: create_metadata_index
CREATE INDEX {index} ON pgpager_data.{table} USING gin (metadata)

-- name: drop_hnsw_index
DROP INDEX IF EXISTS pgpager_data.{index}

-- name: set_lock_timeout
SET LOCAL lock_timeout = '1s'

-- name: drop_table
DROP TABLE IF EXISTS pgpager_data.{table}

-- name: collection_stats
SELECT namespace, count(*) AS vector_count
FROM pgpager_data.{table}
GROUP BY namespace
ORDER BY namespace

-- name: index_info
SELECT i.relname AS name, am.amname AS method, ix.indisvalid AS valid,
       pg_relation_size(i.oid) AS size_bytes
FROM pg_index ix
JOIN pg_class i ON i.oid = ix.indexrelid
JOIN pg_am am ON am.oid = i.relam
WHERE ix.indrelid = to_regclass(%(qualified)s)
ORDER BY i.relname

-- name: table_size
SELECT pg_total_relation_size(to_regclass(%(qualified)s)) AS size_bytes

-- name: estimated_rows
SELECT reltuples FROM pg_class WHERE oid = to_regclass(%(qualified)s)
