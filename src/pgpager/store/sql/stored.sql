-- name: ensure_secret
INSERT INTO pgpager.stored_query_secret (cursor_key, reader_password)
VALUES (%(cursor_key)s, %(reader_password)s)
ON CONFLICT (id) DO NOTHING

-- name: get_secret
SELECT cursor_key, reader_password FROM pgpager.stored_query_secret

-- name: reader_role_state
-- An API key's login role: does it exist, and what it is set to in this database.
SELECT current_database() AS dbname,
       r.oid IS NOT NULL AS role_exists,
       coalesce(s.setconfig, ARRAY[]::text[]) AS config
FROM (SELECT 1) AS one
LEFT JOIN pg_roles AS r ON r.rolname = %(role)s
LEFT JOIN pg_db_role_setting AS s
    ON s.setrole = r.oid
   AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())

-- name: create_reader_role
-- The group pgpager_reader holds the read grants; its members share nothing else, and a
-- backend can cancel or terminate only backends of roles whose privileges it has.
CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS
    PASSWORD {password} IN ROLE pgpager_reader

-- name: set_reader_setting
ALTER ROLE {role} IN DATABASE {dbname} SET {setting} = {value}

-- name: reader_sandbox
-- What would let the role reach past its own query: role attributes or memberships a reader
-- must not have, and the functions of pgpager.sandbox_functions it can still run (migration
-- 0005 revokes them from PUBLIC).
SELECT r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls
           OR pg_has_role(r.oid, 'pg_signal_backend', 'USAGE') AS privileged,
       pg_has_role(r.oid, 'pgpager_reader', 'USAGE') AS reads,
       ARRAY(
           SELECT f.function::text
           FROM pgpager.sandbox_functions AS f
           WHERE has_function_privilege(r.oid, f.function, 'EXECUTE')
           ORDER BY 1
       ) AS open_functions
FROM pg_roles AS r
WHERE r.rolname = %(role)s

-- name: set_reader_password
ALTER ROLE {role} PASSWORD {password}

-- name: lock_instance
-- Held for the life of an instance on a connection of its own: while it is held, the
-- instance is alive. The key is (hashtext('pgpager.instance'), hashtext(instance_id)).
SELECT pg_advisory_lock(hashtext('pgpager.instance'), hashtext(%(instance_id)s))

-- name: insert_query
INSERT INTO pgpager.stored_queries
    (query_id, kind, request, state, api_key_id, owner_instance, expires_at)
VALUES
    (%(query_id)s, %(kind)s, %(request)s, 'QUEUED', %(api_key_id)s, %(owner_instance)s,
     now() + make_interval(secs => %(keep_s)s))

-- name: mark_running
UPDATE pgpager.stored_queries
SET state = 'RUNNING', started_at = clock_timestamp()
WHERE query_id = %(query_id)s AND state = 'QUEUED'

-- name: mark_completed
UPDATE pgpager.stored_queries
SET state = 'COMPLETED',
    finished_at = clock_timestamp(),
    expires_at = clock_timestamp() + make_interval(secs => %(ttl_s)s),
    elapsed_time_ms = %(elapsed_time_ms)s,
    doc_count = %(doc_count)s,
    size_bytes = %(size_bytes)s,
    results_total_doc_count = %(doc_count)s
WHERE query_id = %(query_id)s AND state = 'RUNNING'

-- name: mark_failed
UPDATE pgpager.stored_queries
SET state = 'FAILED',
    error = %(error)s,
    finished_at = clock_timestamp(),
    expires_at = clock_timestamp() + make_interval(secs => %(ttl_s)s),
    elapsed_time_ms = %(elapsed_time_ms)s
WHERE query_id = %(query_id)s AND state IN ('QUEUED', 'RUNNING')

-- name: mark_cancelled
-- Stopped by its caller: the record stays (its state says so) until it expires; the rows a
-- run was writing are rolled back (mark_completed needs RUNNING).
UPDATE pgpager.stored_queries
SET state = 'CANCELLED',
    error = %(reason)s,
    finished_at = clock_timestamp(),
    expires_at = clock_timestamp() + make_interval(secs => %(ttl_s)s),
    elapsed_time_ms = (extract(epoch FROM clock_timestamp() - started_at) * 1000)::bigint
WHERE query_id = %(query_id)s AND state IN ('QUEUED', 'RUNNING')

-- name: fail_instance
-- At shutdown: whatever this instance still runs will not finish.
UPDATE pgpager.stored_queries
SET state = 'FAILED', error = %(error)s, finished_at = clock_timestamp()
WHERE owner_instance = %(instance_id)s AND state IN ('QUEUED', 'RUNNING')

-- name: fail_orphaned
-- Unfinished queries of another instance whose liveness lock (lock_instance) nobody holds.
WITH orphaned AS (
    SELECT q.query_id
    FROM pgpager.stored_queries AS q
    WHERE q.state IN ('QUEUED', 'RUNNING')
      AND q.owner_instance IS DISTINCT FROM %(instance_id)s
      AND (%(query_id)s::uuid IS NULL OR q.query_id = %(query_id)s::uuid)
      AND NOT EXISTS (
          SELECT 1
          FROM pg_locks AS l
          WHERE l.locktype = 'advisory'
            AND l.granted
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.classid = hashtext('pgpager.instance')::oid
            AND l.objid = hashtext(q.owner_instance)::oid
            AND l.objsubid = 2
            -- Only a service connection counts, never a reader (which may not take advisory
            -- locks since migration 0005 anyway). Superusers are members of every role: look
            -- at pg_auth_members, not pg_has_role.
            AND l.pid IN (
                SELECT a.pid
                FROM pg_stat_activity AS a
                WHERE a.usename IS DISTINCT FROM 'pgpager_reader'
                  AND NOT EXISTS (
                      SELECT 1
                      FROM pg_auth_members AS m
                      JOIN pg_roles AS g ON g.oid = m.roleid
                      WHERE m.member = a.usesysid AND g.rolname = 'pgpager_reader'
                  )
            )
      )
    FOR UPDATE SKIP LOCKED
)
UPDATE pgpager.stored_queries AS q
SET state = 'FAILED', error = %(error)s, finished_at = clock_timestamp()
FROM orphaned
WHERE q.query_id = orphaned.query_id
RETURNING q.query_id::text

