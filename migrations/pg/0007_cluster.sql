-- 0007_cluster.sql (PostgreSQL): several jobqd on one database (issue 17). The registry of
-- nodes with their heartbeat, the leader's lease, the node (incarnation) that runs each
-- running job, and an optional limit of running jobs per queue across the nodes.
--
-- Times of the registry and the lease are the database's (now()): nodes with skewed clocks
-- still agree on who is alive and who leads. Forward-only: never edit once released.

-- One row per node name. incarnation changes each time the node (re)registers: at start, and
-- after the leader declared it dead (fenced). A job's owner is an incarnation, so the jobs of
-- a node presumed dead belong to no live incarnation and its late outcomes match no row.
CREATE SEQUENCE jobq_incarnations;
CREATE TABLE jobq_nodes (
    name        text        PRIMARY KEY,
    incarnation bigint      NOT NULL UNIQUE,
    host        text        NOT NULL,
    pid         integer     NOT NULL,
    version     text        NOT NULL,
    started_at  timestamptz NOT NULL,
    beat_at     timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL, -- beat_at + the node's node_ttl
    fenced      boolean     NOT NULL DEFAULT false, -- declared dead: its jobs were rescued
    running     integer     NOT NULL DEFAULT 0      -- jobs it ran at its last heartbeat
);

-- The leader's lease: one row, held by an incarnation until expires_at (database time). The
-- holder renews it; anyone takes it once it expired. LOGGED: a failover keeps it, and the
-- lease still expires by time.
CREATE TABLE jobq_leader (
    id          integer     PRIMARY KEY CHECK (id = 1),
    node        text        NOT NULL,
    incarnation bigint      NOT NULL,
    elected_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- The incarnation running a job (state running), NULL otherwise (and for jobs a jobqd of
-- before this migration claimed: those count as orphans).
ALTER TABLE jobs ADD COLUMN owner bigint;
-- The rescue of dead nodes' jobs, and the count of running jobs of a queue across nodes
-- (global_concurrency): the running rows only.
CREATE INDEX jobs_running ON jobs (queue, owner) WHERE state = 2;

-- Cancel of a job running on another node: the request is recorded here and the owner told
-- (NOTIFY); the owner stops its runner, and the outcome it records ends the job.
ALTER TABLE jobs ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;
