-- 0010_expired.sql (PostgreSQL): the jobs past their deadline to start (as the statement
-- P_EXPIRED gave them), in a function planned once per session. Every claim looks for them
-- first (another node may have admitted a job with a deadline), and as a prepared statement
-- PostgreSQL planned it again at every call: its generic plan, estimated without knowing that
-- jobs_expiring is nearly always empty, looked dearer than a custom one, so each claim paid
-- 0.1-0.2 ms of planning for a scan that finds nothing in a few microseconds. The plan forced
-- here is the index's: one range of jobs_expiring per state, then sorted.
CREATE FUNCTION jobq_expired(p_queue text, p_now bigint, p_max integer, p_states smallint[])
RETURNS TABLE (o_id bigint)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN QUERY
    SELECT j.id FROM jobs j WHERE j.expires_at IS NOT NULL AND j.state = ANY (p_states)
       AND j.expires_at <= p_now AND (p_queue IS NULL OR j.queue = p_queue)
     ORDER BY j.expires_at LIMIT p_max;
END
$$;
