#!/usr/bin/env bash
# it_dedupe.sh: deduplication modes, job expiry and snooze against a real jobqd. Each dedupe
# mode under 100 concurrent submits of one key (100 `jobq submit` processes at once): exactly
# one job per the mode's rule; replace gives the waiting job the last payload; debounce
# pushes the run time and caps it at the first submit + debounce_max; until_done frees the
# key in the transaction that ends the job; replace leaves a running job alone and admits a
# new one. Waits are on events (`jobq wait`, a file a handler creates), never a sleep.
. "$(dirname "$0")/lib.sh"

# The blocking handler: notes that it started, then waits for the test's go file.
cat >"$T/block.sh" <<'SH'
#!/bin/sh
cat >"$DIR/payload.$JOBQ_JOB_ID"
touch "$DIR/started.$JOBQ_JOB_ID"
while [ ! -e "$DIR/go.$JOBQ_JOB_ID" ]; do sleep 0.02; done
SH
chmod +x "$T/block.sh"
export DIR="$T"

SERVER_EXTRA="http = 127.0.0.1:0" write_config "[queue.t]
command = /bin/true
[queue.u]
command = /bin/true
[queue.r]
command = $T/block.sh
[queue.d]
command = /bin/true
[queue.x]
command = /bin/true"
start_jobqd
port=$(grep -o 'event=http_listen addr=127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*://')
metric() { curl -s "http://127.0.0.1:$port/metrics" | awk -v k="$1" '$1 == k { v = $2 } END { print v }'; }

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
ok "debounce: 100 concurrent submits push one job's run time; it is capped at first submit + debounce_max"

# ---- expiry: a job not started by its deadline is cancelled as expired ----
cli pause x >/dev/null
id=$(cli submit x '{}' --expires-in 1500ms)
keep=$(cli submit x '{}' --expires-in 1h)
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
ok "expiry: jobs on a paused queue expire at their deadline (cancelled, error expired, counted); one started in time runs"
