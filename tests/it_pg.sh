#!/usr/bin/env bash
# it_pg.sh: jobqd on PostgreSQL (store = postgres, a cluster of its own from tests/pg.sh):
# the schema is migrated at start and the jobs really live there; submit, wait, exec jobs,
# retries with backoff to dead, remote-worker fetch/ack/fail, cancel, retry; kill -9 with
# jobs running (they come back ready, the attempt counted as a crash); PostgreSQL stopped
# under a running jobqd (requests fail fast with a message that says what to check, an
# outcome owed is recorded once it is back) and started again (jobqd serves again without a
# restart); backup refused with the pg_dump hint.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"

mkdir "$T/pg"
pg_init "$T/pg" || fail "no PostgreSQL cluster"
# lib.sh's cleanup reads the test's status first: keep it across stopping the cluster.
trap 'rc=$?; set +e; pg_stop immediate >/dev/null 2>&1; (exit $rc); cleanup' EXIT
pg_start || fail "PostgreSQL did not start"
pg_psql -c "CREATE DATABASE jobq" || fail "CREATE DATABASE"
DBURL=$(pg_url jobq)

# A config that names a file with store = postgres is refused before anything starts.
SERVER_EXTRA="store = postgres" write_config
if "$JOBQD" -c "$T/jobq.conf" --check-config >"$T/check.out" 2>&1; then
    fail "store = postgres with a file database was accepted"
fi
grep -q "store = postgres needs database = postgresql://" "$T/check.out" ||
    fail "unclear refusal: $(cat "$T/check.out")"
ok "store = postgres with a file path is refused with what to write instead"

SERVER_EXTRA="store = postgres" write_config "[queue.ok]
command = true
concurrency = 4

[queue.flaky]
command = sh -c 'exit 1'
max_attempts = 3
backoff_base = 100ms
backoff_max = 200ms

[queue.w]
max_attempts = 4
backoff_base = 300ms
backoff_max = 300ms
lease = 1m"
# lib.sh writes a file database; this test's is the cluster's (awk: the URL holds '&').
awk -v url="$DBURL" '/^database = /{ $0 = "database = " url } { print }' "$T/jobq.conf" \
    >"$T/jobq.conf.new" && mv "$T/jobq.conf.new" "$T/jobq.conf"
start_jobqd
grep -q 'event=migrated version=1 file=pg/0001_init.sql' "$LOG" || fail "no migration logged"
expect_eq "migrations recorded" "$(pg_psql jobq -c 'SELECT count(*) FROM jobq_migrations')" "$(ls "$JOBQ_SRC"/migrations/pg/*.sql | wc -l)"
ok "jobqd started on PostgreSQL and migrated the empty database"

# Submit and wait: an exec job runs to success; the row is in PostgreSQL.
id=$(cli submit ok '{"n":1}')
r=$(raw "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"20s\"}")
jq -e '.done and .jobs[0].state == "succeeded"' <<<"$r" >/dev/null || fail "wait: $r"
expect_eq "the job's row in PostgreSQL" \
    "$(pg_psql jobq -c "SELECT state || ' ' || attempt || ' ' || payload FROM jobs WHERE id = $id")" \
    '4 1 {"n":1}'
ok "submit, run and wait on PostgreSQL; the row is there (succeeded, attempt 1)"

# A batch of 200 jobs all run.
jq -cn '{op:"submit_batch",jobs:[range(200) | {queue:"ok",payload:{i:.}}]}' >"$T/batch.json"
r=$(raw_file "$T/batch.json")
jq -e '.ok and (.ids | length) == 200' <<<"$r" >/dev/null || fail "submit_batch: $r"
ids=$(jq -c .ids <<<"$r")
r=$(raw "{\"op\":\"wait\",\"ids\":$ids,\"timeout\":\"60s\"}")
jq -e '.done and ([.jobs[] | select(.state == "succeeded")] | length) == 200' <<<"$r" \
    >/dev/null || fail "batch wait: $(jq -c '[.jobs[].state] | group_by(.) | map({(.[0]): length}) | add' <<<"$r")"
ok "a batch of 200 exec jobs ran to success"

