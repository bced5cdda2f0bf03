-- 0008_shared_limits.sql (PostgreSQL): a queue's `rate` and circuit breaker held across the
-- nodes of one database (issue 17). SQLite has one node and needs neither table.
-- Forward-only: never edit once released.

-- The queue's rate as a GCRA: tat, the theoretical arrival time of the next start in µs of
-- the database's clock. A claim of a rated queue locks the row (FOR UPDATE SKIP LOCKED: a
-- claim of another node in progress makes it try again shortly, never wait or deadlock),
-- takes what the spacing allows and moves tat on, in the claim's transaction: the starts of
-- all nodes together keep the spacing, whatever their clocks.
CREATE TABLE jobq_queue_rates (
    queue text   PRIMARY KEY,
    tat   bigint NOT NULL DEFAULT 0
);

-- jobq_rate_take: up to p_max starts of p_queue now, p_interval µs apart with p_tol µs of
-- tolerance (the burst). granted: how many (-1: another node's claim holds the row); wait:
-- ms until one more start may come after these (0: one may now). The row stays locked until
-- the caller's commit; jobq_rate_return gives back what the claim did not use.
CREATE FUNCTION jobq_rate_take(p_queue text, p_max bigint, p_interval bigint, p_tol bigint,
                               OUT granted bigint, OUT wait bigint)
LANGUAGE plpgsql AS $$
DECLARE
    t bigint;
    now_us bigint;
BEGIN
    SELECT tat INTO t FROM jobq_queue_rates WHERE queue = p_queue FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        INSERT INTO jobq_queue_rates (queue) VALUES (p_queue) ON CONFLICT (queue) DO NOTHING;
        IF NOT FOUND THEN
            granted := -1;
            wait := 0;
            RETURN;
        END IF;
        t := 0;
    END IF;
    -- After the lock: the time the claim really runs at.
    now_us := (extract(epoch from clock_timestamp()) * 1000000)::bigint;
    t := greatest(t, now_us);
    granted := CASE WHEN t > now_us + p_tol THEN 0
                    ELSE least(p_max, (now_us + p_tol - t) / p_interval + 1) END;
    t := t + granted * p_interval;
    UPDATE jobq_queue_rates SET tat = t WHERE queue = p_queue;
    wait := greatest(0, (t - p_tol - now_us + 999) / 1000);
END $$;

-- The breakers a node opened: until open_until (ms of the database's clock) no node starts a
-- job of the queue; then the opener (node) probes for all and deletes the row when its probe
-- succeeds, or moves open_until on when it fails. reason: the opener's account, for explain.
-- Every change is notified ({"n": node, "b": queue}); nodes read the rows at start, on that
-- notification and at each resync.
CREATE TABLE jobq_breakers (
    queue      text   PRIMARY KEY,
    open_until bigint NOT NULL,
    node       text   NOT NULL,
    reason     text   NOT NULL
);
