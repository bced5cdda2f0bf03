-- 0007_schedules.sql: what a child job is handed of its parents, and schedules managed at
-- runtime.
--
-- job_parents: every `after` edge of a job, kept once the parent ends (job_deps loses its row
-- then), with the parent's result copied when it ends (or at the child's submit if it had
-- ended already), so a claim reads one range and retention may delete the parent first.
-- A row goes with its child (retention, delete).
CREATE TABLE job_parents (
    job_id    INTEGER NOT NULL,
    parent_id INTEGER NOT NULL,
    result    TEXT,                       -- the parent's result once it ended (NULL: none)
    PRIMARY KEY (job_id, parent_id)
) WITHOUT ROWID;
CREATE INDEX job_parents_parent ON job_parents (parent_id);

-- Schedules added at runtime (the `schedule_add` op), beside the config file's [schedule.NAME]
-- sections; a config schedule of the same name wins. Their ticks are kept in `schedules`
-- like the config's.
CREATE TABLE schedule_defs (
    name        TEXT    PRIMARY KEY,
    cron        TEXT    NOT NULL,
    timezone    TEXT    NOT NULL,
    queue       TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    priority    INTEGER NOT NULL DEFAULT 0,
    missed_skip INTEGER NOT NULL DEFAULT 0 CHECK (missed_skip IN (0, 1)),  -- 0 run_once, 1 skip
    overlap_skip INTEGER NOT NULL DEFAULT 0 CHECK (overlap_skip IN (0, 1)), -- 0 allow, 1 skip
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Per schedule (config or runtime): paused, and the job its last fired tick submitted (for
-- overlap = skip: a tick is skipped while that job has not ended).
CREATE TABLE schedule_state (
    name     TEXT    PRIMARY KEY,
    paused   INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    last_job INTEGER
) WITHOUT ROWID;
