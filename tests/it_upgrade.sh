#!/usr/bin/env bash
# it_upgrade.sh: a database written by an older jobqd (schema version 2) is migrated in place
# at start: every job is kept with its state, and ids are never reused, not even those of
# jobs retention had deleted.
. "$(dirname "$0")/lib.sh"

DB="$T/jobq.db"
# The schema as jobqd wrote it before workflows: migrations 1 and 2, user_version 2.
sqlite3 "$DB" <"$JOBQ_SRC/migrations/0001_init.sql"
sqlite3 "$DB" <"$JOBQ_SRC/migrations/0002_attempts_retention.sql"
sqlite3 "$DB" "PRAGMA user_version = 2;"
now=$(($(date +%s) * 1000))
for i in $(seq 1 40); do
    echo "INSERT INTO jobs (queue, payload, state, run_at, max_attempts, timeout_ms, created_at,
          finished_at) VALUES ('q', '{\"i\":$i}', $((i % 2 ? 1 : 4)), $now, 3, 1000, $now,
          CASE WHEN $i % 2 = 0 THEN $now END);"
done | sqlite3 "$DB"
# Retention deleted the newest ten: their ids (31-40) must not come back.
sqlite3 "$DB" "DELETE FROM jobs WHERE id > 30;"
expect_eq "sequence before" "$(sqlite3 "$DB" "select seq from sqlite_sequence where name='jobs'")" 40

write_config "[queue.q]"
start_jobqd
latest=$(find "$JOBQ_SRC/migrations" -maxdepth 1 -name '[0-9]*.sql' | wc -l)
expect_eq "schema version" "$(sqlite3 "$DB" "PRAGMA user_version")" "$latest"
expect_eq "jobs kept" "$(sqlite3 "$DB" "select count(*) from jobs")" 30
expect_eq "ready kept" "$(cli stats --json | jq .queues.q.ready)" 15
expect_eq "succeeded kept" "$(cli stats --json | jq .queues.q.succeeded)" 15
expect_eq "payload kept" "$(cli get 29 --json | jq -c .job.payload)" '{"i":29}'
id=$(cli submit q '{"new":1}')
expect_eq "first id after the upgrade" "$id" 41
expect_eq "integrity" "$(sqlite3 "$DB" "PRAGMA integrity_check")" ok
stop_jobqd
ok "a version-2 database is upgraded in place: 30 jobs kept, next id 41"
