-- 0003_progress.sql (PostgreSQL): a job's progress, note and checkpoint, and its log lines,
-- as migrations/0005_progress.sql.
ALTER TABLE jobs ADD COLUMN progress double precision;
ALTER TABLE jobs ADD COLUMN progress_note text;
ALTER TABLE jobs ADD COLUMN checkpoint text;

CREATE TABLE job_logs (
    job_id  bigint  NOT NULL,
    seq     bigint  NOT NULL,
    attempt integer NOT NULL,
    at      bigint  NOT NULL,
    line    text    NOT NULL,
    PRIMARY KEY (job_id, seq)
);
