-- name: database_facts
SELECT current_setting('server_version') AS postgres,
       current_setting('shared_buffers') AS shared_buffers,
       current_setting('work_mem') AS work_mem,
       (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector

-- name: analyze
ANALYZE {table}

-- name: begin_like_a_host
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY

-- name: declare_floor
DECLARE floor NO SCROLL CURSOR FOR {select}

-- name: fetch_floor
FETCH {count} FROM floor

-- name: close_floor
CLOSE floor

-- name: host_backend_pids
-- Backends holding the cursors of one server instance (from the sessions table).
SELECT DISTINCT s.owner_pid
FROM pgpager.query_sessions AS s
JOIN pg_stat_activity AS a ON a.pid = s.owner_pid
WHERE s.owner_instance = %(instance)s AND s.owner_pid IS NOT NULL

-- name: server_pids
-- Every process of the PostgreSQL server that shows in pg_stat_activity: backends, the WAL
-- writer, the checkpointer and the other background processes.
SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL

-- name: create_commit_floor
-- A logged table shaped like query_session_rows: what a durable write of one page's ids costs
-- at least (a next's record also checks, in the same statement, that its handle is active).
CREATE TABLE {table} (session_id text NOT NULL, row_id text NOT NULL,
                      PRIMARY KEY (session_id, row_id))

-- name: commit_floor
INSERT INTO {table} (session_id, row_id)
SELECT %(session)s, unnest(%(ids)s::text[])

-- name: drop_commit_floor
DROP TABLE IF EXISTS {table}

-- name: unpurged_closed_handles
-- Closed handles whose delivered ids the sweeper has not purged yet.
SELECT count(*) FROM pgpager.query_sessions q
WHERE q.state <> 'active'
  AND EXISTS (SELECT 1 FROM pgpager.query_session_rows r WHERE r.session_id = q.id)

-- name: vacuum_sessions
VACUUM (ANALYZE) pgpager.query_session_rows, pgpager.query_sessions
