#!/usr/bin/env bash
# it_progress.sh: what a running job reports besides its outcome, against a real jobqd: an exec
# command's control pipe (JOBQ_CONTROL_FD) and a remote worker's heartbeats (jobq work) carry
# progress, a checkpoint and log lines; `jobq get` shows the progress while the job runs;
# `jobq logs -f` follows the log until the job ends; a job killed mid-way (kill -9 of its
# command, of its worker, of jobqd) resumes from its checkpoint on the next attempt; the log
# is capped per job and deleted with the job by retention. Every wait is on an event (a line
# seen, a file the test creates), never a sleep.
. "$(dirname "$0")/lib.sh"

WORKER_PIDS=()
stop_workers() {
    for p in "${WORKER_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    WORKER_PIDS=()
}

# The handler: resumes from JOBQ_CHECKPOINT's step (0 at first), reports each step, and
# blocks after step 2 until the test creates $T/go.$JOBQ_JOB_ID, and after step 3 until it
# creates $T/go3.$JOBQ_JOB_ID (its pid is in $T/pid.$JOBQ_JOB_ID.$JOBQ_ATTEMPT, so the test
# can kill it there).
cat >"$T/steps.sh" <<'SH'
#!/bin/sh
cat >/dev/null
[ -n "$JOBQ_CONTROL_FD" ] || { echo "no JOBQ_CONTROL_FD" >&2; exit 65; }
from=$(printf '%s' "${JOBQ_CHECKPOINT:-{\"step\":0}}" | sed 's/.*"step":\([0-9]*\).*/\1/')
echo "attempt=$JOBQ_ATTEMPT from=$from checkpoint=${JOBQ_CHECKPOINT:-none}" >>"$DIR/seen.$JOBQ_JOB_ID"
echo $$ >"$DIR/pid.$JOBQ_JOB_ID.$JOBQ_ATTEMPT"
step=$from
while [ "$step" -lt 4 ]; do
    step=$((step + 1))
    echo "progress $((step * 25)) step $step of 4" >&"$JOBQ_CONTROL_FD"
    echo "log attempt $JOBQ_ATTEMPT did step $step" >&"$JOBQ_CONTROL_FD"
    echo "checkpoint {\"step\":$step}" >&"$JOBQ_CONTROL_FD"
    if [ "$step" -eq 2 ]; then
        while [ ! -e "$DIR/go.$JOBQ_JOB_ID" ]; do sleep 0.02; done
    elif [ "$step" -eq 3 ]; then
        while [ ! -e "$DIR/go3.$JOBQ_JOB_ID" ]; do sleep 0.02; done
    fi
done
echo "finished from $from"
SH
chmod +x "$T/steps.sh"
export DIR="$T"

write_config "[queue.e]
command = $T/steps.sh
max_attempts = 3
backoff_base = 10ms
backoff_max = 10ms
[queue.w]
lease = 2s
max_attempts = 3
backoff_base = 10ms
backoff_max = 10ms
[queue.r]
command = $T/steps.sh
retention_succeeded = 1s"
start_jobqd

# get_field ID JQ: a field of the job as `get` shows it.
get_field() { cli --json get "$1" | jq -c "$2"; }

