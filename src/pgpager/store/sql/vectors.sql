-- name: upsert
INSERT INTO pgpager_data.{table} AS t (id, namespace, embedding, metadata, data, updated_at)
VALUES (%(id)s, %(namespace)s, %(embedding)s, %(metadata)s, %(data)s, now())
ON CONFLICT (namespace, id) DO UPDATE
SET embedding = excluded.embedding,
    metadata = excluded.metadata,
    data = excluded.data,
    updated_at = now()

-- name: fetch
SELECT id, embedding, metadata, data
FROM pgpager_data.{table}
WHERE namespace = %(namespace)s AND id = ANY(%(ids)s::text[])

-- name: delete_ids
DELETE FROM pgpager_data.{table}
WHERE namespace = %(namespace)s AND id = ANY(%(ids)s::text[])
RETURNING id

-- name: delete_prefix
DELETE FROM pgpager_data.{table}
WHERE namespace = %(namespace)s AND starts_with(id, %(prefix)s)
RETURNING id

-- name: delete_where
DELETE FROM pgpager_data.{table}
WHERE namespace = %(namespace)s AND {condition}
RETURNING id

-- name: reset_namespace
DELETE FROM pgpager_data.{table} WHERE namespace = %(namespace)s

-- name: reset_all
-- DELETE, not TRUNCATE: TRUNCATE's ACCESS EXCLUSIVE lock would queue behind the cursor hosts'
-- long transactions (they keep the table's lock while any cursor is open) and, while queued,
-- block every reader of the collection.
DELETE FROM pgpager_data.{table}

-- name: id_range
SELECT id, {embedding}, {metadata}, {data}
FROM pgpager_data.{table}
WHERE namespace = %(namespace)s AND {after} AND starts_with(id, %(prefix)s)
ORDER BY id
LIMIT %(limit)s

-- name: lock_metadata
SELECT metadata FROM pgpager_data.{table}
WHERE namespace = %(namespace)s AND id = %(id)s
FOR UPDATE

-- name: update_one
UPDATE pgpager_data.{table}
SET embedding = COALESCE(%(embedding)s, embedding),
    metadata = %(metadata)s,
    data = COALESCE(%(data)s, data),
    updated_at = now()
WHERE namespace = %(namespace)s AND id = %(id)s

-- name: count
SELECT count(*) FROM pgpager_data.{table}

-- name: copy_in
COPY pgpager_data.{table} (id, namespace, embedding, metadata, data) FROM STDIN WITH (FORMAT BINARY)

-- name: index_build_memory
-- Building an HNSW index in one go is much faster when its graph fits in memory.
SET LOCAL maintenance_work_mem = '512MB'
