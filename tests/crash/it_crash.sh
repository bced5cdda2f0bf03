#!/usr/bin/env bash
# it_crash.sh: jobqd is killed with SIGKILL 20 times (JOBQ_CRASH_KILLS) while 3 producers
# submit with unique keys, jobqd's own consumers run jobs and a remote worker runs others.
# Afterwards every acknowledged job exists exactly once, every job ran at least once (how
# many ran more than once is reported), and PRAGMA integrity_check is ok.
. "$(dirname "$0")/../lib.sh"
KILLS=${JOBQ_CRASH_KILLS:-20}

cat >"$T/handler.sh" <<SH
#!/bin/sh
echo "\$JOBQ_JOB_ID" >>"$T/runs"
SH
chmod +x "$T/handler.sh"
touch "$T/runs"
write_config "[queue.local]
command = $T/handler.sh
concurrency = 4
[queue.remote]
lease = 2s"

producer() {
    local p=$1 i=0 q id
    while [ ! -e "$T/stop" ]; do
        i=$((i + 1))
        q=local
        [ $((i % 2)) -eq 0 ] && q=remote
        if id=$(cli --timeout 5s submit "$q" "{\"p\":$p,\"i\":$i}" --key "p$p-$i" 2>/dev/null); then
            echo "p$p-$i ${id%% *}" >>"$T/acked.$p"
        fi
    done
}

start_jobqd
for p in 1 2 3; do
    touch "$T/acked.$p"
    producer "$p" &
    CLEANUP_PIDS+=($!)
done
"$JOBQ" --url "$SOCK" work remote --concurrency 4 -- "$T/handler.sh" 2>"$T/worker.log" &
WORKER=$!
CLEANUP_PIDS+=("$WORKER")

for k in $(seq 1 "$KILLS"); do
    # Kill once 15 more submits were acknowledged (tail -F follows the files: an event).
    timeout 60 tail -q -F -n 0 "$T"/acked.{1,2,3} 2>/dev/null | head -n 15 >/dev/null || true
    kill9_jobqd
    start_jobqd
done
touch "$T/stop"
for pid in "${CLEANUP_PIDS[@]}"; do
    [ "$pid" = "$WORKER" ] || wait "$pid" 2>/dev/null || true
done
acked=$(cat "$T"/acked.* | wc -l)
[ "$acked" -gt $((KILLS * 10)) ] || fail "only $acked submits were acknowledged"

# Every job ends: wait on them all, 1,000 at a time.
ids=$(sqlite3 "$T/jobq.db" 'SELECT id FROM jobs ORDER BY id')
echo "$ids" | xargs -n 1000 echo | while read -r chunk; do
    r=$(raw "{\"op\":\"wait\",\"ids\":[${chunk// /,}],\"timeout\":\"120s\"}")
    [ "$(jq -r .done <<<"$r")" = true ] || fail "jobs did not finish: $(jq -c '[.jobs[] | select(.state != "succeeded")][0]' <<<"$r")"
done
# The worker stops first (it finishes what it holds), then jobqd.
kill "$WORKER" 2>/dev/null || true
timeout 60 tail --pid="$WORKER" -f /dev/null || fail "jobq work did not stop within 60 s"
stop_jobqd

db() { sqlite3 "$T/jobq.db" "$1"; }
expect_eq "integrity" "$(db 'PRAGMA integrity_check')" ok
expect_eq "keys stored twice" "$(db 'SELECT count(*) FROM (SELECT key FROM jobs GROUP BY queue, key HAVING count(*) > 1)')" 0
missing=0
while read -r key id; do
    got=$(db "SELECT id FROM jobs WHERE key = '$key'")
    [ "$got" = "$id" ] || { echo "acknowledged $key as job $id, found '$got'" >&2; missing=$((missing + 1)); }
done < <(cat "$T"/acked.*)
expect_eq "acknowledged jobs lost" "$missing" 0
expect_eq "jobs not succeeded" "$(db 'SELECT count(*) FROM jobs WHERE state != 4')" 0
total=$(db 'SELECT count(*) FROM jobs')
never=$(comm -23 <(db 'SELECT id FROM jobs' | sort) <(sort -u "$T/runs") | wc -l)
expect_eq "jobs that never ran" "$never" 0
twice=$(sort "$T/runs" | uniq -d | wc -l)
ok "$KILLS kills: $acked acknowledged, $total stored, 0 lost, all ran, $twice ran more than once"
