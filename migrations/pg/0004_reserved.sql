-- 0004_reserved.sql (PostgreSQL): a placeholder for the migration a concurrent branch adds with
-- this number (branch sched: runtime schedules are 0006). Delete this file when merging that branch.
SELECT 1;
