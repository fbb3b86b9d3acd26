-- name: schema_table_exists
SELECT to_regclass('public.alembic_version') IS NOT NULL

-- name: schema_revision
SELECT version_num FROM public.alembic_version LIMIT 1

-- name: server_info
SELECT current_database() AS database,
       current_setting('server_version') AS server_version,
       (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector_version

-- name: backends
-- What PostgreSQL knows about the given backends (cursor hosts of handles).
SELECT pid, application_name, state, backend_start, xact_start,
       backend_xmin::text AS backend_xmin, now() AS now
FROM pg_stat_activity
WHERE pid = ANY(%(pids)s::int[])

-- name: server_instances
-- Servers connected to this database right now: their connections carry
-- application_name 'pgpager:<instance id>'.
SELECT substr(application_name, length(%(prefix)s) + 1) AS instance,
       count(*) AS connections,
       min(backend_start) AS connected_since
FROM pg_stat_activity
WHERE datname = current_database() AND starts_with(application_name, %(prefix)s)
GROUP BY 1
ORDER BY 1

-- name: session_counts
SELECT state, count(*) AS n FROM pgpager.query_sessions GROUP BY state

-- name: handle_owners
SELECT owner_instance, count(*) AS n
FROM pgpager.query_sessions
WHERE state = 'active'
GROUP BY owner_instance

-- name: collection_row_estimates
-- Cheap row counts: the statistics' live-row count (kept current by inserts and deletes),
-- falling back to pg_class.reltuples (as of the last VACUUM/ANALYZE/CREATE INDEX).
SELECT c.name,
       coalesce(s.n_live_tup, CASE WHEN cl.reltuples >= 0 THEN cl.reltuples::bigint END, 0)
           AS vectors
FROM pgpager.collections c
LEFT JOIN pg_class cl
       ON cl.oid = to_regclass(quote_ident('pgpager_data') || '.' || quote_ident(c.table_name))
LEFT JOIN pg_stat_all_tables s ON s.relid = cl.oid
ORDER BY c.name

-- name: count_rows
SELECT count(*) FROM pgpager_data.{table}

-- name: ping
SELECT 1

-- name: pgvector_version
-- The installed version of pgvector, and the version that CREATE EXTENSION would install.
SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector'),
       (SELECT default_version FROM pg_available_extensions WHERE name = 'vector')

-- name: database_exists
SELECT 1 FROM pg_database WHERE datname = %(name)s

-- name: create_database
CREATE DATABASE {database}
