-- 0006_dedupe.sql: deduplication modes and job expiry. A key may be held until its job ends
-- (dedupe until_done, replace, debounce: held = 1): the transaction that ends the job forgets
-- it (found through job_keys_held), and retention never sweeps it by age. A job may carry a
-- deadline to start (expires_at, ms since the epoch; NULL: none), after which it is
-- cancelled as expired instead of run (jobs_expiring: the waiting ones, by deadline).
ALTER TABLE job_keys ADD COLUMN held INTEGER NOT NULL DEFAULT 0 CHECK (held IN (0, 1));
CREATE INDEX job_keys_held ON job_keys (job_id) WHERE held = 1;

ALTER TABLE jobs ADD COLUMN expires_at INTEGER;
CREATE INDEX jobs_expiring ON jobs (expires_at) WHERE expires_at IS NOT NULL AND state IN (0, 1, 3, 7);
