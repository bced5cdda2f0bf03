-- 0009_finished_range.sql: the finished jobs' index says "state BETWEEN 4 AND 6" instead of
-- "state IN (4, 5, 6)". Both select the same rows, but SQLite evaluates a partial index's
-- predicate on every INSERT and every UPDATE of jobs, and an IN list of three constants or
-- more is evaluated by building a temporary b-tree each time: measured, that doubled the
-- cost of each of a job's state changes (a claim's or an outcome's UPDATE: 12-13 µs -> 6-7
-- µs). The queries that use this index now say BETWEEN too (a partial index serves a query
-- only when the query's WHERE spells its predicate).
DROP INDEX jobs_finished;
CREATE INDEX jobs_finished ON jobs (queue, state, finished_at) WHERE state BETWEEN 4 AND 6;
