-- 0005_schedules.sql (PostgreSQL): parents' results kept for their children, and schedules
-- managed at runtime, as migrations/0007_schedules.sql.
CREATE TABLE job_parents (
    job_id    bigint NOT NULL,
    parent_id bigint NOT NULL,
    result    text,
    PRIMARY KEY (job_id, parent_id)
);
CREATE INDEX job_parents_parent ON job_parents (parent_id);

CREATE TABLE schedule_defs (
    name         text    PRIMARY KEY,
    cron         text    NOT NULL,
    timezone     text    NOT NULL,
    queue        text    NOT NULL,
    payload      text    NOT NULL,
    priority     integer NOT NULL DEFAULT 0,
    missed_skip  boolean NOT NULL DEFAULT false,
    overlap_skip boolean NOT NULL DEFAULT false,
    created_at   bigint  NOT NULL,
    updated_at   bigint  NOT NULL
);

CREATE TABLE schedule_state (
    name     text    PRIMARY KEY,
    paused   boolean NOT NULL DEFAULT false,
    last_job bigint
);
