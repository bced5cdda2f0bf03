#!/usr/bin/env bash
# it_exec.sh: consumers run jobs as processes under the exec contract: concurrency, priority
# order, delays, output capture, exit codes, timeouts that kill the whole process group,
# cancel of a running job.
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/slots"
mkfifo "$T/started"
exec 3<>"$T/started" # held open: no line is lost between reads
cat >"$T/overlap.sh" <<SH
#!/bin/sh
# Records how many jobs of the queue run at this moment.
mkdir "$T/slots/\$JOBQ_JOB_ID"
ls "$T/slots" | wc -l >>"$T/overlaps"
sleep 0.05
rmdir "$T/slots/\$JOBQ_JOB_ID"
SH
cat >"$T/order.sh" <<SH
#!/bin/sh
echo "\$JOBQ_JOB_ID" >>"$T/order"
SH
cat >"$T/env.sh" <<'SH'
#!/bin/sh
payload=$(cat)
echo "id=$JOBQ_JOB_ID queue=$JOBQ_QUEUE attempt=$JOBQ_ATTEMPT max=$JOBQ_MAX_ATTEMPTS payload=$payload"
echo "to stderr" >&2
exit "${EXIT:-0}"
SH
cat >"$T/exit65.sh" <<'SH'
#!/bin/sh
echo "bad payload" >&2
exit 65
SH
cat >"$T/family.sh" <<SH
#!/bin/sh
# A handler with a child of its own; both must die at the timeout.
sleep 300 &
echo \$! >"$T/child.pid"
echo \$\$ >"$T/started"
wait
SH
cat >"$T/sleeper.sh" <<SH
#!/bin/sh
echo \$\$ >"$T/started"
exec sleep 300
SH
cat >"$T/when.sh" <<SH
#!/bin/sh
date +%s%3N >"$T/started_at"
SH
chmod +x "$T"/*.sh

write_config "[queue.overlap]
command = $T/overlap.sh
concurrency = 3
[queue.order]
command = $T/order.sh
concurrency = 1
[queue.tempfail]
command = /bin/sh -c 'cat >/dev/null; date +%s%3N >>$T/tempfail.log; exit 75'
slow_down = 2s
max_attempts = 1
[queue.trace]
command = /bin/sh -c 'printf %s \"\$TRACEPARENT|\$TRACESTATE\"'
[queue.env]
command = $T/env.sh
max_attempts = 4
[queue.permanent]
command = $T/exit65.sh
max_attempts = 5
[queue.family]
command = $T/family.sh
timeout = 1s
max_attempts = 1
[queue.sleeper]
command = $T/sleeper.sh
[queue.when]
command = $T/when.sh"
start_jobqd

wait_job() { raw "{\"op\":\"wait\",\"id\":$1,\"timeout\":\"60s\"}" | jq -c '.jobs[0]'; }

# Concurrency: 30 jobs, at most 3 at once, and really concurrent.
ids=$(for i in $(seq 1 30); do printf '{"payload":%d},' "$i"; done)
r=$(raw "{\"op\":\"submit_batch\",\"queue\":\"overlap\",\"jobs\":[${ids%,}]}")
r=$(raw "{\"op\":\"wait\",\"ids\":$(jq -c .ids <<<"$r"),\"timeout\":\"60s\"}")
expect_eq "all 30 done" "$(jq -r .done <<<"$r")" true
expect_eq "all 30 succeeded" "$(jq '[.jobs[] | select(.state == "succeeded")] | length' <<<"$r")" 30
max=$(sort -n "$T/overlaps" | tail -n 1)
[ "$max" -le 3 ] || fail "concurrency 3 exceeded: $max jobs ran at once"
[ "$max" -ge 2 ] || fail "jobs never ran concurrently (max $max)"
ok "concurrency: at most 3 at once (max seen $max)"

# Priority, then run_at, then id: submit while paused, then resume.
raw '{"op":"pause","queue":"order"}' >/dev/null
a=$(raw '{"op":"submit","queue":"order","priority":0}' | jq .id)
b=$(raw '{"op":"submit","queue":"order","priority":10}' | jq .id)
c=$(raw '{"op":"submit","queue":"order","priority":0}' | jq .id)
d=$(raw '{"op":"submit","queue":"order","priority":5}' | jq .id)
raw '{"op":"resume","queue":"order"}' >/dev/null
raw "{\"op\":\"wait\",\"ids\":[$a,$b,$c,$d],\"timeout\":\"30s\"}" >/dev/null
expect_eq "start order" "$(tr '\n' ' ' <"$T/order")" "$b $d $a $c "
ok "priority order"

# The exec contract: stdin payload, JOBQ_* env, stdout as result, exit codes.
id=$(raw '{"op":"submit","queue":"env","payload":{"x":1}}' | jq .id)
j=$(wait_job "$id")
expect_eq "state" "$(jq -r .state <<<"$j")" succeeded
expect_eq "result" "$(jq -r .result <<<"$j")" "id=$id queue=env attempt=1 max=4 payload={\"x\":1}"
id=$(raw '{"op":"submit","queue":"permanent","payload":1}' | jq .id)
j=$(wait_job "$id")
expect_eq "exit 65 state" "$(jq -r .state <<<"$j")" dead
expect_eq "exit 65 attempts" "$(jq -r .attempt <<<"$j")" 1
jq -r .error <<<"$j" | grep -q 'bad payload' || fail "stderr tail missing from error: $j"
ok "exec contract: payload, env, result, exit 65 is dead at once"

# A timed-out handler and its own child are both gone.
id=$(raw '{"op":"submit","queue":"family","payload":1}' | jq .id)
read -r hpid <&3
j=$(wait_job "$id")
expect_eq "timeout state" "$(jq -r .state <<<"$j")" dead
jq -r .error <<<"$j" | grep -q 'timed out after 1000 ms' || fail "error does not say timeout: $j"
cpid=$(cat "$T/child.pid")
alive "$hpid" && fail "handler $hpid survived its timeout"
alive "$cpid" && fail "handler's child $cpid survived the timeout"
ok "timeout kills the handler's process group"

# Cancel of a running job kills it and records cancelled.
id=$(raw '{"op":"submit","queue":"sleeper","payload":1}' | jq .id)
read -r spid <&3
r=$(raw "{\"op\":\"cancel\",\"id\":$id}")
expect_eq "cancel running" "$(jq -r .job.state <<<"$r")" cancelled
alive "$spid" && fail "cancelled handler $spid still runs"
ok "cancel kills a running job"

# A delayed job never starts early.
r=$(raw '{"op":"submit","queue":"when","payload":1,"delay":"1500ms"}')
id=$(jq .id <<<"$r")
expect_eq "delayed state" "$(jq -r .state <<<"$r")" scheduled
j=$(wait_job "$id")
run_at=$(jq .run_at <<<"$j")
started=$(cat "$T/started_at")
[ "$started" -ge "$run_at" ] || fail "started at $started, before its run_at $run_at"
late=$((started - run_at))
[ "$late" -lt 2000 ] || fail "started $late ms after its run_at"
ok "delayed job started $late ms after its time, never before"

# The CLI's wait and submit --wait exit 0 only on success.
cli submit env '{"y":2}' --wait >/dev/null || fail "submit --wait of a good job did not exit 0"
rc=0; cli submit permanent '1' --wait >/dev/null 2>&1 || rc=$?
expect_eq "submit --wait of a dead job" "$rc" 1
ok "jobq submit --wait"

# Trace context: given at submit (or taken from the submitter's TRACEPARENT), it reaches the
# command as TRACEPARENT and TRACESTATE; jobqd's own are never passed on.
TP=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
id=$(cli submit trace '{}' --traceparent "$TP" --tracestate vendor=1)
cli wait "$id" --timeout 30s >/dev/null
expect_eq "the command's trace context" "$(cli get "$id" --json | jq -r .job.result)" "$TP|vendor=1"
TP2=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00
id=$(TRACEPARENT=$TP2 cli submit trace '{}')
cli wait "$id" --timeout 30s >/dev/null
expect_eq "a submit inside a traced command continues its trace" \
    "$(cli get "$id" --json | jq -r '.job.traceparent + " " + .job.result')" "$TP2 $TP2|"
id=$(cli submit trace '{}')
cli wait "$id" --timeout 30s >/dev/null
expect_eq "no trace context" "$(cli get "$id" --json | jq -r '(.job.traceparent // "none") + " " + .job.result')" "none |"
ok "trace context: TRACEPARENT and TRACESTATE reach the command; jobq submit passes its own on"

# Exit 75 (EX_TEMPFAIL) slows the whole queue down for its slow_down (2 s).
a=$(cli submit tempfail '1')
cli wait "$a" --timeout 30s >/dev/null 2>&1 || true
b=$(cli submit tempfail '2')
expect_eq "explain behind a slow-down" "$(cli explain "$b" --json | jq -r .reason)" slowed_down
cli wait "$b" --timeout 30s >/dev/null 2>&1 || true
t1=$(sed -n 1p "$T/tempfail.log")
t2=$(sed -n 2p "$T/tempfail.log")
[ $((t2 - t1)) -ge 1900 ] || fail "the next job of a slowed queue started $((t2 - t1)) ms after exit 75"
ok "exit 75 holds the queue for slow_down: the next job started $((t2 - t1)) ms later"
stop_jobqd
