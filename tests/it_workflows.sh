#!/usr/bin/env bash
# it_workflows.sh: groups report each member's outcome and submit their on_complete job exactly
# once, even when jobqd is killed -9 while the last members finish; dependent jobs wait for
# their parents, run only after they succeeded, are cancelled (in cascade) when one dies, and
# keep waiting across a restart; a queue with rate = 50/s starts 45-55 jobs a second.
. "$(dirname "$0")/lib.sh"
# 1,000 exec jobs on a busy 2-core machine may take minutes: poll for longer than the default.
export JOBQ_POLL_TIMEOUT=${JOBQ_POLL_TIMEOUT:-240}

# The handler: payloads with "fail" are a permanent failure (exit 65: dead at once); those
# with "gate" hold until $T/release exists; every run is logged with its job id.
cat >"$T/work.sh" <<SH
#!/bin/sh
p=\$(cat)
echo "\$JOBQ_JOB_ID" >>"$T/runs"
case "\$p" in *gate*) while [ ! -e "$T/release" ]; do sleep 0.05; done ;; esac
case "\$p" in *fail*) exit 65 ;; esac
exit 0
SH
chmod +x "$T/work.sh"
write_config "[queue.work]
command = $T/work.sh
concurrency = 16
max_attempts = 3
backoff_base = 10ms
breaker_failures = 100000
[queue.report]
[queue.hold]
command = $T/work.sh
concurrency = 4
[queue.quick]
command = /bin/true
retention_succeeded = 0s
[queue.unlimited]
command = /bin/true
concurrency = 8
[queue.limited]
command = /bin/true
concurrency = 8
rate = 50/s"
start_jobqd
DB="$T/jobq.db"
q() { sqlite3 -cmd '.timeout 5000' "$DB" "$1"; }

# ---- a group of 1,000: 20 fail, 9 hold until released ----
for i in $(seq 1 1000); do
    if [ $((i % 50)) = 0 ]; then
        echo "{\"i\":$i,\"fail\":true}"
    elif [ "$i" -gt 990 ]; then
        echo "{\"i\":$i,\"gate\":true}"
    else
        echo "{\"i\":$i}"
    fi
done >"$T/group.ndjson"
G=$(cli submit work --batch "$T/group.ndjson" --group --on-complete 'report:{"notify":"ops"}')
[[ "$G" =~ ^[0-9]+$ ]] || fail "submit --group printed '$G', not a group id"
cli get --group "$G" --json | jq -e '.group.size == 1000 and .group.done == false' >/dev/null ||
    fail "get --group: $(cli get --group "$G" --json)"
# Every member but the 9 held ones ends; then they are released and jobqd is killed at once,
# while the last members finish.
poll_until "991 members ended" \
    "cli get --group $G --json | jq -e '.group.counts | .succeeded + .dead == 991' >/dev/null"
expect_eq "held members running" "$(cli get --group "$G" --json | jq .group.counts.running)" 9
expect_eq "no completion job before the end" "$(q "select count(*) from jobs where queue='report'")" 0
touch "$T/release"
kill9_jobqd
start_jobqd
out=$(cli wait --group "$G" --timeout 60s --json) || true
jq -e '.done == true and (.jobs | length) == 1000' <<<"$out" >/dev/null ||
    fail "wait --group after the crash: $out"
expect_eq "members succeeded" "$(jq '[.jobs[] | select(.state == "succeeded")] | length' <<<"$out")" 980
expect_eq "members dead" "$(jq '[.jobs[] | select(.state == "dead")] | length' <<<"$out")" 20
expect_eq "dead members are the failing ones" \
    "$(jq -c '[.jobs[] | select(.state == "dead") | .id]' <<<"$out")" \
    "$(q "select json_group_array(id) from (select id from jobs where group_id=$G and payload like '%fail%' order by id)")"
cli wait --group "$G" --timeout 1s >"$T/wait.txt" && fail "wait --group exited 0 with dead members"
grep -q "succeeded 980" "$T/wait.txt" || fail "wait --group text: $(cat "$T/wait.txt")"
expect_eq "completion jobs" "$(q "select count(*) from jobs where queue='report'")" 1
OC=$(q "select id from jobs where queue='report'")
expect_eq "group names its completion job" "$(cli get --group "$G" --json | jq .group.on_complete.id)" "$OC"
cli get "$OC" --json | jq -e --argjson g "$G" '.job.payload | .group == $g and .payload.notify == "ops"
    and .succeeded == 980 and .dead == 20 and .cancelled == 0 and (.members | length) == 1000' \
    >/dev/null || fail "completion payload: $(cli get "$OC" --json | jq -c '.job.payload | del(.members)')"