# Retry with backoff: a failing command is retried until max_attempts, then dead, with each
# attempt in the history.
id=$(cli submit flaky '{}')
r=$(raw "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"30s\"}")
jq -e '.done and .jobs[0].state == "dead" and .jobs[0].attempt == 3' <<<"$r" >/dev/null ||
    fail "flaky job: $r"
r=$(raw "{\"op\":\"get\",\"id\":$id}")
jq -e '[.job.attempts[].kind] == ["exit","exit","exit"]' <<<"$r" >/dev/null ||
    fail "history of the flaky job: $r"
ok "a failing job is retried with backoff to dead after 3 attempts, each in its history"

# Remote workers: fetch, fail (retried after the backoff), fetch again, ack.
id=$(cli submit w '{"job":"w1"}')
r=$(raw '{"op":"fetch","queue":"w","timeout":"5s"}')
jq -e --argjson id "$id" '.jobs[0].id == $id and .jobs[0].attempt == 1' <<<"$r" >/dev/null ||
    fail "fetch: $r"
lease=$(jq -r '.jobs[0].lease' <<<"$r")
r=$(raw "{\"op\":\"fail\",\"id\":$id,\"lease\":\"$lease\",\"error\":\"try later\"}")
jq -e '.ok and .job.state == "retrying"' <<<"$r" >/dev/null || fail "fail: $r"
t0=$(date +%s%N)
r=$(raw '{"op":"fetch","queue":"w","timeout":"10s"}')
waited_ms=$((($(date +%s%N) - t0) / 1000000))
jq -e --argjson id "$id" '.jobs[0].id == $id and .jobs[0].attempt == 2' <<<"$r" >/dev/null ||
    fail "fetch after the backoff: $r"
lease=$(jq -r '.jobs[0].lease' <<<"$r")
r=$(raw "{\"op\":\"ack\",\"id\":$id,\"lease\":\"$lease\",\"result\":\"done\"}")
jq -e '.ok and .job.state == "succeeded"' <<<"$r" >/dev/null || fail "ack: $r"
ok "a worker's fail is retried after the backoff (retrying, promoted, fetched again after ${waited_ms} ms: full jitter), then acked"

# Cancel and retry.
id=$(cli submit w '{"job":"c"}')
r=$(raw "{\"op\":\"cancel\",\"id\":$id}")
jq -e '.ok and .job.state == "cancelled"' <<<"$r" >/dev/null || fail "cancel: $r"
expect_eq "cancel of a cancelled job" "$(raw "{\"op\":\"cancel\",\"id\":$id}" | jq -r .error.code)" \
    invalid_state
r=$(raw "{\"op\":\"retry\",\"id\":$id}")
jq -e '.ok and .job.state == "ready" and .job.attempt == 0' <<<"$r" >/dev/null || fail "retry: $r"
r=$(raw "{\"op\":\"cancel\",\"id\":$id}")
jq -e '.ok and .job.state == "cancelled"' <<<"$r" >/dev/null || fail "cancel again: $r"
ok "cancel, cancel again (invalid_state), retry, cancel"

# Backup is PostgreSQL's business.
r=$(raw '{"op":"backup","path":"/elsewhere/copy.db"}') # backup_dir does not matter
jq -e '.ok == false and (.error.message | test("pg_dump"))' <<<"$r" >/dev/null ||
    fail "backup on PostgreSQL: $r"
ok "backup is refused with the pg_dump hint ($(jq -r .error.code <<<"$r"))"

