-- 0003_workflows.sql: groups of jobs with a completion job, dependencies between jobs (a new
-- state, 7 waiting) and the last tick of each periodic schedule.
--
-- SQLite cannot change a CHECK constraint in place, so the jobs table is rebuilt with the new
-- state allowed and two new columns. AUTOINCREMENT's high-water mark is carried over: ids are
-- never reused, even those of jobs retention already deleted.

CREATE TEMP TABLE jobs_seq_keep AS SELECT seq FROM sqlite_sequence WHERE name = 'jobs';

CREATE TABLE jobs_new (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    queue        TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    priority     INTEGER NOT NULL DEFAULT 0,
    state        INTEGER NOT NULL CHECK (state BETWEEN 0 AND 7),
    run_at       INTEGER NOT NULL,
    attempt      INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
    timeout_ms   INTEGER NOT NULL CHECK (timeout_ms > 0),
    key          TEXT,
    result       TEXT,
    error        TEXT,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    group_id     INTEGER,                            -- groups.id, NULL if in no group
    after_always INTEGER NOT NULL DEFAULT 0          -- 1: run even if a parent did not succeed
);

INSERT INTO jobs_new (id, queue, payload, priority, state, run_at, attempt, max_attempts,
                      timeout_ms, key, result, error, created_at, started_at, finished_at)
    SELECT id, queue, payload, priority, state, run_at, attempt, max_attempts, timeout_ms, key,
           result, error, created_at, started_at, finished_at FROM jobs;

DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;

UPDATE sqlite_sequence SET seq = max(seq, (SELECT seq FROM jobs_seq_keep))
    WHERE name = 'jobs' AND EXISTS (SELECT 1 FROM jobs_seq_keep);
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'jobs', seq FROM jobs_seq_keep
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'jobs');
DROP TABLE jobs_seq_keep;

-- The indexes of 0001 and 0002, which went with the old table.
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, run_at, id) WHERE state = 1;
CREATE INDEX jobs_due ON jobs (run_at) WHERE state IN (0, 3);
CREATE INDEX jobs_state ON jobs (state, queue, id);
CREATE INDEX jobs_finished ON jobs (queue, state, finished_at) WHERE state IN (4, 5, 6);

-- The members of a group, and whether any is unfinished: one range of this index.
CREATE INDEX jobs_group ON jobs (group_id, state) WHERE group_id IS NOT NULL;

-- A group: its size, and the job to submit (once) when every member has ended.
CREATE TABLE groups (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    size          INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    completed_at  INTEGER,           -- set, once, when the last member ended
    oc_queue      TEXT,              -- on_complete: NULL if none
    oc_payload    TEXT,
    oc_priority   INTEGER,
    oc_max_attempts INTEGER,
    oc_timeout_ms INTEGER,
    oc_job_id     INTEGER            -- the job on_complete submitted
);
-- Retention: a completed group goes once retention has deleted its last member.
CREATE INDEX groups_completed ON groups (completed_at) WHERE completed_at IS NOT NULL;

-- One row per (dependent job, parent it still waits for). A row goes when its parent ends.
CREATE TABLE job_deps (
    parent_id INTEGER NOT NULL,
    job_id    INTEGER NOT NULL,
    PRIMARY KEY (parent_id, job_id)
) WITHOUT ROWID;
CREATE INDEX job_deps_job ON job_deps (job_id);

-- The last tick each [schedule.NAME] fired (or skipped), in ms since the epoch.
CREATE TABLE schedules (
    name      TEXT    PRIMARY KEY,
    last_tick INTEGER NOT NULL
) WITHOUT ROWID;
