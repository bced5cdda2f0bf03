-- 0004_dedupe.sql (PostgreSQL): keys held until their job ends and job expiry, as
-- migrations/0006_dedupe.sql.
ALTER TABLE job_keys ADD COLUMN held boolean NOT NULL DEFAULT false;
CREATE INDEX job_keys_held ON job_keys (job_id) WHERE held;

ALTER TABLE jobs ADD COLUMN expires_at bigint;
-- States are bound parameters in every statement (0001_init.sql), so state leads the key
-- instead of being the index's predicate: one range per waiting state.
CREATE INDEX jobs_expiring ON jobs (state, expires_at) WHERE expires_at IS NOT NULL;
