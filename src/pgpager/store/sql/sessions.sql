-- name: admit_handle
-- After insert_session, in its transaction, once the first page is read: the cap's check and
-- the page's record (migration 0011). fresh is NULL over the cap, and the row is gone again;
-- else it holds the ids that were new for the handle. The active handles are counted only when
-- the caller's last count (%(admissions)s, %(active)s; NULL: none) no longer bounds them under
-- the cap; counted_at and counted are the count the answer rests on. The COMMIT goes in the
-- same round trip.
SELECT fresh, counted_at, counted
FROM pgpager.admit_handle_bounded(%(id)s, %(ids)s::text[], %(cap)s, %(admissions)s::bigint,
                                  %(active)s::bigint)

-- name: insert_session
-- Counted against the cap afterwards, in the same transaction (admit_handle). The owner
-- (instance, cursor host backend, cursor name) is the cursor being declared.
INSERT INTO pgpager.query_sessions
    (id, collection, namespace, query, phase, max_idle_s, max_lifetime_s, owner_instance,
     owner_pid, cursor_name, api_key_id)
VALUES (%(id)s, %(collection)s, %(namespace)s, %(query)s, %(phase)s, %(max_idle_s)s,
        %(max_lifetime_s)s, %(owner_instance)s, %(owner_pid)s, %(cursor_name)s, %(api_key_id)s)
RETURNING {columns}

-- name: session_columns
-- What get_session and list_sessions return. An active handle's position is the count of ids
-- it delivered (kept insert-only, see record_deliveries); the column holds the final position
-- once the handle is closed.
id, collection, namespace, query,
CASE WHEN state = 'active'
     THEN (SELECT count(*) FROM pgpager.query_session_rows r WHERE r.session_id = id)
     ELSE position
END AS position,
phase, state, state_reason, created_at, last_used_at, max_idle_s, max_lifetime_s,
owner_instance, owner_pid, cursor_name, api_key_id, closed_at, now() AS now,
CASE WHEN state = 'active'
     THEN pgpager.handle_overdue(created_at, last_used_at, max_idle_s, max_lifetime_s)
END AS overdue_reason

-- name: get_session
SELECT {columns}
FROM pgpager.query_sessions
WHERE id = %(id)s

-- name: list_sessions
SELECT {columns}
FROM pgpager.query_sessions
WHERE (%(collection)s::text IS NULL OR collection = %(collection)s)
  AND (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(owner)s::text IS NULL OR owner_instance = %(owner)s)
  AND (%(idle_over_s)s::float8 IS NULL
       OR last_used_at < now() - make_interval(secs => %(idle_over_s)s))
ORDER BY created_at DESC
LIMIT %(limit)s

-- name: record_deliveries
-- The hot path of `next`: the ids that pages of %(handles)s deliver (%(owners)s[i] delivers
-- %(ids)s[i]), in one statement and one commit (services/deliveries.py gathers the pages of
-- handles served at the same moment). One row per handle still active and not overdue, with the
-- ids that were new for it. A function (migration 0009) so that its plan is made once per
-- connection, not on every call.
SELECT handle, fresh
FROM pgpager.record_deliveries(%(handles)s::text[], %(owners)s::text[], %(ids)s::text[],
                               %(sync_commit)s)

-- name: set_owner
-- A new cursor for the handle (first declare, rehydration, or the switch to the exact phase).
UPDATE pgpager.query_sessions
SET phase = %(phase)s, owner_instance = %(owner_instance)s, owner_pid = %(owner_pid)s,
    cursor_name = %(cursor_name)s, last_used_at = now()
WHERE id = %(id)s AND state = 'active'

-- name: count_delivered
SELECT count(*) FROM pgpager.query_session_rows WHERE session_id = %(id)s

-- name: close_session
-- Ends a handle in one of %(from_states)s (stopped, expired or exhausted); returns the owner
-- so its cursor gets closed. An active handle's final position is the count of ids it
-- delivered; a handle closed before (an exhausted one being stopped) keeps the position it
-- was closed at: its delivered ids were forgotten then.
UPDATE pgpager.query_sessions
SET state = %(state)s, state_reason = %(reason)s, closed_at = now(),
    position = CASE WHEN state = 'active'
                    THEN (SELECT count(*) FROM pgpager.query_session_rows r
                          WHERE r.session_id = id)
                    ELSE position
               END
WHERE id = %(id)s AND state = ANY(%(from_states)s::text[])
RETURNING id, owner_instance, cursor_name

-- name: notify_closed
SELECT pg_notify('pgpager_handles', %(payload)s)

-- name: forget_delivered
DELETE FROM pgpager.query_session_rows WHERE session_id = %(id)s

-- name: expire_idle
-- One sweeper step: handles idle past max_idle or older than their lifetime, a bounded batch.
WITH due AS (
    SELECT id, reason
    FROM pgpager.query_sessions,
         pgpager.handle_overdue(created_at, last_used_at, max_idle_s, max_lifetime_s) AS reason
    WHERE state = 'active' AND reason IS NOT NULL
    ORDER BY last_used_at
    LIMIT %(limit)s
    FOR UPDATE OF query_sessions SKIP LOCKED
)
UPDATE pgpager.query_sessions s
SET state = 'expired', state_reason = due.reason, closed_at = now(),
    position = (SELECT count(*) FROM pgpager.query_session_rows r WHERE r.session_id = s.id)
FROM due
WHERE s.id = due.id
RETURNING s.id, s.owner_instance, s.cursor_name, s.state_reason

-- name: preview_expire_idle
SELECT id, owner_instance, cursor_name, reason AS state_reason
FROM pgpager.query_sessions,
     pgpager.handle_overdue(created_at, last_used_at, max_idle_s, max_lifetime_s) AS reason
WHERE state = 'active' AND reason IS NOT NULL
ORDER BY last_used_at
LIMIT %(limit)s

-- name: reclaim_orphans
-- Active handles whose cursor's backend is gone: the cursor died with it. Clearing the owner
-- lets any instance rehydrate the handle on its next request.
UPDATE pgpager.query_sessions
SET owner_instance = NULL, owner_pid = NULL, cursor_name = NULL
WHERE id IN (
    SELECT id FROM pgpager.query_sessions q
    WHERE state = 'active' AND owner_pid IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = q.owner_pid)
    LIMIT %(limit)s
)
RETURNING id

-- name: purge_closed_rows
-- Delivered-id lists of closed handles are no longer needed.
DELETE FROM pgpager.query_session_rows
WHERE session_id IN (
    SELECT q.id FROM pgpager.query_sessions q
    WHERE q.state <> 'active'
      AND EXISTS (SELECT 1 FROM pgpager.query_session_rows r WHERE r.session_id = q.id)
    LIMIT %(limit)s
)

-- name: purge_old_sessions
-- Closed handles are kept a while so that late calls get 410 with the reason, then deleted.
DELETE FROM pgpager.query_sessions
WHERE id IN (
    SELECT id FROM pgpager.query_sessions
    WHERE state <> 'active' AND closed_at < now() - make_interval(secs => %(retention_s)s)
    LIMIT %(limit)s
)

-- name: closed_among
-- Of this instance's cached cursors, those whose handle is closed, gone, or owned elsewhere now.
SELECT i FROM unnest(%(ids)s::text[]) AS i
WHERE NOT EXISTS (
    SELECT 1 FROM pgpager.query_sessions s
    WHERE s.id = i AND s.state = 'active' AND s.owner_instance IS NOT DISTINCT FROM %(me)s
)

-- name: listen
LISTEN pgpager_handles
