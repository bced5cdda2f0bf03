-- 0002_attempts_retention.sql: the history of every attempt, and the indexes that let
-- retention delete finished jobs and expired idempotency keys in small batches.

-- One row per attempt: when it ran, how it ended and the error it left.
-- kind: success, exit, signal, timeout, spawn, permanent, cancelled, shutdown, crash, lease.
CREATE TABLE attempts (
    job_id      INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    error       TEXT
);
CREATE INDEX attempts_job ON attempts (job_id, started_at);

-- Retention: the oldest finished jobs of a queue and state first.
CREATE INDEX jobs_finished ON jobs (queue, state, finished_at) WHERE state IN (4, 5, 6);

-- Retention of keys: the oldest keys of a queue first.
CREATE INDEX job_keys_age ON job_keys (queue, created_at);