# ---- (a) exec: progress in get while running, logs -f follows, kill -9 resumes ----
id=$(cli submit e '{}')
poll_until "job $id's first attempt blocks at step 2" '[ -s "$T/pid.$id.1" ] && [ "$(get_field "$id" .job.checkpoint)" = "{\"step\":2}" ]'
expect_eq "progress while running" "$(get_field "$id" '[.job.state, .job.progress, .job.note]')" '["running",50,"step 2 of 4"]'
expect_eq "jobq get prints the progress" "$(cli get "$id" | grep -E '^ *progress' | sed 's/^ *progress:* *//')" "50% step 2 of 4"
# Its command is killed mid-way: the next attempt starts from the checkpoint it left.
kill -9 "$(cat "$T/pid.$id.1")"
poll_until "job $id's second attempt blocks" '[ -s "$T/pid.$id.2" ]'
expect_eq "the second attempt's start" "$(sed -n 2p "$T/seen.$id")" 'attempt=2 from=2 checkpoint={"step":2}'
# logs -f follows the running job: the test lets it go once it saw the attempt's line.
cli logs -f "$id" >"$T/follow.$id" 2>&1 &
follow=$!
poll_until "logs -f printed the second attempt's line" 'grep -q "attempt 2 did step 3" "$T/follow.$id"'
expect_eq "the job still runs" "$(get_field "$id" .job.state)" '"running"'
touch "$T/go3.$id"
wait "$follow" || fail "jobq logs -f did not exit 0 when the job ended"
expect_eq "the log as followed" "$(cat "$T/follow.$id")" "attempt 1 did step 1
attempt 1 did step 2
attempt 2 did step 3
attempt 2 did step 4"
r=$(raw "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"30s\"}")
expect_eq "job $id ended" "$(jq -r '.jobs[0].state' <<<"$r")" succeeded
expect_eq "its result" "$(jq -r '.jobs[0].result' <<<"$r")" "finished from 2"
expect_eq "its final progress and checkpoint" "$(get_field "$id" '[.job.progress, .job.checkpoint]')" '[100,{"step":4}]'
expect_eq "attempt kinds" "$(get_field "$id" '[.job.attempts[].kind]')" '["signal","success"]'
logs=$(raw "{\"op\":\"logs\",\"id\":$id,\"after\":2}")
expect_eq "logs after a cursor" "$(jq -c '[.lines[] | [.seq, .attempt, .line]], .next, .done' <<<"$logs" | paste -sd' ')" \
    '[[3,2,"attempt 2 did step 3"],[4,2,"attempt 2 did step 4"]] 4 true'
ok "exec: progress in get while running, logs -f followed the job to its end, kill -9 of the command resumed from its checkpoint"

# ---- (b) kill -9 of jobqd while the job runs: recovered, it resumes from its checkpoint ----
id=$(cli submit e '{}')
poll_until "job $id blocks at step 2" '[ -s "$T/pid.$id.1" ] && [ "$(get_field "$id" .job.checkpoint)" = "{\"step\":2}" ]'
kill9_jobqd
kill -9 "$(cat "$T/pid.$id.1")" 2>/dev/null || true
touch "$T/go.$id" "$T/go3.$id"
start_jobqd
r=$(raw "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"30s\"}")
expect_eq "job $id after jobqd's kill -9" "$(jq -r '.jobs[0].state + " " + .jobs[0].result' <<<"$r")" "succeeded finished from 2"
expect_eq "attempt kinds" "$(get_field "$id" '[.job.attempts[].kind]')" '["crash","success"]'
ok "kill -9 of jobqd mid-job: the recovered job resumed from its checkpoint"