# Another restart does not submit it again.
stop_jobqd
start_jobqd
expect_eq "completion jobs after a restart" "$(q "select count(*) from jobs where queue='report'")" 1
ok "a group of 1000 reports 980 succeeded and 20 dead; its completion job exists once across kill -9"

# Retention deletes a finished group once it has deleted its members.
printf '{}\n{}\n{}\n' >"$T/small.ndjson"
G2=$(cli submit quick --batch "$T/small.ndjson" --group)
poll_until "retention deletes the group" "[ \$(q \"select count(*) from groups where id = $G2\") = 0 ]"
err=$(cli get --group "$G2" 2>&1) && fail "get of a deleted group succeeded"
grep -q "no group with id $G2" <<<"$err" || fail "get of a deleted group: $err"

# ---- dependencies ----
rm -f "$T/release"
P1=$(cli submit hold '{"gate":true}')
P2=$(cli submit hold '{"p":2}')
C=$(cli submit hold '{"child":1}' --after "$P1,$P2")
cli wait "$P2" --timeout 30s >/dev/null
expect_eq "child state while a parent runs" "$(cli get "$C" --json | jq -r .job.state)" waiting
cli explain "$C" | grep -q "waiting for job $P1" || fail "explain of a waiting job: $(cli explain "$C")"
# It keeps waiting across a restart (the parent is recovered and run again).
kill9_jobqd
start_jobqd
expect_eq "child state after a restart" "$(cli get "$C" --json | jq -r .job.state)" waiting
touch "$T/release"
cli wait "$C" --timeout 30s >/dev/null || fail "the child did not succeed: $(cli get "$C" --json)"
p1_end=$(cli get "$P1" --json | jq .job.finished_at)
c_start=$(cli get "$C" --json | jq .job.started_at)
[ "$c_start" -ge "$p1_end" ] || fail "the child started at $c_start, before its parent ended at $p1_end"
ok "a dependent job waits (across a restart) and runs after its parents succeeded"

D=$(cli submit hold '{"fail":true}')
E=$(cli submit hold '{"child":2}' --after "$D")
F=$(cli submit hold '{"grandchild":1}' --after "$E")
A=$(cli submit hold '{"always":1}' --after "$D" --after-policy always)
cli wait "$D" --timeout 30s >/dev/null && fail "the failing parent succeeded"
cli wait "$E" "$F" "$A" --timeout 30s >/dev/null || true
expect_eq "child of a dead parent" "$(cli get "$E" --json | jq -r '.job.state + ": " + .job.error')" \
    "cancelled: parent job $D ended dead"
expect_eq "grandchild" "$(cli get "$F" --json | jq -r '.job.state + ": " + .job.error')" \
    "cancelled: parent job $E ended cancelled"
expect_eq "after_policy always" "$(cli get "$A" --json | jq -r .job.state)" succeeded
grep -qx "$E" "$T/runs" && fail "the cancelled child ran"
# A job submitted after its parent died is cancelled at once; an unknown parent is refused.
L=$(cli submit hold '{"late":1}' --after "$D")
expect_eq "late child" "$(cli get "$L" --json | jq -r .job.state)" cancelled
err=$(cli submit hold '{}' --after 99999999 2>&1) && fail "after an unknown job was accepted"
grep -q "99999999, which does not exist" <<<"$err" || fail "unknown parent message: $err"
# Cancelling a waiting job cancels its own dependents.
rm -f "$T/release"
H=$(cli submit hold '{"gate":true}')
W=$(cli submit hold '{}' --after "$H")
W2=$(cli submit hold '{}' --after "$W")
cli cancel "$W" >/dev/null
expect_eq "dependent of a cancelled waiting job" "$(cli get "$W2" --json | jq -r .job.state)" cancelled
touch "$T/release"
stats=$(cli stats --json)
expect_eq "waiting counted" "$(jq .queues.hold.waiting <<<"$stats")" \
    "$(q "select count(*) from jobs where queue='hold' and state=7")"
expect_eq "cancelled counted" "$(jq .queues.hold.cancelled <<<"$stats")" \
    "$(q "select count(*) from jobs where queue='hold' and state=6")"
