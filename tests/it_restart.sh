#!/usr/bin/env bash
# it_restart.sh: kill -9 while jobs run -> after a restart they run again and all finish;
# SIGTERM lets running jobs finish; past shutdown_grace they are killed and left ready.
. "$(dirname "$0")/lib.sh"
mkfifo "$T/started"
exec 3<>"$T/started" # held open: no line is lost between reads
# mode: "hang" sleeps until killed, "fast" finishes at once, else it takes 0.5 s.
cat >"$T/slow.sh" <<SH
#!/bin/sh
mode=\$(cat "$T/mode" 2>/dev/null)
[ "\$mode" = fast ] || echo \$\$ >"$T/started"
[ "\$mode" = hang ] && exec sleep 300
[ "\$mode" = fast ] || sleep 0.5
echo "\$JOBQ_JOB_ID" >>"$T/done"
SH
chmod +x "$T/slow.sh"
write_config "[queue.slow]
command = $T/slow.sh
concurrency = 4"
start_jobqd

echo hang >"$T/mode"
ids=$(raw '{"op":"submit_batch","queue":"slow","jobs":[{},{},{},{},{},{},{},{}]}' | jq -c .ids)
# Four are running once four handlers said so.
pids=()
for i in 1 2 3 4; do read -r pid <&3; pids+=("$pid"); done
kill9_jobqd
kill -9 "${pids[@]}" # the machine went down with jobqd
echo fast >"$T/mode"
start_jobqd
grep -q 'event=recovered jobs=4' "$LOG" || fail "4 running jobs were not recovered: $(grep recovered "$LOG")"
r=$(raw "{\"op\":\"wait\",\"ids\":$ids,\"timeout\":\"60s\"}")
expect_eq "all done after restart" "$(jq -r .done <<<"$r")" true
expect_eq "all succeeded" "$(jq '[.jobs[] | select(.state == "succeeded")] | length' <<<"$r")" 8
expect_eq "interrupted jobs count their attempt" "$(jq '[.jobs[] | select(.attempt == 2)] | length' <<<"$r")" 4
ok "kill -9 while 4 jobs ran: recovered, all 8 finished"

# SIGTERM waits for running jobs (grace 5s, job 0.5s).
echo slow >"$T/mode"
id=$(raw '{"op":"submit","queue":"slow","payload":1}' | jq .id)
read -r _ <&3
stop_jobqd
grep -q "^$id\$" "$T/done" || fail "SIGTERM did not let job $id finish"
ok "SIGTERM drains: the running job finished first"

# Past shutdown_grace the job is killed and left ready, its attempt not spent.
echo hang >"$T/mode"
SERVER_EXTRA="shutdown_grace = 300ms" write_config "[queue.slow]
command = $T/slow.sh"
start_jobqd
id=$(raw '{"op":"submit","queue":"slow","payload":1}' | jq .id)
read -r _ <&3
stop_jobqd
grep -q "^$id\$" "$T/done" && fail "job $id finished though it hung"
echo fast >"$T/mode"
write_config "[queue.slow]
command = $T/slow.sh"
start_jobqd
j=$(raw "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"30s\"}" | jq -c '.jobs[0]')
expect_eq "killed at shutdown, then finished" "$(jq -r .state <<<"$j")" succeeded
expect_eq "shutdown did not spend an attempt" "$(jq -r .attempt <<<"$j")" 1
ok "past shutdown_grace: killed, left ready, run after the restart"
stop_jobqd
