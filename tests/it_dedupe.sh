#!/usr/bin/env bash
# it_dedupe.sh: deduplication modes, job expiry and snooze against a real jobqd. Each dedupe
# mode under 100 concurrent submits of one key (100 `jobq submit` processes at once): exactly
# one job per the mode's rule; replace gives the waiting job the last payload; debounce
# pushes the run time and caps it at the first submit + debounce_max; until_done frees the
# key in the transaction that ends the job; replace leaves a running job alone and admits a
# new one. Waits are on events (`jobq wait`, a file a handler creates), never a sleep.
# With JOBQ_IT_PG=1 (ctest it_dedupe_pg) the same runs on PostgreSQL (a cluster of its own
# from tests/pg.sh), where the keys are locked for concurrent transactions.
. "$(dirname "$0")/lib.sh"
if [ "${JOBQ_IT_PG:-}" = 1 ]; then
    . "$(dirname "$0")/pg.sh"
    mkdir "$T/pg"
    pg_init "$T/pg" || fail "no PostgreSQL cluster"
    trap 'rc=$?; set +e; pg_stop immediate >/dev/null 2>&1; (exit $rc); cleanup' EXIT
    pg_start || fail "PostgreSQL did not start"
    pg_psql -c "CREATE DATABASE jobq" || fail "CREATE DATABASE"
    DBURL=$(pg_url jobq)
fi

# The blocking handler: notes that it started, then waits for the test's go file.
cat >"$T/block.sh" <<'SH'
#!/bin/sh
cat >"$DIR/payload.$JOBQ_JOB_ID"
touch "$DIR/started.$JOBQ_JOB_ID"
while [ ! -e "$DIR/go.$JOBQ_JOB_ID" ]; do sleep 0.02; done
SH
chmod +x "$T/block.sh"
export DIR="$T"