ok "dead parents cancel their dependents in cascade; after_policy always runs anyway"

# ---- a whole graph in one request ----
# 1,000 jobs as a binary tree: jobs[i] waits for jobs[(i-1)/2] of the same batch.
jq -nc '{op: "submit_batch", queue: "work", jobs: [range(0; 1000) as $i | {payload: {n: $i}} +
    (if $i > 0 then {after: [{batch: ((($i - 1) / 2) | floor)}]} else {} end)]}' >"$T/dag.json"
: >"$T/runs"
r=$(raw "$(cat "$T/dag.json")")
expect_eq "the graph is stored" "$(jq -r '.ok, (.ids | length)' <<<"$r" | tr '\n' ' ')" "true 1000 "
jq -r '.ids[]' <<<"$r" >"$T/dag.ids"
last=$(tail -n 1 "$T/dag.ids")
expect_eq "a leaf waits" "$(cli get "$last" --json | jq -r .job.state)" waiting
cli wait $(cat "$T/dag.ids") --timeout 200s >/dev/null || fail "the graph did not finish"
# Each job started after its parent had started (and ended): its run is logged later.
awk 'NR == FNR { idx[$1] = FNR - 1; id[FNR - 1] = $1; next } ($1 in idx) { pos[idx[$1]] = FNR }
    END { for (i = 1; i < 1000; i++) { p = int((i - 1) / 2);
            if (!(i in pos) || !(p in pos) || pos[i] <= pos[p]) { print "jobs[" i "]"; exit 1 } } }' \
    "$T/dag.ids" "$T/runs" >"$T/dag.bad" || fail "$(cat "$T/dag.bad") ran before its parent"
before=$(q "select count(*) from jobs")
bad=$(jq -c '.jobs[3].after = [{batch: 7}]' "$T/dag.json")
r=$(raw "$bad")
expect_eq "a reference to a later member" "$(jq -r .error.code <<<"$r")" invalid_argument
jq -r .error.message <<<"$r" | grep -q 'names jobs\[7\], which does not come before this job.*jobs\[3\]' ||
    fail "the message of a forward reference: $(jq -r .error.message <<<"$r")"
r=$(raw '{"op":"submit","queue":"work","payload":1,"after":[{"batch":0}]}')
expect_eq "a batch reference outside a batch" "$(jq -r .error.code <<<"$r")" invalid_argument
expect_eq "nothing of a refused graph is stored" "$(q "select count(*) from jobs")" "$before"
ok "a 1,000-job graph in one request runs in dependency order; a forward reference is refused whole"

# ---- rate = 50/s ----
# The same handler without a rate first: what this machine runs unlimited, now. The lower
# bound below holds only when that is well above the rate, four times it (a machine that runs
# 30 jobs a second cannot show 50/s, with or without a limiter; valgrind is such a machine,
# and a sanitizer build on a loaded machine that runs 120 a second fell short of 450 too).
seq 1 300 | sed 's/.*/{}/' >"$T/free.ndjson"
cli submit unlimited --batch "$T/free.ndjson" >/dev/null
poll_until "300 unlimited jobs" \
    "[ \$(q \"select count(*) from jobs where queue='unlimited' and state=4\") = 300 ]"
free_rate=$(q "select cast(300000.0 / max(1, max(finished_at) - min(started_at)) as int) from jobs where queue='unlimited'")
seq 1 700 | sed 's/.*/{}/' >"$T/rate.ndjson"
cli submit limited --batch "$T/rate.ndjson" >/dev/null
poll_until "10 s of starts" \
    "[ \$(q \"select coalesce(max(started_at) - min(started_at), 0) from jobs where queue='limited'\") -ge 10000 ]"
first=$(q "select min(started_at) from jobs where queue='limited'")
n=$(q "select count(*) from jobs where queue='limited' and started_at < $first + 10000")
[ "$n" -le 550 ] || fail "rate = 50/s started $n jobs in 10 s (want at most 550)"
if [ "$free_rate" -ge 200 ]; then
    [ "$n" -ge 450 ] || fail "rate = 50/s started $n jobs in 10 s (want 450-550; unlimited: $free_rate/s)"
    ok "rate = 50/s started $n jobs in the first 10 s (unlimited: $free_rate jobs/s)"
else
    ok "rate = 50/s started $n jobs in the first 10 s, at most 550; this machine ran only $free_rate jobs/s unlimited, too few to check the lower bound"
fi
stop_jobqd
