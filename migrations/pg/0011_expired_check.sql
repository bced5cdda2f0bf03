-- 0011_expired_check.sql (PostgreSQL): jobq_expired (0010) looks first whether any job's
-- deadline to start has passed, and plans the scan for the jobs only when one has. Its
-- generic plan, forced in 0010, estimated a third of the table for "expires_at <= p_now"
-- and, on a large table, chose a parallel scan: tens of milliseconds at every claim. The
-- first look is the earliest deadline of each state not started, one index probe each
-- (min() over jobs_expiring), which PostgreSQL plans the same way whatever it estimates; the
-- scan itself, when due, is planned at each call with the values it runs with.
CREATE OR REPLACE FUNCTION jobq_expired(p_queue text, p_now bigint, p_max integer,
                                        p_states smallint[])
RETURNS TABLE (o_id bigint)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_first bigint;
BEGIN
    SELECT min(x.m) INTO v_first FROM unnest(p_states) AS s(st),
        LATERAL (SELECT min(j.expires_at) AS m FROM jobs j
                  WHERE j.expires_at IS NOT NULL AND j.state = s.st) x;
    IF v_first IS NULL OR v_first > p_now THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE
        'SELECT j.id FROM jobs j WHERE j.expires_at IS NOT NULL AND j.state = ANY ($4) '
        'AND j.expires_at <= $2 AND ($1::text IS NULL OR j.queue = $1) '
        'ORDER BY j.expires_at LIMIT $3'
        USING p_queue, p_now, p_max, p_states;
END
$$;
