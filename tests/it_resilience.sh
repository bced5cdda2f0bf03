#!/usr/bin/env bash
# it_resilience.sh: retries end in dead after exactly max_attempts with every attempt
# recorded; exit 65 is dead at once; the circuit breaker holds a failing queue off and lets
# one probe through per cooldown; idempotency keys under 100 concurrent submits; explain;
# bulk retry; retention keeps the database from growing.
. "$(dirname "$0")/lib.sh"

mkfifo "$T/calls"
exec 3<>"$T/calls"
cat >"$T/fail.sh" <<'SH'
#!/bin/sh
echo "boom $JOBQ_ATTEMPT" >&2
exit 1
SH
cat >"$T/exit65.sh" <<'SH'
#!/bin/sh
exit 65
SH
# The downstream of queue "down": fails until $T/up exists; every call is counted.
cat >"$T/down.sh" <<SH
#!/bin/sh
echo "\$JOBQ_JOB_ID" >>"$T/invocations"
echo "\$JOBQ_JOB_ID" >"$T/calls"
[ -e "$T/up" ] || exit 1
SH
cat >"$T/hang.sh" <<SH
#!/bin/sh
echo "\$JOBQ_JOB_ID" >"$T/calls"
exec sleep 300
SH
chmod +x "$T"/*.sh
write_config "[queue.fail]
command = $T/fail.sh
max_attempts = 4
backoff_base = 10ms
backoff_max = 40ms
breaker_failures = 1000
[queue.slowretry]
command = $T/fail.sh
backoff_base = 1h
breaker_failures = 1000
[queue.permanent]
command = $T/exit65.sh
[queue.down]
command = $T/down.sh
max_attempts = 100
backoff_base = 10ms
backoff_max = 10ms
breaker_failures = 3
; long enough that no second probe starts while a slow build (ASan, valgrind) reads the counts
breaker_cooldown = 3s
breaker_probes = 1
[queue.hang]
command = $T/hang.sh
concurrency = 1
[queue.keyed]
[queue.ret]
command = /bin/true
concurrency = 8
retention_succeeded = 0s"
start_jobqd

job() { raw "{\"op\":\"get\",\"id\":$1}" | jq -c .job; }
wait_job() { raw "{\"op\":\"wait\",\"id\":$1,\"timeout\":\"60s\"}" | jq -c '.jobs[0]'; }
explain() { raw "{\"op\":\"explain\",\"id\":$1}" | jq -r .explain; }
breaker() { raw '{"op":"stats"}' | jq -r ".queues.$1.breaker"; }
invocations() { wc -l <"$T/invocations"; }

# Retries: dead after exactly max_attempts, each attempt in the history.
id=$(raw '{"op":"submit","queue":"fail","payload":1}' | jq .id)
j=$(wait_job "$id")
expect_eq "state after retries" "$(jq -r .state <<<"$j")" dead
expect_eq "attempts used" "$(jq -r .attempt <<<"$j")" 4
h=$(job "$id")
expect_eq "attempts recorded" "$(jq '.attempts | length' <<<"$h")" 4
expect_eq "attempt numbers" "$(jq -c '[.attempts[].attempt]' <<<"$h")" "[1,2,3,4]"
expect_eq "attempt kinds" "$(jq -c '[.attempts[].kind] | unique' <<<"$h")" '["exit"]'
expect_eq "stderr of attempt 3" "$(jq -r '.attempts[2].error' <<<"$h" | tail -n 1)" "boom 3"
cli get "$id" | grep -q 'ATTEMPT' || fail "jobq get does not show the attempts table"
ok "an always-failing job is dead after exactly 4 attempts, each recorded"

id=$(raw '{"op":"submit","queue":"permanent","payload":1}' | jq .id)
j=$(wait_job "$id")
expect_eq "exit 65" "$(jq -r '"\(.state) \(.attempt)"' <<<"$j")" "dead 1"
expect_eq "exit 65 kind" "$(job "$id" | jq -r '.attempts[0].kind')" permanent
ok "exit 65 is dead after one attempt"

# Bulk retry of the dead jobs of queue fail, and retry of one job.
r=$(raw '{"op":"retry","queue":"fail","state":"dead"}')
expect_eq "bulk retry" "$(jq -r .retried <<<"$r")" 1
r=$(raw "{\"op\":\"retry\",\"id\":$id}")
expect_eq "retry one" "$(jq -r '"\(.job.state) \(.job.attempt)"' <<<"$r")" "ready 0"
sid=$(raw '{"op":"submit","queue":"keyed","payload":1,"delay":"1h"}' | jq .id)
r=$(raw "{\"op\":\"retry\",\"id\":$sid}")
expect_eq "retry of a job that is not dead" "$(jq -r .error.code <<<"$r")" invalid_state
raw "{\"op\":\"cancel\",\"id\":$sid}" >/dev/null
ok "retry: one job and in bulk"

# Circuit breaker: 3 failures open it; nothing starts while open; one probe per cooldown.
a=$(raw '{"op":"submit","queue":"down","payload":1}' | jq .id)
b=$(raw '{"op":"submit","queue":"down","payload":2}' | jq .id)
c=$(raw '{"op":"submit","queue":"down","payload":3}' | jq .id)
for i in 1 2 3; do read -r _ <&3; done
poll_until "the breaker opens" '[ "$(breaker down)" = open ]'
expect_eq "calls before opening" "$(invocations)" 3
explain "$a" | grep -q 'circuit of queue down is open until' || fail "explain: $(explain "$a")"
grep -q 'event=breaker_open queue=down' "$LOG" || fail "breaker_open not logged"
read -r probe <&3 # the cooldown ends: one probe
expect_eq "calls after one cooldown" "$(invocations)" 4
poll_until "the failed probe reopens the breaker" '[ "$(breaker down)" = open ]'
expect_eq "no call while open" "$(invocations)" 4
touch "$T/up"
read -r probe <&3 # the next probe succeeds and closes the circuit
r=$(raw "{\"op\":\"wait\",\"ids\":[$a,$b,$c],\"timeout\":\"30s\"}")
expect_eq "all ran after the circuit closed" "$(jq -r '[.jobs[].state] | unique | join(",")' <<<"$r")" succeeded
expect_eq "breaker closed" "$(breaker down)" closed
expect_eq "calls in all: 3 failures, 1 failed probe, 1 good probe, 2 others" "$(invocations)" 7
grep -q 'event=breaker_closed queue=down' "$LOG" || fail "breaker_closed not logged"
ok "circuit breaker: opens after 3, one probe per cooldown, closes on success"

# Idempotency: 100 concurrent submits with one key make one job.
pids=()
for i in $(seq 1 100); do
    cli submit keyed '{"order":7}' --key order-7 >"$T/key.$i" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a keyed submit failed"; done
expect_eq "distinct ids" "$(cat "$T"/key.* | awk '{print $1}' | sort -u | wc -l)" 1
expect_eq "jobs stored" "$(raw '{"op":"stats"}' | jq -r .queues.keyed.ready)" 1
kid=$(awk '{print $1; exit}' "$T/key.1")
raw "{\"op\":\"cancel\",\"id\":$kid}" >/dev/null
r=$(raw '{"op":"submit","queue":"keyed","payload":{"order":7},"key":"order-7"}')
expect_eq "key after its job ended" "$(jq -r '"\(.id) \(.duplicate)"' <<<"$r")" "$kid true"
r=$(raw '{"op":"submit","queue":"keyed","payload":{"order":8},"key":"order-7"}')
expect_eq "same key, other payload" "$(jq -r .error.code <<<"$r")" key_conflict
ok "100 concurrent submits with one key: one job"

# Explain in each situation.
id=$(raw '{"op":"submit","queue":"fail","payload":1,"delay":"1h"}' | jq .id)
explain "$id" | grep -q '^scheduled until' || fail "explain scheduled: $(explain "$id")"
id=$(raw '{"op":"submit","queue":"slowretry","payload":1}' | jq .id)
poll_until "job $id is retrying" '[ "$(job "$id" | jq -r .state)" = retrying ]'
explain "$id" | grep -q '^waiting for its backoff until .* after attempt 1 of 8 failed: exit status 1' ||
    fail "explain backoff: $(explain "$id")"
h1=$(raw '{"op":"submit","queue":"hang","payload":1}' | jq .id)
read -r _ <&3
h2=$(raw '{"op":"submit","queue":"hang","payload":2}' | jq .id)
explain "$h1" | grep -q '^running since' || fail "explain running: $(explain "$h1")"
explain "$h2" | grep -q "all 1 concurrency slots of queue hang are busy (running: $h1)" ||
    fail "explain slots: $(explain "$h2")"
raw '{"op":"pause","queue":"hang"}' >/dev/null
explain "$h2" | grep -q 'queue hang is paused' || fail "explain paused: $(explain "$h2")"
k=$(raw '{"op":"submit","queue":"keyed","payload":1}' | jq .id)
explain "$k" | grep -q 'has no command' || fail "explain no consumer: $(explain "$k")"
cli explain "$h2" | grep -q paused || fail "jobq explain"
raw "{\"op\":\"cancel\",\"id\":$h1}" >/dev/null
ok "explain: scheduled, backoff, running, slots busy, paused, no consumer"

# Retention: with retention_succeeded = 0s the database stops growing under steady load.
pages() { sqlite3 "$T/jobq.db" 'PRAGMA page_count'; }
awk 'BEGIN {
    printf "{\"op\":\"submit_batch\",\"queue\":\"ret\",\"jobs\":["
    for (i = 1; i < 500; i++) printf "{\"payload\":{\"i\":%d,\"pad\":\"0123456789abcdef0123456789abcdef\"}},", i
    printf "{\"payload\":0}]}"
}' >"$T/round.json"
ret_left() { raw '{"op":"stats"}' | jq -r '.queues.ret | .ready + .running + .succeeded'; }
round() {
    raw_file "$T/round.json" | jq -e .ok >/dev/null
    poll_until "the round's jobs are done and deleted" '[ "$(ret_left)" = 0 ]'
}
round
first=$(pages)
round
round
round
last=$(pages)
[ "$last" -le $((first + first / 10 + 10)) ] || fail "database grew from $first to $last pages"
ok "retention: 4 rounds of 500 jobs, database $first -> $last pages"
stop_jobqd
