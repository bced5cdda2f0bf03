#!/usr/bin/env bash
# it_reload.sh: SIGHUP reads the config file again: a queue's concurrency raised from 1 to 4
# starts the jobs waiting for it while the job that ran before the reload goes on and
# succeeds, and a held wait (an open connection) is answered; a new queue takes jobs; a new
# schedule is listed; [server] changes are logged as needing a restart; a bad file is refused
# whole with FILE:LINE in the log and the config in use stays.
. "$(dirname "$0")/lib.sh"

# slow's jobs note that they started, then hold until $T/release exists.
cat >"$T/slow.sh" <<SH
#!/bin/sh
echo "\$JOBQ_JOB_ID" >>"$T/started"
while [ ! -e "$T/release" ]; do sleep 0.05; done
echo "done \$JOBQ_JOB_ID"
SH
chmod +x "$T/slow.sh"
: >"$T/started"
QUEUES="[queue.slow]
command = $T/slow.sh
concurrency = 1
max_attempts = 1"
write_config "$QUEUES"
start_jobqd

# wait_line FILE PATTERN [SECONDS]: returns once FILE has a line matching PATTERN (an event).
wait_line() {
    timeout "${3:-30}" grep -q -m1 -E "$2" <(tail -F -n +1 "$1" 2>/dev/null) ||
        fail "no line /$2/ in $1 within ${3:-30}s"
}
# hup: sends SIGHUP and returns once jobqd logged its verdict (the n-th reload or refusal).
HUPS=0
hup() {
    HUPS=$((HUPS + 1))
    kill -HUP "$JOBQD_PID"
    timeout 30 bash -c "until [ \$(grep -cE 'event=(reloaded|reload_refused)' '$LOG') -ge $HUPS ]; do sleep 0.02; done" ||
        fail "jobqd did not answer SIGHUP #$HUPS: $(tail -n 5 "$LOG")"
}

first=$(cli submit slow '{"n":1}')
wait_line "$T/started" "^$first\$"
ids=("$first")
for i in 2 3 4 5; do ids+=("$(cli submit slow "{\"n\":$i}")"); done
# A wait for the first job, held on its connection across the reload.
cli wait "$first" >"$T/wait.out" 2>&1 &
WAITER=$!
expect_eq "running before the reload" "$(cli stats --json | jq .queues.slow.running)" 1
if cli submit fresh '{}' 2>/dev/null; then fail "queue fresh exists before the reload"; fi

# ---- concurrency 1 -> 4, a new queue, a new schedule, a [server] change ----
SERVER_EXTRA="durability = normal" write_config "$(sed 's/^concurrency = 1$/concurrency = 4/' <<<"$QUEUES")
[queue.fresh]
command = /bin/true
[schedule.hup]
cron = 0 0 1 1 *
queue = fresh"
hup
grep -q "event=reloaded" "$LOG" || fail "no reloaded line: $(tail -n 5 "$LOG")"
# Three more of slow's jobs start; the first is still the same attempt.
poll_until "4 jobs of slow running" "[ \$(wc -l <'$T/started') -ge 4 ]"
expect_eq "running after the reload" "$(cli stats --json | jq .queues.slow.running)" 4
jq -e '.job.state == "running" and .job.attempt == 1' <<<"$(cli get "$first" --json)" >/dev/null ||
    fail "the job started before the reload: $(cli get "$first" --json)"
grep -q "event=reload_needs_restart key=durability" "$LOG" ||
    fail "no needs-restart line for durability: $(grep reload "$LOG")"
ok "SIGHUP: concurrency 1 -> 4 starts 3 more jobs; the running one is untouched; [server] needs a restart"

f=$(cli submit fresh '{}')
cli wait "$f" >/dev/null || fail "a job of the new queue: $(cli get "$f" --json)"
jq -e '.schedules[] | select(.name == "hup") | .source == "config" and .queue == "fresh"' \
    <<<"$(cli schedules --json)" >/dev/null || fail "schedule hup: $(cli schedules --json)"
ok "a queue and a schedule added by a reload work"

touch "$T/release"
wait "$WAITER" || fail "the wait held across the reload: $(cat "$T/wait.out")"
for id in "${ids[@]}"; do
    # Each of the others notices the release on its own 50 ms poll: wait for its end.
    cli wait "$id" >/dev/null || fail "job $id did not succeed: $(cli get "$id" --json)"
    jq -e '.job.state == "succeeded" and .job.attempt == 1' <<<"$(cli get "$id" --json)" \
        >/dev/null || fail "job $id: $(cli get "$id" --json)"
done
expect_eq "the first job's output" "$(cli get "$first" --json | jq -r .job.result)" "done $first"
ok "the job running before the reload succeeded, and the wait held over it was answered"

# ---- a bad file is refused whole ----
write_config "[queue.slow]
command = $T/slow.sh
concurrency = 2
[queue.other]
concurrency = lots"
line=$(grep -n "^concurrency = lots" "$T/jobq.conf" | cut -d: -f1)
hup
grep -q "event=reload_refused reason=\"[^\"]*jobq.conf:$line: " "$LOG" ||
    fail "no refusal with jobq.conf:$line: $(grep reload_refused "$LOG")"
f=$(cli submit fresh '{}')
cli wait "$f" >/dev/null || fail "queue fresh after a refused reload"
jq -e '[.schedules[].name] == ["hup"]' <<<"$(cli schedules --json)" >/dev/null ||
    fail "schedules after a refused reload: $(cli schedules --json)"
ok "a bad file is refused whole with FILE:LINE in the log; the config in use stays"

# ---- an https queue whose CA file is unusable: refused whole, as at start ----
write_config "[queue.slow]
command = $T/slow.sh
concurrency = 2
[queue.tls]
url = https://127.0.0.1:9/hook
ca = $T/no-such-ca.pem"
hup
grep -q "event=reload_refused reason=\"\[queue.tls\] cannot verify https receivers with ca = $T/no-such-ca.pem" "$LOG" ||
    fail "no refusal of the unusable ca: $(grep reload_refused "$LOG" | tail -n 1)"
f=$(cli submit fresh '{}')
cli wait "$f" >/dev/null || fail "queue fresh after a refused reload"
ok "a reload whose https queue has an unusable ca file is refused whole, naming the queue and the file"

# ---- a section removed: the schedule stops, the queue keeps its settings ----
write_config "$QUEUES"
hup
expect_eq "schedules once hup's section is gone" "$(cli schedules --json | jq -c '[.schedules[].name]')" '[]'
grep -q "event=queue_removed queue=fresh" "$LOG" || fail "no queue_removed line"
f=$(cli submit fresh '{}')
cli wait "$f" >/dev/null || fail "queue fresh after its section was removed"
stop_jobqd
ok "a removed schedule stops; a removed queue keeps its settings until a restart"
