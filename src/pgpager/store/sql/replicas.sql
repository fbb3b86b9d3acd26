-- Read replicas (DESIGN 10): the primary's WAL position and how far a hot standby has replayed.

-- name: primary_position
-- The end of the WAL the primary has inserted so far: every transaction committed before this
-- call (a delivery record, an upsert) ends at or before it, committed synchronously or not.
SELECT pg_current_wal_insert_lsn()::text AS lsn

-- name: standby_state
-- What the replica monitor asks a standby each tick (replayed is NULL on a primary).
SELECT pg_is_in_recovery() AS in_recovery,
       pg_last_wal_replay_lsn()::text AS replayed,
       current_setting('hot_standby_feedback')::bool AS feedback

-- name: replayed
SELECT pg_last_wal_replay_lsn()::text AS replayed
