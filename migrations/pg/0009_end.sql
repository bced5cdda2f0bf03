-- 0009_end.sql (PostgreSQL): the end of a running attempt in one round trip.
-- Forward-only: never edit once released.

-- jobq_end: records how attempt p_attempt of running job p_id ended, fenced by its owner (the
-- node incarnation that claimed it) and its attempt: the job's new state, run_at (NULL:
-- unchanged), finished_at, result and error; the attempt's row in its history (p_attempt
-- NULL: none); when the job ended (p_end), its held keys are forgotten. No row when the fence
-- fails (cancelled, rescued, or retried meanwhile): nothing changed. Else the job's queue, its
-- group (NULL: none) and, when it ended, whether jobs wait for it (kids).
--
-- A function, not one statement with CTEs: each statement of a plpgsql function takes its own
-- snapshot, so the look at job_deps comes after the UPDATE holds the job's row and sees a
-- child another transaction added before it released that row (a CTE would read job_deps as
-- of the statement's start and miss it).
CREATE FUNCTION jobq_end(p_id bigint, p_state smallint, p_finished bigint, p_run_at bigint,
                         p_result text, p_error text, p_running smallint, p_owner bigint,
                         p_attempt integer, p_started bigint, p_now bigint, p_kind text,
                         p_end boolean)
RETURNS TABLE (o_queue text, o_group bigint, o_kids boolean)
LANGUAGE plpgsql AS $$
DECLARE
    q text;
    g bigint;
BEGIN
    UPDATE jobs j SET state = p_state, run_at = coalesce(p_run_at, j.run_at),
                      finished_at = p_finished, result = p_result, error = p_error,
                      owner = NULL, cancel_requested = false
     WHERE j.id = p_id AND j.state = p_running AND j.owner = p_owner
       AND (p_attempt IS NULL OR j.attempt = p_attempt)
    RETURNING j.queue, j.group_id INTO q, g;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_attempt IS NOT NULL THEN
        INSERT INTO attempts (job_id, attempt, started_at, finished_at, kind, error)
        VALUES (p_id, p_attempt, p_started, p_now, p_kind, p_error);
    END IF;
    IF p_end THEN
        DELETE FROM job_keys k WHERE k.job_id = p_id AND k.held;
        RETURN QUERY SELECT q, g, EXISTS (SELECT 1 FROM job_deps d WHERE d.parent_id = p_id);
    ELSE
        RETURN QUERY SELECT q, g, false;
    END IF;
END
$$;
