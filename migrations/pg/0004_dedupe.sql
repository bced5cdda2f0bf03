-- 0004_dedupe.sql (PostgreSQL): keys held until their job ends and job expiry, as
-- migrations/0006_dedupe.sql.
ALTER TABLE job_keys ADD COLUMN held boolean NOT NULL DEFAULT false;
CREATE INDEX job_keys_held ON job_keys (job_id) WHERE held;

ALTER TABLE jobs ADD COLUMN expires_at bigint;
CREATE INDEX jobs_expiring ON jobs (expires_at) WHERE expires_at IS NOT NULL AND state IN (0, 1, 3, 7);
