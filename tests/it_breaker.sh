#!/usr/bin/env bash
# it_breaker.sh: the default circuit breaker judges failure rates: a handler that fails 10% of
# the time at full speed never opens it (the rule that counted 5 consecutive failures opened
# in about 4 of 10 such minutes), and a downstream that is down opens it after
# breaker_min_calls attempts, with explain saying why. JOBQ_BREAKER_SECONDS (default 15; the
# long run: 60) is how long the flaky handler runs.
. "$(dirname "$0")/lib.sh"
SECONDS_FLAKY=${JOBQ_BREAKER_SECONDS:-15}

# Fails when a random byte is below 26: 10.2% of the time.
cat >"$T/flaky.sh" <<'SH'
#!/bin/sh
test "$(od -An -N1 -tu1 /dev/urandom)" -ge 26
SH
chmod +x "$T/flaky.sh"
SERVER_EXTRA="http = 127.0.0.1:0" write_config "[queue.flaky]
command = $T/flaky.sh
concurrency = 8
max_attempts = 100
backoff_base = 10ms
backoff_max = 10ms
retention_succeeded = 0s
[queue.down]
command = /bin/false
concurrency = 1
max_attempts = 1
breaker_cooldown = 1h"
start_jobqd
port=$(grep -o 'event=http_listen addr=127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*://')
metric() { curl -s "http://127.0.0.1:$port/metrics" | awk -v k="$1" '$1 == k && !done { print $2; done = 1 }'; }
opened='jobq_breaker_transitions_total{queue="flaky",to="open"}'
failed='jobq_jobs_failed_total{queue="flaky"}'
started='jobq_jobs_started_total{queue="flaky"}'

# The flaky handler, kept busy: more jobs than it can run in the time.
seq 1 50000 | sed 's/.*/{}/' >"$T/jobs.ndjson"
cli submit flaky --batch "$T/jobs.ndjson" >/dev/null
t_end=$(($(date +%s) + SECONDS_FLAKY))
while [ "$(date +%s)" -lt "$t_end" ]; do
    [ "$(metric "$opened")" = 0 ] || fail "the breaker of queue flaky opened: $(cli stats --json)"
    sleep 1 # a soak: the time passing is what is tested
done
n_started=$(metric "$started")
n_failed=$(metric "$failed")
expect_eq "opened" "$(metric "$opened")" 0
[ "$n_failed" -ge 20 ] || fail "only $n_failed failures in $SECONDS_FLAKY s: too few to judge"
ok "10% failures for ${SECONDS_FLAKY} s (${n_started} attempts, ${n_failed} failed): the breaker stays closed"
cli pause flaky >/dev/null

# Down: every attempt fails; the circuit opens after breaker_min_calls (20) attempts.
seq 1 100 | sed 's/.*/{}/' >"$T/down.ndjson"
cli submit down --batch "$T/down.ndjson" >/dev/null
poll_until "the breaker of queue down opens" \
    '[ "$(cli stats --json | jq -r .queues.down.breaker)" = open ]'
expect_eq "attempts before it opened" "$(cli stats --json | jq .queues.down.dead)" 20
id=$(cli list --queue down --state ready --limit 1 --json | jq -r '.jobs[0].id')
cli explain "$id" | grep -q "is open until .*: 20 of the last 20 attempts failed" ||
    fail "explain of a job behind an open circuit: $(cli explain "$id")"
grep -q 'event=breaker_open queue=down reason="20 of the last 20 attempts failed"' "$LOG" ||
    fail "no breaker_open line with its reason"
ok "a downstream that is down opens the circuit after 20 attempts; explain and the log say why"
stop_jobqd