# ---- (c) remote worker (jobq work): heartbeats carry the reports; kill -9 of the worker ----
id=$(cli submit w '{}')
"$JOBQ" --url "$SOCK" work w -- "$T/steps.sh" 2>"$T/w1.log" &
w1=$!
WORKER_PIDS+=("$w1")
poll_until "job $id blocks in worker 1 with its checkpoint stored" '[ -s "$T/pid.$id.1" ] && [ "$(get_field "$id" .job.checkpoint)" = "{\"step\":2}" ]'
expect_eq "progress from the worker's heartbeats" "$(get_field "$id" '[.job.state, .job.progress, .job.note]')" '["running",50,"step 2 of 4"]'
exec 3>&2 2>/dev/null # no "Killed" notice from bash
kill -9 "$w1" "$(cat "$T/pid.$id.1")"
wait "$w1" || true
exec 2>&3 3>&-
WORKER_PIDS=()
touch "$T/go.$id" "$T/go3.$id"
f=$(raw '{"op":"fetch","queue":"w","timeout":"30s"}')
expect_eq "the fetched job after the lease expired" "$(jq -c '.jobs[0] | [.id, .attempt, .checkpoint]' <<<"$f")" "[$id,2,{\"step\":2}]"
lease=$(jq -r '.jobs[0].lease' <<<"$f")
hb=$(raw "{\"op\":\"heartbeat\",\"id\":$id,\"lease\":\"$lease\",\"progress\":75,\"note\":\"by hand\",\"log\":[\"raw line\"],\"checkpoint\":{\"step\":3}}")
expect_eq "a heartbeat with reports" "$(jq -c '[.ok, .cancel]' <<<"$hb")" '[true,false]'
bad=$(raw "{\"op\":\"heartbeat\",\"id\":$id,\"lease\":\"$lease\",\"progress\":101}")
expect_eq "progress over 100" "$(jq -r .error.code <<<"$bad")" invalid_argument
poll_until "the heartbeat's reports are stored" '[ "$(get_field "$id" "[.job.progress, .job.note, .job.checkpoint]")" = "[75,\"by hand\",{\"step\":3}]" ]'
raw "{\"op\":\"ack\",\"id\":$id,\"lease\":\"$lease\"}" >/dev/null
expect_eq "the log across both workers" "$(cli logs "$id" | tail -2 | paste -sd'|')" "attempt 1 did step 2|raw line"
# The second attempt run by jobq work resumes from the checkpoint too.
id=$(cli submit w '{}')
"$JOBQ" --url "$SOCK" work w -- "$T/steps.sh" 2>"$T/w2.log" &
WORKER_PIDS+=($!)
poll_until "job $id blocks in worker 2" '[ -s "$T/pid.$id.1" ] && [ "$(get_field "$id" .job.checkpoint)" = "{\"step\":2}" ]'
exec 3>&2 2>/dev/null
kill -9 "${WORKER_PIDS[0]}" "$(cat "$T/pid.$id.1")"
wait "${WORKER_PIDS[0]}" || true
exec 2>&3 3>&-
WORKER_PIDS=()
touch "$T/go.$id" "$T/go3.$id"
"$JOBQ" --url "$SOCK" work w -- "$T/steps.sh" 2>"$T/w3.log" &
WORKER_PIDS+=($!)
r=$(raw "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"30s\"}")
expect_eq "job $id via jobq work after kill -9 of its worker" "$(jq -r '.jobs[0].state + " " + .jobs[0].result' <<<"$r")" "succeeded finished from 2"
expect_eq "JOBQ_CHECKPOINT of jobq work's second attempt" "$(sed -n 2p "$T/seen.$id")" 'attempt=2 from=2 checkpoint={"step":2}'
stop_workers
ok "remote workers: heartbeats carry progress, notes, checkpoints and log lines; a worker killed mid-job is resumed from its checkpoint (fetch's checkpoint, JOBQ_CHECKPOINT)"

# ---- (d) the log is capped per job; retention deletes it with the job ----
cat >"$T/flood.sh" <<'SH'
#!/bin/sh
cat >/dev/null
i=0
while [ $i -lt 1500 ]; do i=$((i + 1)); echo "log line $i"; done >&"$JOBQ_CONTROL_FD"
SH
chmod +x "$T/flood.sh"
stop_jobqd
write_config "[queue.f]
command = $T/flood.sh
[queue.r]
command = $T/flood.sh
retention_succeeded = 1s"
start_jobqd
id=$(cli submit f '{}')
cli wait "$id" >/dev/null
n=$(cli logs "$id" | wc -l)
expect_eq "lines kept of 1,500" "$n" 1000
expect_eq "the first and last kept" "$(cli logs "$id" | sed -n '1p;$p' | paste -sd'|')" "line 501|line 1500"
id=$(cli submit r '{}')
cli wait "$id" >/dev/null
expect_eq "log before retention" "$(cli logs "$id" | wc -l)" 1000
poll_until "retention deleted job $id" '[ "$(raw "{\"op\":\"get\",\"id\":$id}" | jq -r .error.code)" = not_found ]'
expect_eq "its log rows" "$(sqlite3 "$T/jobq.db" "select count(*) from job_logs where job_id = $id")" 0
expect_eq "the other job's log stays" "$(sqlite3 "$T/jobq.db" "select count(*) from job_logs where job_id != $id" | tr -d ' ')" \
    "$(sqlite3 "$T/jobq.db" "select count(*) from job_logs")"
expect_eq "logs of a deleted job" "$(raw "{\"op\":\"logs\",\"id\":$id}" | jq -r .error.code)" not_found
stop_jobqd
ok "the log is capped at the last 1,000 lines of a job and deleted with the job by retention"
