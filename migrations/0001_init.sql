-- 0001_init.sql: the job table, its indexes, idempotency keys and per-queue settings.
-- Forward-only: once released, never edit this file; add 0002_....sql instead.
-- Times are integer milliseconds since the Unix epoch. state is a jobq_state:
-- 0 scheduled, 1 ready, 2 running, 3 retrying, 4 succeeded, 5 dead, 6 cancelled.

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, even after deletion
    queue        TEXT    NOT NULL,
    payload      TEXT    NOT NULL,                  -- compact JSON text
    priority     INTEGER NOT NULL DEFAULT 0,
    state        INTEGER NOT NULL CHECK (state BETWEEN 0 AND 6),
    run_at       INTEGER NOT NULL,
    attempt      INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
    timeout_ms   INTEGER NOT NULL CHECK (timeout_ms > 0),
    key          TEXT,
    result       TEXT,
    error        TEXT,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER
);

-- Claiming the next job of a queue is one seek: the ORDER BY of the claim
-- (priority DESC, run_at, id) is the order of this index.
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, run_at, id) WHERE state = 1;

-- The scheduler's next deadline: the earliest scheduled or retrying job.
CREATE INDEX jobs_due ON jobs (run_at) WHERE state IN (0, 3);

-- Listing by state (and queue) in id order, and counting at start.
CREATE INDEX jobs_state ON jobs (state, queue, id);

-- Idempotency keys live apart from jobs so they outlive a deleted job.
CREATE TABLE job_keys (
    queue        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    job_id       INTEGER NOT NULL,
    payload_hash INTEGER NOT NULL, -- FNV-1a of the payload with sorted keys
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
) WITHOUT ROWID;

-- Per-queue state that must survive a restart.
CREATE TABLE queues (
    name   TEXT    PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1))
) WITHOUT ROWID;
