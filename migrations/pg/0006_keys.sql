-- 0006_keys.sql (PostgreSQL): per-key fairness and limits, as migrations/0008_keys.sql, shaped
-- for several jobqd on one database. A key's row in group_keys is locked (FOR UPDATE SKIP
-- LOCKED) by the claim that serves it, so a key's cap holds across nodes: the claim that
-- counts its running jobs holds the row, and the count sees every claim committed before.
--
-- Nothing but a claim locks a row of group_keys: a job that becomes ready, or a keyed job's
-- end, appends a row to group_key_wakes (an insert never waits), and the next claim of the
-- queue folds the wakes into group_keys, in key order. So submits and outcomes on different
-- nodes never wait for each other on a key, and cannot deadlock, and a wake made while a claim
-- takes the key out of the rotation (it saw no ready job: the new one was not committed yet)
-- is not lost: it is folded in by the next claim.

ALTER TABLE jobs ADD COLUMN group_key text;

-- jobs_claim holds only jobs without key now (the claim of those is as before); keyed jobs
-- have indexes of their own. "group_key IS NULL" is written literally in the statements, so a
-- generic plan can use the partial indexes.
DROP INDEX jobs_claim;
CREATE INDEX jobs_claim ON jobs (queue, state, priority DESC, run_at, id) WHERE group_key IS NULL;
-- One key's ready jobs in claim order, its running jobs (counted against the cap).
CREATE INDEX jobs_key ON jobs (queue, group_key, state, priority DESC, run_at, id)
    WHERE group_key IS NOT NULL;
-- Keyed jobs of a queue in claim order: the oldest ready one's age, how many are ahead.
CREATE INDEX jobs_key_ready ON jobs (queue, state, priority DESC, run_at, id)
    WHERE group_key IS NOT NULL;

-- One row per (queue, key) with ready or running jobs (see migrations/0008_keys.sql):
-- active 1 in the rotation, 0 out of it, 2 held by key_rate until tat; prio at least the
-- priority of its best ready job while active; turn when last served (a sequence: no row is
-- locked to number a turn); tat key_rate's theoretical arrival time in ms. group_key '' keeps
-- the turn of a queue's jobs without key when keyed and unkeyed jobs share it.
CREATE SEQUENCE group_keys_turn;
CREATE TABLE group_keys (
    queue     text     NOT NULL,
    group_key text     NOT NULL,
    prio      integer  NOT NULL DEFAULT 0,
    turn      bigint   NOT NULL,
    active    smallint NOT NULL DEFAULT 1 CHECK (active IN (0, 1, 2)),
    tat       bigint   NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, group_key)
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);
CREATE INDEX group_keys_turn_idx ON group_keys (queue, prio DESC, turn) WHERE active = 1;
CREATE INDEX group_keys_wake ON group_keys (queue, tat) WHERE active = 2;

-- Keys that may have ready jobs, to be folded into group_keys by the next claim of the queue.
-- prio: the ready job's priority (-2147483648 for a running job's end: "look again"); until:
-- a slow-down asked for the key (store_key_hold): no job of it starts before (0: none).
CREATE TABLE group_key_wakes (
    id        bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue     text    NOT NULL,
    group_key text    NOT NULL,
    prio      integer NOT NULL,
    until     bigint  NOT NULL DEFAULT 0
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);
CREATE INDEX group_key_wakes_queue ON group_key_wakes (queue, id);

CREATE FUNCTION jobq_key_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.state = 2 AND NEW.state <> 2 THEN
        INSERT INTO group_key_wakes (queue, group_key, prio)
            VALUES (OLD.queue, OLD.group_key, -2147483648);
    END IF;
    IF NEW.state = 1 THEN
        INSERT INTO group_key_wakes (queue, group_key, prio)
            VALUES (NEW.queue, NEW.group_key, NEW.priority);
    END IF;
    RETURN NULL;
END $$;

-- A keyed job becomes ready (submit, promotion, retry, release, requeue, a raised priority),
-- or a running keyed job ends. State 1 is ready, 2 running.
CREATE TRIGGER jobs_key_ins AFTER INSERT ON jobs FOR EACH ROW
    WHEN (NEW.group_key IS NOT NULL AND NEW.state = 1) EXECUTE FUNCTION jobq_key_wake();