-- name: get_query
SELECT query_id::text, kind, state, error, api_key_id, owner_instance, created_at, started_at,
       finished_at, expires_at, expires_at <= now() AS expired, elapsed_time_ms, doc_count,
       size_bytes, results_total_doc_count, request -> 'sql' ->> 'query' AS sql_text
FROM pgpager.stored_queries
WHERE query_id = %(query_id)s

-- name: list_queries
-- %(active)s: only the queries still QUEUED or RUNNING (Rockset's list of active queries).
SELECT query_id::text, kind, state, error, api_key_id, owner_instance, created_at, started_at,
       finished_at, expires_at, expires_at <= now() AS expired, elapsed_time_ms, doc_count,
       size_bytes, results_total_doc_count, request -> 'sql' ->> 'query' AS sql_text
FROM pgpager.stored_queries
WHERE (%(all)s OR api_key_id IS NOT DISTINCT FROM %(api_key_id)s)
  AND expires_at > now()
  AND (NOT %(active)s OR state IN ('QUEUED', 'RUNNING'))
ORDER BY created_at DESC, query_id
LIMIT %(limit)s

-- name: read_page
-- A primary-key range read: the same cost at any depth. The rows are already JSON text. A page
-- stops before %(max_bytes)s (but holds at least its first row).
WITH page AS (
    SELECT ordinal, row::text AS row,
           sum(octet_length(row::text) + 1) OVER (ORDER BY ordinal) AS upto
    FROM pgpager.stored_query_rows
    WHERE query_id = %(query_id)s AND ordinal >= %(start)s AND ordinal < %(stop)s
)
SELECT coalesce('[' || string_agg(row, ',' ORDER BY ordinal) || ']', '[]') AS results,
       count(*) AS n
FROM page
WHERE upto <= %(max_bytes)s OR ordinal = %(start)s

-- name: copy_rows
COPY pgpager.stored_query_rows (query_id, ordinal, row) FROM STDIN

-- name: select_expired
SELECT query_id::text
FROM pgpager.stored_queries
WHERE expires_at <= now()
ORDER BY expires_at
LIMIT %(limit)s

-- name: delete_rows_batch
-- Bounded work per statement: a primary-key range of at most %(batch)s ordinals (a query's
-- ordinals are dense from 0: a run keeps all its rows or none).
DELETE FROM pgpager.stored_query_rows
WHERE query_id = %(query_id)s
  AND ordinal < (
      SELECT coalesce(min(ordinal), 0) FROM pgpager.stored_query_rows
      WHERE query_id = %(query_id)s
  ) + %(batch)s

-- name: delete_query
DELETE FROM pgpager.stored_queries WHERE query_id = %(query_id)s

-- name: declare_sql
-- The user's text is the body of a subquery: only a SELECT or VALUES fits there, and a
-- data-modifying WITH is rejected ("must be at the top level"). The newline ends a trailing
-- -- comment. Sent with the extended protocol, which refuses several statements. `t.*`, not `t`:
-- a column of the user's named t must not stand for the row.
DECLARE pgpager_stored NO SCROLL CURSOR FOR
SELECT to_jsonb(t.*)::text FROM (
{user_sql}
) AS t

-- name: declare_search
DECLARE pgpager_stored NO SCROLL CURSOR FOR
SELECT h.id,
       (jsonb_build_object('id', h.id, 'score', h.score, 'distance', h.distance)
        || CASE WHEN h.embedding IS NULL THEN '{{}}'::jsonb
                ELSE jsonb_build_object('vector', to_jsonb(h.embedding::real[])) END
        || CASE WHEN h.metadata IS NULL THEN '{{}}'::jsonb
                ELSE jsonb_build_object('metadata', h.metadata) END
        || CASE WHEN h.data IS NULL THEN '{{}}'::jsonb
                ELSE jsonb_build_object('data', h.data) END)::text,
       h.distance
FROM ({nearest}) AS h

-- name: fetch
FETCH FORWARD {n} FROM pgpager_stored

-- name: reader_session
-- Belt and braces: the login options say the same, the transaction is READ ONLY too.
-- SET, not set_config(): readers may not execute set_config (migration 0005).
SET LOCAL statement_timeout = {timeout_ms};
SET LOCAL search_path = pgpager_data

-- name: statement_timeout
SELECT set_config('statement_timeout', %(timeout_ms)s, true)

-- name: reader_transaction_timeout
SET LOCAL transaction_timeout = {timeout_ms}

-- name: reader_client_check
-- The backend of a killed server's query stops within this time instead of at its timeout.
SET client_connection_check_interval = {check_ms}

-- name: state_counts
SELECT state, count(*) FROM pgpager.stored_queries GROUP BY state

-- name: parse_sql
-- The user's text alone, parsed and analysed but never run: when the cursor's DECLARE fails
-- with a syntax error, this tells whether the text itself is wrong (and where, in its own
-- terms) or is a statement that cannot be a cursor's query.
PREPARE pgpager_parse AS
{user_sql}

-- name: deallocate_parse
DEALLOCATE pgpager_parse
