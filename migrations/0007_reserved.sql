-- 0007_reserved.sql: a placeholder for the migration a concurrent branch adds with this number
-- (branch sched: runtime schedules are 0008). Delete this file when merging that branch.
SELECT 1;