# The snoozing handler: snoozes its first two runs for 700 ms (a control line, then exit 76),
# then succeeds; its queues have max_attempts = 1, so one counted failure would end it dead.
cat >"$T/snoozy.sh" <<'SH'
#!/bin/sh
cat >/dev/null
n=$(cat "$DIR/runs.$JOBQ_JOB_ID" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" >"$DIR/runs.$JOBQ_JOB_ID"
echo "run=$n attempt=$JOBQ_ATTEMPT" >>"$DIR/seen.$JOBQ_JOB_ID"
if [ "$n" -le 2 ]; then
    echo "snooze 700ms" >&"$JOBQ_CONTROL_FD"
    exit 76
fi
echo done
SH
chmod +x "$T/snoozy.sh"

# The webhook receiver: 202 with Jobq-Snooze twice, then 200.
: "${JOBQ_HOOKD:?JOBQ_HOOKD must name the jobq-hookd test endpoint}"
printf '202 snooze=700ms\n202 snooze=1\n200\n' >"$T/script"
mkfifo "$T/hookd.out"
"$JOBQ_HOOKD" "$T/script" "$T/hooks.log" >"$T/hookd.out" &
CLEANUP_PIDS+=($!)
read -r _ hport <"$T/hookd.out"

SERVER_EXTRA="http = 127.0.0.1:0" write_config "[queue.t]
command = /bin/true
[queue.u]
command = /bin/true
[queue.r]
command = $T/block.sh
concurrency = 4
[queue.d]
command = /bin/true
[queue.x]
command = /bin/true
[queue.z]
command = $T/block.sh
concurrency = 1
[queue.sx]
command = $T/snoozy.sh
max_attempts = 1
[queue.sw]
max_attempts = 1
[queue.sh]
url = http://127.0.0.1:$hport/hook
max_attempts = 1"
if [ "${JOBQ_IT_PG:-}" = 1 ]; then
    # lib.sh writes a file database; this one is the cluster's (awk: the URL holds '&').
    awk -v url="$DBURL" '/^database = /{ $0 = "database = " url "\nstore = postgres" } { print }' \
        "$T/jobq.conf" >"$T/jobq.conf.pg"
    mv "$T/jobq.conf.pg" "$T/jobq.conf"
fi
start_jobqd
# The monitor's port (it changes with a restart of jobqd).
metric() {
    local port
    port=$(grep -o 'event=http_listen addr=127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*://')
    curl -s "http://127.0.0.1:$port/metrics" | awk -v k="$1" '$1 == k { v = $2 } END { print v }'
}

# burst N OUT ARGS...: N `jobq submit ARGS` at once (ARGS may hold %i, the process's number),
# each one's output in OUT.i; returns once all exited, failing if one failed.
burst() {
    local n=$1 out=$2
    shift 2
    local pids=() i
    for i in $(seq 1 "$n"); do
        local args=("${@//%i/$i}")
        cli submit "${args[@]}" >"$out.$i" 2>&1 &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || fail "submit $((i + 1)) of the burst failed: $(cat "$out.$((i + 1))")"
    done
}
# ids OUT: the distinct ids printed by a burst.
ids() { cat "$1".* | awk '{print $1}' | sort -u; }
# count OUT WORD: how many submits of a burst printed "(WORD)".
count() { cat "$1".* | grep -c "($2)" || true; }
# njobs QUEUE: jobs stored in QUEUE.
njobs() { cli --json list --queue "$1" --limit 1000 | jq '.jobs | length'; }
get() { cli --json get "$1" | jq -c "$2"; }

# ---- ttl (the default): one job per key_ttl, whatever happens to it ----
cli pause t >/dev/null
burst 100 "$T/ttl" t '{"a":1}' --key k
expect_eq "ttl: distinct ids of 100 submits" "$(ids "$T/ttl" | wc -l)" 1
expect_eq "ttl: duplicates" "$(count "$T/ttl" duplicate)" 99
expect_eq "ttl: jobs stored" "$(njobs t)" 1
id=$(ids "$T/ttl")
cli resume t >/dev/null
cli wait "$id" >/dev/null
expect_eq "ttl: after the job ended, the key still answers with it" "$(cli submit t '{"a":1}' --key k)" "$id (duplicate)"
ok "ttl: 100 concurrent submits of one key, one job; the key outlives the job"

# ---- until_done: one job until it ends, the key freed with its end ----
cli pause u >/dev/null
burst 100 "$T/ud" u '{"a":1}' --key k --dedupe until_done
expect_eq "until_done: distinct ids" "$(ids "$T/ud" | wc -l)" 1
expect_eq "until_done: duplicates" "$(count "$T/ud" duplicate)" 99
id=$(ids "$T/ud")
out=$(cli submit u '{"a":2}' --key k --dedupe until_done 2>&1) && fail "another payload while held: $out"
grep -q key_conflict <<<"$out" || grep -qi "another payload" <<<"$out" || fail "conflict message: $out"
cli resume u >/dev/null
cli wait "$id" >/dev/null
id2=$(cli submit u '{"a":1}' --key k --dedupe until_done)
[ "$id2" != "$id" ] && [ "$id2" -gt "$id" ] || fail "until_done: after the end the key admits a new job: got $id2 (first $id)"
cli wait "$id2" >/dev/null
# A cancelled job frees its key too.
cli pause u >/dev/null
id3=$(cli submit u '{"a":1}' --key k2 --dedupe until_done)
cli cancel "$id3" >/dev/null
id4=$(cli submit u '{"a":1}' --key k2 --dedupe until_done)
[ "$id4" != "$id3" ] || fail "until_done: a cancelled job's key is free: got $id4 again"
ok "until_done: 100 concurrent submits, one job; the key is free once it succeeded or was cancelled"

# ---- replace: a waiting job takes the new payload, same id ----
cli pause r >/dev/null
first=$(cli submit r '{"n":0}' --key k --dedupe replace)
burst 100 "$T/rp" r '{"n":%i}' --key k --dedupe replace --delay 1s
expect_eq "replace: distinct ids" "$(ids "$T/rp")" "$first"
expect_eq "replace: replaced" "$(count "$T/rp" replaced)" 100
expect_eq "replace: jobs stored" "$(njobs r)" 1
n=$(get "$first" .job.payload.n)
[ "$n" -ge 1 ] && [ "$n" -le 100 ] || fail "replace: the payload is one of the burst's: $n"
# The last committed replace wins: one more, alone, shows it.
expect_eq "replace reply" "$(raw '{"op":"submit","queue":"r","payload":{"n":500},"key":"k","dedupe":"replace"}' | jq -c '[.id, .replaced, .duplicate, .state]')" "[$first,true,false,\"ready\"]"
expect_eq "replace: the payload now" "$(get "$first" .job.payload)" '{"n":500}'
expect_eq "replace: the counts follow the job's state" "$(cli --json stats | jq -c '.queues.r | [.scheduled, .ready]')" '[0,1]'
# A running job is left alone: the next submit is a new job, which takes the key.
cli resume r >/dev/null
poll_until "job $first started" '[ -e "$T/started.$first" ]'
expect_eq "the running job's payload" "$(cat "$T/payload.$first")" '{"n":500}'
second=$(cli submit r '{"n":501}' --key k --dedupe replace)
[ "$second" != "$first" ] || fail "replace of a running job: got the running job $first"
poll_until "job $second started" '[ -e "$T/started.$second" ]'
third=$(cli submit r '{"n":502}' --key k --dedupe replace)
[ "$third" != "$second" ] || fail "replace while the second runs: got $second"
touch "$T/go.$first" "$T/go.$second" "$T/go.$third"
cli wait "$first" >/dev/null
cli wait "$second" >/dev/null
cli wait "$third" >/dev/null
expect_eq "the new job ran with its payload" "$(cat "$T/payload.$second")" '{"n":501}'
ok "replace: 100 concurrent submits replace one waiting job (same id); a running job is left alone and a new job runs after"

# ---- debounce: replace, the run time pushed to now + delay, capped ----
cli pause d >/dev/null
t0=$(date +%s%3N)
first=$(cli submit d '{"n":0}' --key k --dedupe debounce --delay 10s --debounce-max 30s)
created=$(get "$first" .job.created_at)
r0=$(get "$first" .job.run_at)
[ "$r0" -ge $((t0 + 10000)) ] || fail "debounce: the first run time is now + 10s: $r0 (t0 $t0)"
burst 100 "$T/db" d '{"n":%i}' --key k --dedupe debounce --delay 20s --debounce-max 30s
expect_eq "debounce: distinct ids" "$(ids "$T/db")" "$first"
expect_eq "debounce: replaced" "$(count "$T/db" replaced)" 100
expect_eq "debounce: jobs stored" "$(njobs d)" 1
r1=$(get "$first" .job.run_at)
[ "$r1" -ge $((t0 + 20000)) ] && [ "$r1" -gt "$r0" ] || fail "debounce: the run time was pushed to now + 20s: $r1 (was $r0)"
cli submit d '{"n":999}' --key k --dedupe debounce --delay 1h --debounce-max 30s >/dev/null
expect_eq "debounce: capped at the first submit + debounce_max" "$(get "$first" .job.run_at)" $((created + 30000))
expect_eq "debounce: the payload" "$(get "$first" .job.payload)" '{"n":999}'
expect_eq "debounce: the counts" "$(cli --json stats | jq -c '.queues.d | [.scheduled, .ready]')" '[1,0]'
ok "debounce: 100 concurrent submits push one job's run time; it is capped at first submit + debounce_max"

# ---- the modes in submit_batch: members decided one after the other in one transaction ----
r=$(raw '{"op":"submit_batch","queue":"d","jobs":[{"payload":1,"key":"b1","dedupe":"until_done"},{"payload":1,"key":"b1","dedupe":"until_done"},{"payload":{"v":1},"key":"b2","dedupe":"replace","delay":"1h"},{"payload":{"v":2},"key":"b2","dedupe":"replace","delay":"1h"},{"payload":{"v":3},"key":"b2","dedupe":"debounce","delay":"2h","debounce_max":"1h"}]}')
expect_eq "batch: duplicates and replaced" "$(jq -c '[.duplicates, .replaced, .ids[0] == .ids[1], .ids[2] == .ids[3], .ids[3] == .ids[4]]' <<<"$r")" '[[1],[3,4],true,true,true]'
b2=$(jq '.ids[2]' <<<"$r")
expect_eq "batch: the replaced member's payload" "$(get "$b2" .job.payload)" '{"v":3}'
expect_eq "batch: debounce capped at its first submit + 1h" "$(get "$b2" '.job.run_at - .job.created_at')" 3600000
ok "submit_batch: each member's mode is decided in the batch's transaction, after the members before it"

# ---- expiry: a job not started by its deadline is cancelled as expired ----
cli pause x >/dev/null
id=$(cli submit x '{}' --expires-in 1500ms)
keep=$(cli submit x '{}' --expires-in 1h)
expect_eq "get shows the deadline" "$(get "$id" '.job.expires_at - .job.created_at | . > 1000 and . <= 1500')" true
cli explain "$id" | grep -q "expires (is cancelled) at" || fail "explain before the deadline: $(cli explain "$id")"
cli wait "$id" >/dev/null 2>&1 || true # returns when it ends: the expiry is its end
expect_eq "expired job" "$(get "$id" '[.job.state, .job.error, .job.attempt]')" '["cancelled","expired",0]'
cli explain "$id" | grep -q "expired, not started by" || fail "explain after: $(cli explain "$id")"
expect_eq "jobq_jobs_expired_total" "$(metric 'jobq_jobs_expired_total{queue="x"}')" 1
expect_eq "counts" "$(cli --json stats | jq -c '.queues.x | [.ready, .cancelled]')" '[1,1]'
expect_eq "the other job waits on" "$(get "$keep" .job.state)" '"ready"'
at=$(($(date +%s%3N) + 1500))
id=$(raw "{\"op\":\"submit\",\"queue\":\"x\",\"delay\":\"1h\",\"expires_at\":$at}" | jq .id)
cli wait "$id" >/dev/null 2>&1 || true
expect_eq "a scheduled job expires at expires_at" "$(get "$id" '[.job.state, .job.error]')" '["cancelled","expired"]'
expect_eq "jobq_jobs_expired_total" "$(metric 'jobq_jobs_expired_total{queue="x"}')" 2
# A job with a deadline that starts in time runs.
cli resume x >/dev/null
id=$(cli submit x '{}' --expires-in 1h)
cli wait "$id" >/dev/null
expect_eq "started in time" "$(get "$id" .job.state)" '"succeeded"'
# Past its deadline at submit, on a running queue: cancelled, never started.
id=$(raw '{"op":"submit","queue":"x","payload":{},"expires_at":1}' | jq .id)
cli wait "$id" >/dev/null 2>&1 || true
expect_eq "expired before any claim" "$(get "$id" '[.job.state, .job.error, .job.attempt, (.job.attempts | length)]')" '["cancelled","expired",0,0]'
expect_eq "jobq_jobs_expired_total" "$(metric 'jobq_jobs_expired_total{queue="x"}')" 3
# At claim time: jobqd restarts after the deadline of a waiting job that claims first (its
# priority); the claims of the start come before the expiry sweep's first run, so the claim
# itself must cancel it rather than start it.
a=$(cli submit z '{}')
poll_until "job $a started" '[ -e "$T/started.$a" ]'
b=$(cli submit z '{}' --priority 10 --expires-in 1s)
b_deadline=$(($(get "$b" .job.created_at) + 1000)) # not "deadline": poll_until has a local of that name
kill9_jobqd
poll_until "job $b's deadline passed" '[ "$(date +%s%3N)" -gt "$b_deadline" ]' # the time is the point
start_jobqd
poll_until "job $b ended or started" '[ "$(get "$b" .job.state)" != \"ready\" ]'
expect_eq "a job past its deadline at claim time" "$(get "$b" '[.job.state, .job.error, .job.attempt]')" '["cancelled","expired",0]'
[ ! -e "$T/started.$b" ] || fail "job $b started after its deadline"
touch "$T/go.$a"
cli wait "$a" >/dev/null
ok "expiry: jobs on a paused queue expire at their deadline (cancelled, error expired, counted); one started in time runs"

# ---- snooze: no attempt spent, runs again after the delay ----
# snoozed JOB: the job succeeded in its first attempt after two snoozes of >= 700 ms each.
snoozed() {
    local id=$1
    cli wait "$id" >/dev/null || fail "job $id did not succeed: $(cli --json get "$id")"
    expect_eq "job $id after two snoozes" "$(get "$id" '[.job.state, .job.attempt]')" '["succeeded",1]'
    expect_eq "job $id's history" "$(get "$id" '[.job.attempts[].kind]')" '["snoozed","snoozed","success"]'
    expect_eq "job $id's attempt numbers" "$(get "$id" '[.job.attempts[].attempt]')" '[1,1,1]'
    local gaps
    gaps=$(get "$id" '[.job.attempts as $a | range(1; $a | length) | $a[.].started_at - $a[. - 1].finished_at] | map(. >= 650) | all')
    expect_eq "job $id ran again only after each snooze's delay" "$gaps" true
}
id=$(cli submit sx '{}')
snoozed "$id"
expect_eq "the command saw attempt 1 each time" "$(cut -d' ' -f2 "$T/seen.$id" | sort -u)" "attempt=1"
ok "snooze from an exec handler (exit 76, snooze 700ms on the control fd): attempts not spent, runs again after the delay"

# A remote worker: the fail op's "snooze", then jobq work's exec contract.
id=$(cli submit sw '{}')
r=$(raw '{"op":"fetch","queues":["sw"],"limit":1}')
lease=$(jq -r '.jobs[0].lease' <<<"$r")
expect_eq "fetched" "$(jq -r '.jobs[0].id' <<<"$r")" "$id"
t0=$(date +%s%3N)
expect_eq "fail with snooze" "$(raw "{\"op\":\"fail\",\"id\":$id,\"lease\":\"$lease\",\"snooze\":\"1h\",\"error\":\"busy\"}" | jq -c '[.ok, .job.state, .job.attempt]')" '[true,"scheduled",0]'
run_at=$(get "$id" .job.run_at)
[ "$run_at" -ge $((t0 + 3600000)) ] || fail "snoozed 1h: run_at $run_at"
expect_eq "history" "$(get "$id" '[.job.attempts[].kind, .job.error]')" '["snoozed","busy"]'
cli cancel "$id" >/dev/null
# libjobq's jobq_worker_snooze.
: "${JOBQ_SNOOZEX:?JOBQ_SNOOZEX must name the jobq-snoozex test worker}"
id=$(cli submit sw '{}')
t0=$(date +%s%3N)
expect_eq "jobq_worker_snooze" "$("$JOBQ_SNOOZEX" "$SOCK" sw 60000)" "$id"
expect_eq "snoozed by libjobq" "$(get "$id" '[.job.state, .job.attempt, .job.error, [.job.attempts[].kind]]')" '["scheduled",0,"not yet",["snoozed"]]'
[ "$(get "$id" .job.run_at)" -ge $((t0 + 60000)) ] || fail "jobq_worker_snooze's delay: run_at $(get "$id" .job.run_at)"
cli cancel "$id" >/dev/null
id=$(cli submit sw '{}')
"$JOBQ" --url "$SOCK" work sw -- "$T/snoozy.sh" 2>"$T/work.log" &
WORKER=$!
CLEANUP_PIDS+=("$WORKER")
snoozed "$id"
kill -TERM "$WORKER"
wait "$WORKER" || true
grep -q "job $id queue sw: snoozed" "$T/work.log" || fail "jobq work's line: $(cat "$T/work.log")"
ok "snooze from a remote worker (fail with snooze; jobq work with exit 76): attempts not spent, runs again after the delay"

# A webhook: 202 with Jobq-Snooze twice, then 200.
id=$(raw "{\"op\":\"submit\",\"queue\":\"sh\",\"payload\":{}}" | jq .id)
cli wait "$id" >/dev/null || fail "webhook job $id: $(cli --json get "$id")"
expect_eq "webhook job after two snoozes" "$(get "$id" '[.job.state, .job.attempt, [.job.attempts[].kind]]')" '["succeeded",1,["snoozed","snoozed","success"]]'
gap=$(awk '{print $1}' "$T/hooks.log" | sed -n '2,3p' | paste -sd' ' | awk '{print $2 - $1}')
[ "$gap" -ge 950 ] || fail "Jobq-Snooze: 1 (second): the third POST came $gap ms after the second"
ok "snooze from a webhook (2xx with Jobq-Snooze): attempts not spent, runs again after the delay"

stop_jobqd # a clean exit (under a sanitizer build: no leak)
