-- 0008_keys.sql: per-key fairness and limits. A job may carry a group_key (a customer, a
-- tenant, a resource). Within a queue, the keys that have ready jobs take turns (the least
-- recently served key first, within a priority level), and the claim may cap how many jobs of
-- one key run at once (key_concurrency) and how often one starts (key_rate).
--
-- Jobs without a group_key are indexed and claimed exactly as before: jobs_ready now holds
-- only them. Keyed ready jobs have indexes of their own, so one key's backlog is one range.
ALTER TABLE jobs ADD COLUMN group_key TEXT;

DROP INDEX jobs_ready;
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, run_at, id)
    WHERE state = 1 AND group_key IS NULL;

-- One key's ready jobs in claim order, then its running jobs (counted against the cap).
CREATE INDEX jobs_key ON jobs (queue, group_key, state, priority DESC, run_at, id)
    WHERE group_key IS NOT NULL AND state IN (1, 2);

-- Keyed ready jobs of a queue in claim order: the oldest one's age, how many are ahead of one.
CREATE INDEX jobs_key_ready ON jobs (queue, priority DESC, run_at, id)
    WHERE state = 1 AND group_key IS NOT NULL;

-- One row per (queue, key) that has ready or running jobs: its place in the rotation.
-- active: 1 in the rotation (it may have ready jobs); 0 out of it (no ready job, or at its
-- cap: a running job's end puts it back); 2 held by key_rate until tat.
-- prio: at least the priority of its best ready job while active (the claim lowers it when it
-- finds less). turn: when it was last served; the least recently served key goes first.
-- tat: key_rate's theoretical arrival time (GCRA), in ms: the next start is due then.
-- The row with group_key '' (never a job's key) keeps the turn of a queue's jobs without key
-- when keyed and unkeyed jobs share it.
CREATE TABLE group_keys (
    queue     TEXT    NOT NULL,
    group_key TEXT    NOT NULL,
    prio      INTEGER NOT NULL DEFAULT 0,
    turn      INTEGER NOT NULL,
    active    INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1, 2)),
    tat       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, group_key)
) WITHOUT ROWID;
-- The claim: the next key in the rotation, one seek.
CREATE INDEX group_keys_turn ON group_keys (queue, prio DESC, turn) WHERE active = 1;
-- Keys held by key_rate, the earliest due first.
CREATE INDEX group_keys_wake ON group_keys (queue, tat) WHERE active = 2;
-- The next turn number: max(turn) + 1.
CREATE INDEX group_keys_last ON group_keys (turn);

-- Every way a keyed job becomes ready (submit, promotion, retry, release, requeue, a priority
-- raised) puts its key in the rotation, or raises its priority there. Triggers, so that no
-- path that makes a job ready (today's or a later one) can forget it.
CREATE TRIGGER jobs_key_ready_ins AFTER INSERT ON jobs
    WHEN NEW.group_key IS NOT NULL AND NEW.state = 1
BEGIN
    INSERT OR IGNORE INTO group_keys (queue, group_key, prio, turn, active)
        VALUES (NEW.queue, NEW.group_key, NEW.priority,
                (SELECT coalesce(max(turn), 0) + 1 FROM group_keys), 0);
    UPDATE group_keys SET active = 1, prio = NEW.priority
        WHERE queue = NEW.queue AND group_key = NEW.group_key AND active = 0;
    UPDATE group_keys SET prio = NEW.priority
        WHERE queue = NEW.queue AND group_key = NEW.group_key AND prio < NEW.priority;
END;

CREATE TRIGGER jobs_key_ready_upd AFTER UPDATE OF state, priority ON jobs
    WHEN NEW.group_key IS NOT NULL AND NEW.state = 1
         AND (OLD.state <> 1 OR NEW.priority > OLD.priority)
BEGIN
    INSERT OR IGNORE INTO group_keys (queue, group_key, prio, turn, active)
        VALUES (NEW.queue, NEW.group_key, NEW.priority,
                (SELECT coalesce(max(turn), 0) + 1 FROM group_keys), 0);
    UPDATE group_keys SET active = 1, prio = NEW.priority
        WHERE queue = NEW.queue AND group_key = NEW.group_key AND active = 0;
    UPDATE group_keys SET prio = NEW.priority
        WHERE queue = NEW.queue AND group_key = NEW.group_key AND prio < NEW.priority;
END;

-- A running keyed job ends (or is requeued): its key, out of the rotation at its cap, goes
-- back in if it has ready jobs; a key with nothing ready nor running is forgotten.
CREATE TRIGGER jobs_key_end AFTER UPDATE OF state ON jobs
    WHEN OLD.group_key IS NOT NULL AND OLD.state = 2 AND NEW.state <> 2
BEGIN
    UPDATE group_keys SET active = 1
        WHERE queue = OLD.queue AND group_key = OLD.group_key AND active = 0
          AND EXISTS (SELECT 1 FROM jobs WHERE queue = OLD.queue
                      AND group_key = OLD.group_key AND state = 1
                      AND group_key IS NOT NULL AND state IN (1, 2));
    DELETE FROM group_keys
        WHERE queue = OLD.queue AND group_key = OLD.group_key AND active = 0
          AND NOT EXISTS (SELECT 1 FROM jobs WHERE queue = OLD.queue
                          AND group_key = OLD.group_key AND state IN (1, 2)
                          AND group_key IS NOT NULL);
END;