# kill -9 with jobs running: three fetched (leased) jobs come back ready at the next start,
# each attempt recorded as a crash and counted.
ids=()
for i in 1 2 3; do ids+=("$(cli submit w "{\"k\":$i}")"); done
r=$(raw '{"op":"fetch","queue":"w","max":3,"timeout":"5s"}')
expect_eq "jobs fetched before the kill" "$(jq '.jobs | length' <<<"$r")" 3
expect_eq "running in PostgreSQL before the kill" \
    "$(pg_psql jobq -c "SELECT count(*) FROM jobs WHERE state = 2")" 3
kill9_jobqd
start_jobqd
grep -q 'event=recovered jobs=3' "$LOG" || fail "no recovery of 3 jobs logged"
for id in "${ids[@]}"; do
    r=$(raw "{\"op\":\"get\",\"id\":$id}")
    jq -e '.job.state == "ready" and .job.attempt == 1 and .job.attempts[-1].kind == "crash"' \
        <<<"$r" >/dev/null || fail "job $id after kill -9: $r"
done
r=$(raw '{"op":"fetch","queue":"w","max":3,"timeout":"5s"}')
expect_eq "jobs fetched again after the restart" "$(jq '[.jobs[] | select(.attempt == 2)] | length' <<<"$r")" 3
acks=$(jq -c '{op:"ack",jobs:[.jobs[] | {id, lease}]}' <<<"$r")
r=$(raw "$acks")
jq -e '[.results[] | select(.ok)] | length == 3' <<<"$r" >/dev/null || fail "acks: $r"
ok "kill -9 with 3 jobs running: they came back ready (crash recorded), ran again and were acked"

# PostgreSQL stopped under a running jobqd: requests fail fast and say what to check; a
# worker's outcome is refused but its lease kept; once PostgreSQL is back jobqd serves again
# without a restart, and the outcome is recorded.
id=$(cli submit w '{"k":"outage"}')
r=$(raw '{"op":"fetch","queue":"w","timeout":"5s"}')
lease=$(jq -r '.jobs[0].lease' <<<"$r")
pg_stop fast || fail "pg_ctl stop"
t0=$(date +%s%N)
if out=$(cli submit ok '{"n":"down"}' 2>&1); then
    fail "a submit succeeded with PostgreSQL stopped: $out"
fi
took_ms=$((($(date +%s%N) - t0) / 1000000))
grep -q "cannot reach PostgreSQL at socket $T/pg" <<<"$out" || fail "unclear error: $out"
grep -q "check \[server\] database" <<<"$out" || fail "error without what to check: $out"
[ "$took_ms" -lt 10000 ] || fail "the failing submit took ${took_ms} ms"
r=$(raw "{\"op\":\"ack\",\"id\":$id,\"lease\":\"$lease\"}")
expect_eq "ack while PostgreSQL is down" "$(jq -r .error.code <<<"$r")" store_unavailable
r=$(raw "{\"op\":\"get\",\"id\":$id}")
expect_eq "get while PostgreSQL is down" "$(jq -r .error.code <<<"$r")" store_unavailable
# Known down, the store is not dialled again for every request: 20 requests answer at once.
t1=$(date +%s%N)
for i in $(seq 20); do
    expect_eq "get $i while PostgreSQL is down" "$(raw "{\"op\":\"get\",\"id\":$id}" | jq -r .error.code)" store_unavailable
done
fast_ms=$((($(date +%s%N) - t1) / 1000000))
raw '{"op":"ping"}' | jq -e .ok >/dev/null || fail "ping while PostgreSQL is down"
grep -q 'event=store_unreachable' "$LOG" || fail "no store_unreachable logged"
ok "PostgreSQL stopped: a submit failed in ${took_ms} ms with: $(head -c 160 <<<"$out")...; then store_unavailable (retryable), 20 gets in ${fast_ms} ms"

pg_start || fail "PostgreSQL did not start again"
# store_unavailable is retryable: jobqd dials again after a backoff of at most 2 s.
poll_until "the owed ack is recorded" \
    'r=$(raw "{\"op\":\"ack\",\"id\":$id,\"lease\":\"$lease\"}"); [ "$(jq -r .error.code <<<"$r")" != store_unavailable ]'
jq -e '.ok and .job.state == "succeeded"' <<<"$r" >/dev/null || fail "ack after PostgreSQL came back: $r"
id=$(cli submit ok '{"n":"back"}') || fail "submit after PostgreSQL came back"
r=$(raw "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"20s\"}")
jq -e '.done and .jobs[0].state == "succeeded"' <<<"$r" >/dev/null || fail "wait after the outage: $r"
grep -q 'event=store_reconnected' "$LOG" || fail "no store_reconnected logged"
ok "PostgreSQL started again: the owed ack was recorded, submit and run work, no jobqd restart"

stop_jobqd
expect_eq "no job left running in PostgreSQL" \
    "$(pg_psql jobq -c "SELECT count(*) FROM jobs WHERE state = 2")" 0
ok "clean stop"
