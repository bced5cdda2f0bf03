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

-- jobq_end_many: jobq_end for each element of the arrays (the same parameters, one array
-- each, p_running, p_owner and p_now shared), set-based: one UPDATE for all, one INSERT of
-- their history rows, one DELETE of their held keys, then, in a statement of its own (a
-- snapshot taken after the UPDATE holds the rows, as in jobq_end), whether jobs wait for the
-- ones that ended. A row for each end recorded: o_ord, its place in the arrays (from 1); an
-- end whose fence fails has none and changes nothing. Planned once per session
-- (force_generic_plan): planning the UPDATE with each call's arrays cost more than running it
-- (about 0.4 ms a call), and its plan does not depend on them.
CREATE FUNCTION jobq_end_many(p_ids bigint[], p_states smallint[], p_finished bigint[],
                              p_run_at bigint[], p_results text[], p_errors text[],
                              p_attempts integer[], p_started bigint[], p_kinds text[],
                              p_ends boolean[], p_running smallint, p_owner bigint,
                              p_now bigint)
RETURNS TABLE (o_ord bigint, o_group bigint, o_kids boolean)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    ords bigint[];
    ids bigint[];
    gids bigint[];
    ends boolean[];
BEGIN
    WITH u AS (
        SELECT * FROM unnest(p_ids, p_states, p_finished, p_run_at, p_results, p_errors,
                             p_attempts, p_started, p_kinds, p_ends)
                      WITH ORDINALITY AS x(id, st, fin, ra, res, err, att, sa, kind, en, ord)),
    f AS (
        UPDATE jobs j SET state = u.st, run_at = coalesce(u.ra, j.run_at), finished_at = u.fin,
                          result = u.res, error = u.err, owner = NULL, cancel_requested = false
          FROM u
         WHERE j.id = u.id AND j.state = p_running AND j.owner = p_owner AND j.attempt = u.att
        RETURNING u.ord, u.id, u.att, u.sa, u.kind, u.err, u.en, j.group_id),
    a AS (
        INSERT INTO attempts (job_id, attempt, started_at, finished_at, kind, error)
        SELECT f.id, f.att, f.sa, p_now, f.kind, f.err FROM f ORDER BY f.ord),
    k AS (
        DELETE FROM job_keys jk USING f WHERE jk.job_id = f.id AND f.en AND jk.held)
    SELECT array_agg(f.ord ORDER BY f.ord), array_agg(f.id ORDER BY f.ord),
           array_agg(f.group_id ORDER BY f.ord), array_agg(f.en ORDER BY f.ord)
      INTO ords, ids, gids, ends
      FROM f;
    RETURN QUERY
        SELECT y.ord, y.gid,
               y.en AND EXISTS (SELECT 1 FROM job_deps d WHERE d.parent_id = y.id)
          FROM unnest(ords, ids, gids, ends) AS y(ord, id, gid, en);
END
$$;


-- jobq_claim_rows: jobq_claim_keys (same parameters), returning the claimed jobs themselves,
-- as they are once claimed, in claim order: the columns jobqd reads (o_ prefixed), then
-- blocked and wake (as jobq_claim_keys gives them) on every row. When nothing was claimed, one
-- row of NULL job columns carries blocked and wake. The rows are read by a statement of the
-- function after the claim: they are the claim's own, whoever committed them before.
CREATE FUNCTION jobq_claim_rows(p_queue text, p_now bigint, p_max integer, p_cap integer,
                                p_interval bigint, p_tol bigint, p_owner bigint)
RETURNS TABLE (o_id bigint, o_queue text, o_payload text, o_priority integer,
               o_state smallint, o_run_at bigint, o_attempt integer, o_max_attempts integer,
               o_timeout_ms bigint, o_key text, o_result text, o_error text,
               o_created_at bigint, o_started_at bigint, o_finished_at bigint,
               o_group_id bigint, o_traceparent text, o_tracestate text,
               o_progress double precision, o_progress_note text, o_checkpoint text,
               o_group_key text, o_blocked boolean, o_wake bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[];
    v_blocked boolean;
    v_wake bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM group_keys g WHERE g.queue = p_queue) AND
       NOT EXISTS (SELECT 1 FROM group_key_wakes w WHERE w.queue = p_queue) THEN
        -- A queue that never had keyed jobs: the plain claim, its rows returned at once.
        RETURN QUERY
        WITH picked AS MATERIALIZED (SELECT j.id FROM jobs j WHERE j.queue = p_queue
                 AND j.state = 1 AND j.group_key IS NULL
                 ORDER BY j.priority DESC, j.run_at, j.id LIMIT p_max FOR UPDATE SKIP LOCKED),
             c AS (UPDATE jobs j SET state = 2, attempt = j.attempt + 1, started_at = p_now,
                       finished_at = NULL, owner = p_owner, cancel_requested = false
                   FROM picked WHERE j.id = picked.id AND j.state = 1 RETURNING j.*)
        SELECT c.id, c.queue, c.payload, c.priority, c.state, c.run_at, c.attempt,
               c.max_attempts, c.timeout_ms, c.key, c.result, c.error, c.created_at,
               c.started_at, c.finished_at, c.group_id, c.traceparent, c.tracestate,
               c.progress, c.progress_note, c.checkpoint, c.group_key, false, NULL::bigint
          FROM c ORDER BY c.priority DESC, c.run_at, c.id;
        RETURN;
    END IF;
    SELECT k.ids, k.blocked, k.wake INTO v_ids, v_blocked, v_wake
      FROM jobq_claim_keys(p_queue, p_now, p_max, p_cap, p_interval, p_tol, p_owner) k;
    RETURN QUERY
    SELECT j.id, j.queue, j.payload, j.priority, j.state, j.run_at, j.attempt, j.max_attempts,
           j.timeout_ms, j.key, j.result, j.error, j.created_at, j.started_at, j.finished_at,
           j.group_id, j.traceparent, j.tracestate, j.progress, j.progress_note, j.checkpoint,
           j.group_key, v_blocked, v_wake
      FROM unnest(v_ids) WITH ORDINALITY AS u(uid, o) JOIN jobs j ON j.id = u.uid
     ORDER BY u.o;
    IF NOT FOUND THEN
        RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::text, NULL::integer, NULL::smallint,
            NULL::bigint, NULL::integer, NULL::integer, NULL::bigint, NULL::text, NULL::text,
            NULL::text, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text,
            NULL::text, NULL::double precision, NULL::text, NULL::text, NULL::text, v_blocked,
            v_wake;
    END IF;
END
$$;