CREATE TRIGGER jobs_key_upd AFTER UPDATE OF state, priority ON jobs FOR EACH ROW
    WHEN (NEW.group_key IS NOT NULL AND
          ((NEW.state = 1 AND (OLD.state <> 1 OR NEW.priority > OLD.priority)) OR
           (OLD.state = 2 AND NEW.state <> 2)))
    EXECUTE FUNCTION jobq_key_wake();

-- The claim of a queue that has keyed jobs: up to p_max jobs, keys taking turns within a
-- priority level (the least recently served first), jobs without key taking the turns of one
-- more key; a key with p_cap running jobs (0: no cap) or held by its rate (p_interval ms
-- between starts, p_tol ms of tolerance; 0: no rate) is passed over. Returns the claimed ids in
-- claim order, whether a key was passed over for its cap or rate (blocked), and the earliest
-- time a key held by its rate is due again (wake; NULL: none). Each job: a seek of
-- group_keys_turn, one of jobs_key, a count of at most p_cap entries.
-- owner and cancel_requested are columns of 0007_cluster.sql: plpgsql resolves them when the
-- function runs, by which time every migration is applied.
CREATE FUNCTION jobq_claim_keys(p_queue text, p_now bigint, p_max integer, p_cap integer,
                                p_interval bigint, p_tol bigint, p_owner bigint,
                                OUT ids bigint[], OUT blocked boolean, OUT wake bigint)
LANGUAGE plpgsql AS $$
DECLARE
    k record;
    u record;
    uturn bigint;
    ulocked boolean := false;
    udone boolean := false;
    jid bigint;
    jprio integer;
    nprio integer;
    running integer;
    new_tat bigint;
    act smallint;
    n integer := 0;
    visits integer := 0;
    fetched integer;
    pending integer; -- the highest priority a key served in this round still has ready
    cur refcursor;
