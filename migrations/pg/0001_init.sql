-- 0001_init.sql (PostgreSQL): the schema of migrations/0001..0003 in one step, shaped for
-- several jobqd sharing one database. Forward-only: once released, never edit this file; add
-- 0002_....sql instead. jobqd applies each file in one transaction under an advisory lock and
-- records it in jobq_migrations (see daemon/store_pg.c), so nodes starting together migrate
-- once.
--
-- Times are bigint milliseconds since the Unix epoch, as in the SQLite schema. state is a
-- jobq_state: 0 scheduled, 1 ready, 2 running, 3 retrying, 4 succeeded, 5 dead, 6 cancelled,
-- 7 waiting. Statements bind states as parameters (never literals), so every index that a
-- statement filters by state has state as a key column, not a partial-index predicate: a
-- prepared statement's generic plan cannot prove "state = $2" implies "state = 1". River and
-- Oban index their job tables the same way.

CREATE TABLE jobs (
    id           bigint   GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- never reused
    queue        text     NOT NULL,
    payload      text     NOT NULL,            -- compact JSON text
    priority     integer  NOT NULL DEFAULT 0,
    state        smallint NOT NULL CHECK (state BETWEEN 0 AND 7),
    run_at       bigint   NOT NULL,
    attempt      integer  NOT NULL DEFAULT 0,
    max_attempts integer  NOT NULL CHECK (max_attempts >= 1),
    timeout_ms   bigint   NOT NULL CHECK (timeout_ms > 0),
    key          text,
    result       text,
    error        text,
    created_at   bigint   NOT NULL,
    started_at   bigint,
    finished_at  bigint,
    group_id     bigint,                       -- groups.id, NULL if in no group
    after_always boolean  NOT NULL DEFAULT false -- run even if a parent did not succeed
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_insert_scale_factor = 0.01,
        autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);
-- Every state change rewrites index entries (state is a key), so the table churns dead
-- tuples: vacuum it early and without throttling (scaleout.md §1.2).

-- The claim: (queue, ready) then the claim order (priority DESC, run_at, id), one range scan
-- under FOR UPDATE SKIP LOCKED. Also how many ready jobs are ahead of one.
CREATE INDEX jobs_claim ON jobs (queue, state, priority DESC, run_at, id);

-- Promotion and the scheduler's next deadline: per state (scheduled, retrying), by run_at.
CREATE INDEX jobs_due ON jobs (state, run_at);

-- Listing by state (and queue) in id order, counting, the running jobs at start.
CREATE INDEX jobs_state ON jobs (state, queue, id);

-- Retention: the oldest finished jobs of a queue and state first; the most recent ones.
CREATE INDEX jobs_finished ON jobs (queue, state, finished_at);

-- The members of a group, and whether any is unfinished: one range of this index.
CREATE INDEX jobs_group ON jobs (group_id, state) WHERE group_id IS NOT NULL;

-- One row per attempt: when it ran, how it ended and the error it left.
-- kind: success, exit, signal, timeout, spawn, permanent, cancelled, shutdown, crash, lease.
CREATE TABLE attempts (
    id          bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- the order rows were added
    job_id      bigint  NOT NULL,
    attempt     integer NOT NULL,
    started_at  bigint  NOT NULL,
    finished_at bigint  NOT NULL,
    kind        text    NOT NULL,
    error       text
);
CREATE INDEX attempts_job ON attempts (job_id, started_at, id);

-- Idempotency keys live apart from jobs so they outlive a deleted job.
CREATE TABLE job_keys (
    queue        text   NOT NULL,
    key          text   NOT NULL,
    job_id       bigint NOT NULL,
    payload_hash bigint NOT NULL, -- FNV-1a of the payload with sorted keys, as a signed 64 bits
    created_at   bigint NOT NULL,
    PRIMARY KEY (queue, key)
);
-- Retention of keys: the oldest keys of a queue first.
CREATE INDEX job_keys_age ON job_keys (queue, created_at);

-- Per-queue state that must survive a restart.
CREATE TABLE queues (
    name   text    PRIMARY KEY,
    paused boolean NOT NULL DEFAULT false
);

-- A group: its size, and the job to submit (once) when every member has ended.
CREATE TABLE groups (
    id              bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    size            bigint  NOT NULL,
    created_at      bigint  NOT NULL,
    completed_at    bigint,           -- set, once, when the last member ended
    oc_queue        text,             -- on_complete: NULL if none
    oc_payload      text,
    oc_priority     integer,
    oc_max_attempts integer,
    oc_timeout_ms   bigint,
    oc_job_id       bigint            -- the job on_complete submitted
);
-- Retention: a completed group goes once retention has deleted its last member.
CREATE INDEX groups_completed ON groups (completed_at) WHERE completed_at IS NOT NULL;

-- One row per (dependent job, parent it still waits for). A row goes when its parent ends.
CREATE TABLE job_deps (
    parent_id bigint NOT NULL,
    job_id    bigint NOT NULL,
    PRIMARY KEY (parent_id, job_id)
);
CREATE INDEX job_deps_job ON job_deps (job_id);

-- The last tick each [schedule.NAME] fired (or skipped), in ms since the epoch; and, under
-- "since:NAME", when jobqd first saw the schedule.
CREATE TABLE schedules (
    name      text   PRIMARY KEY,
    last_tick bigint NOT NULL
);
