-- 0005_progress.sql: what a running job reports besides its outcome. On the job: its last
-- progress (0 to 100, NULL: never reported) with a short note, and its last checkpoint (JSON
-- text, NULL: none), which the next attempt is handed. In job_logs: its log lines, numbered
-- per job from 1 (seq), capped per job by jobqd and deleted with the job by retention.
ALTER TABLE jobs ADD COLUMN progress REAL;
ALTER TABLE jobs ADD COLUMN progress_note TEXT;
ALTER TABLE jobs ADD COLUMN checkpoint TEXT;

CREATE TABLE job_logs (
    job_id  INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    line    TEXT    NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