BEGIN
    ids := '{}';
    blocked := false;
    IF NOT EXISTS (SELECT 1 FROM group_keys WHERE queue = p_queue) AND
       NOT EXISTS (SELECT 1 FROM group_key_wakes WHERE queue = p_queue) THEN
        -- A queue that never had keyed jobs: the plain claim, two empty seeks more.
        WITH picked AS MATERIALIZED (SELECT id FROM jobs WHERE queue = p_queue AND state = 1
                 AND group_key IS NULL ORDER BY priority DESC, run_at, id LIMIT p_max
                 FOR UPDATE SKIP LOCKED),
             c AS (UPDATE jobs j SET state = 2, attempt = j.attempt + 1, started_at = p_now,
                       finished_at = NULL, owner = p_owner, cancel_requested = false FROM picked WHERE j.id = picked.id AND j.state = 1
                   RETURNING j.id, j.priority, j.run_at)
        SELECT coalesce(array_agg(c.id ORDER BY c.priority DESC, c.run_at, c.id), '{}')
            INTO ids FROM c;
        RETURN;
    END IF;
    -- Fold the wakes in, the keys locked in key order (claims of several nodes never wait
    -- for each other in a cycle). First a plain index probe: it marks the entries of wakes
    -- already folded dead as it passes them, which the fold's bitmap scan would visit again
    -- at every claim until a vacuum.
    IF EXISTS (SELECT 1 FROM group_key_wakes WHERE queue = p_queue) THEN
    WITH w AS (DELETE FROM group_key_wakes WHERE id IN (SELECT id FROM group_key_wakes
                   WHERE queue = p_queue ORDER BY id LIMIT 10000 FOR UPDATE SKIP LOCKED)
               RETURNING group_key, prio, until),
         m AS (SELECT group_key, max(prio) AS prio, max(until) AS until FROM w GROUP BY group_key)
    INSERT INTO group_keys AS g (queue, group_key, prio, turn, active, tat)
        SELECT p_queue, m.group_key, greatest(m.prio, -2147483647), nextval('group_keys_turn'), 1,
               m.until
        FROM m ORDER BY m.group_key
    ON CONFLICT (queue, group_key) DO UPDATE
        SET active = CASE WHEN g.active = 0 THEN 1 ELSE g.active END,
            prio = greatest(g.prio, excluded.prio), tat = greatest(g.tat, excluded.tat);
    END IF;
    -- Keys whose rate lets them start again.
    UPDATE group_keys SET active = 1 WHERE (queue, group_key) IN (SELECT queue, group_key
        FROM group_keys WHERE queue = p_queue AND active = 2 AND tat <= p_now + p_tol
        ORDER BY tat LIMIT 10000 FOR UPDATE SKIP LOCKED);
    -- Rounds: one scan of group_keys_turn takes the next keys in turn order (one index scan
    -- for many jobs: a scan per job would walk again over the entries this transaction just
    -- made dead); a round ends early at a key of lower priority than one it served and left
    -- in the rotation, which the next round, sorted again, serves first.
    WHILE n < p_max AND visits < p_max * 4 + 64 LOOP
        fetched := 0;
        pending := NULL;
        -- A cursor fetched row by row locks only the keys it serves; its LIMIT is a constant
        -- (a claim takes at most 100 jobs) so that the generic plan is the index's order.
        OPEN cur FOR SELECT group_key, prio, turn, tat FROM group_keys
                 WHERE queue = p_queue AND active = 1 ORDER BY prio DESC, turn
                 LIMIT 100 FOR UPDATE SKIP LOCKED;
        LOOP
            FETCH cur INTO k;
            EXIT WHEN NOT FOUND;
            fetched := fetched + 1;
            visits := visits + 1;
            EXIT WHEN pending IS NOT NULL AND k.prio < pending;
            -- The jobs without key whose turn (or priority) comes before this key's.
            WHILE NOT udone AND n < p_max LOOP
                SELECT id, priority INTO u FROM jobs WHERE queue = p_queue AND state = 1
                    AND group_key IS NULL ORDER BY priority DESC, run_at, id LIMIT 1
                    FOR UPDATE SKIP LOCKED;
                IF NOT FOUND THEN
                    udone := true;
                    EXIT;
                END IF;
                IF uturn IS NULL AND NOT ulocked THEN
                    INSERT INTO group_keys (queue, group_key, prio, turn, active)
                        VALUES (p_queue, '', 0, 0, 0)
                        ON CONFLICT (queue, group_key) DO NOTHING;
                    SELECT turn INTO uturn FROM group_keys
                        WHERE queue = p_queue AND group_key = '' FOR UPDATE SKIP LOCKED;
                    ulocked := true; -- uturn stays NULL when another node holds it: keys first
                END IF;
                EXIT WHEN uturn IS NULL OR NOT (u.priority > k.prio OR
                                                (u.priority = k.prio AND uturn < k.turn));
                UPDATE jobs SET state = 2, attempt = attempt + 1, started_at = p_now,
                    finished_at = NULL, owner = p_owner, cancel_requested = false WHERE id = u.id AND state = 1;
                IF FOUND THEN
                    ids := ids || u.id;
                    n := n + 1;
                END IF;
                uturn := nextval('group_keys_turn');
                UPDATE group_keys SET turn = uturn WHERE queue = p_queue AND group_key = '';
            END LOOP;
            EXIT WHEN n >= p_max;
            jid := NULL;
            SELECT id, priority INTO jid, jprio FROM jobs WHERE queue = p_queue
                AND group_key = k.group_key AND state = 1 ORDER BY priority DESC, run_at, id
                LIMIT 1 FOR UPDATE SKIP LOCKED;
            IF jid IS NULL THEN
                IF EXISTS (SELECT 1 FROM jobs WHERE queue = p_queue AND group_key = k.group_key
                           AND state = 1) THEN
                    -- Its ready jobs are held by another transaction: its turn passes.
                    UPDATE group_keys SET turn = nextval('group_keys_turn')
                        WHERE queue = p_queue AND group_key = k.group_key;
                ELSIF EXISTS (SELECT 1 FROM jobs WHERE queue = p_queue
                              AND group_key = k.group_key AND state = 2) THEN
                    UPDATE group_keys SET active = 0
                        WHERE queue = p_queue AND group_key = k.group_key;
                ELSE
                    DELETE FROM group_keys WHERE queue = p_queue AND group_key = k.group_key;
                END IF;
                CONTINUE;
            END IF;
            IF jprio < k.prio THEN
                -- Placed again by its best ready job; the next round sorts it in.
                UPDATE group_keys SET prio = jprio
                    WHERE queue = p_queue AND group_key = k.group_key;
                CONTINUE;
            END IF;
            running := 0;
            IF p_cap > 0 THEN
                SELECT count(*) INTO running FROM (SELECT 1 FROM jobs WHERE queue = p_queue
                    AND group_key = k.group_key AND state = 2 LIMIT p_cap) r;
                IF running >= p_cap THEN
                    UPDATE group_keys SET active = 0
                        WHERE queue = p_queue AND group_key = k.group_key;
                    blocked := true;
                    CONTINUE;
                END IF;
            END IF;
            IF k.tat > p_now + p_tol THEN -- key_rate, or a slow-down (a wake's until)
                UPDATE group_keys SET active = 2 WHERE queue = p_queue AND group_key = k.group_key;
                blocked := true;
                CONTINUE;
            END IF;
            UPDATE jobs SET state = 2, attempt = attempt + 1, started_at = p_now,
                finished_at = NULL, owner = p_owner, cancel_requested = false WHERE id = jid;
            ids := ids || jid;
            n := n + 1;
            new_tat := CASE WHEN p_interval > 0 THEN greatest(k.tat, p_now) + p_interval
                            ELSE k.tat END;
            nprio := NULL;
            SELECT priority INTO nprio FROM jobs WHERE queue = p_queue
                AND group_key = k.group_key AND state = 1 ORDER BY priority DESC, run_at, id
                LIMIT 1;
            act := CASE WHEN nprio IS NULL THEN 0
                        WHEN p_cap > 0 AND running + 1 >= p_cap THEN 0
                        WHEN new_tat > p_now + p_tol THEN 2
                        ELSE 1 END;
            IF act <> 1 AND nprio IS NOT NULL THEN
                blocked := true;
            END IF;
            IF act = 1 THEN
                pending := greatest(pending, nprio);
            END IF;
            UPDATE group_keys SET turn = nextval('group_keys_turn'), tat = new_tat, active = act,
                prio = coalesce(nprio, prio) WHERE queue = p_queue AND group_key = k.group_key;
            EXIT WHEN n >= p_max;
        END LOOP;
        CLOSE cur;
        IF fetched = 0 THEN
            -- No key in the rotation: the jobs without key, as the plain claim takes them.
            IF NOT udone AND n < p_max THEN
                WITH picked AS MATERIALIZED (SELECT id FROM jobs WHERE queue = p_queue
                         AND state = 1 AND group_key IS NULL ORDER BY priority DESC, run_at, id
                         LIMIT p_max - n FOR UPDATE SKIP LOCKED),
                     c AS (UPDATE jobs j SET state = 2, attempt = j.attempt + 1,
                               started_at = p_now, finished_at = NULL, owner = p_owner, cancel_requested = false FROM picked
                           WHERE j.id = picked.id AND j.state = 1
                           RETURNING j.id, j.priority, j.run_at)
                SELECT ids || coalesce(array_agg(c.id ORDER BY c.priority DESC, c.run_at, c.id),
                                       '{}')
                    INTO ids FROM c;
                n := cardinality(ids);
            END IF;
            EXIT;
        END IF;
    END LOOP;
    IF n < p_max AND NOT blocked THEN
        -- Fewer than asked: because the visits ran out, or keys are out of the rotation (at
        -- their cap, held by their rate, or with nothing ready but running jobs): the
        -- queue's ready count may hold jobs no claim can take now.
        blocked := visits >= p_max * 4 + 64 OR EXISTS (SELECT 1 FROM group_keys
            WHERE queue = p_queue AND active <> 1 AND group_key <> '');
    END IF;
    SELECT min(tat) - p_tol INTO wake FROM group_keys WHERE queue = p_queue AND active = 2;
END $$;
