#!/usr/bin/env bash
# it_powercut.sh: simulated power cuts. The real jobqd runs with the crashvfs module
# (LD_PRELOAD): writes to the database and its WAL stay in memory until they are synced, and at
# a random cut point jobqd _exits, losing every unsynced write. Meanwhile 3 producers submit
# with unique keys (each records the id of every acknowledged submit) and an exec queue runs
# the jobs (its handler records each run). After each cut, with durability = full, every
# acknowledged job must exist exactly once and PRAGMA integrity_check must be ok. Claims and
# outcomes commit without an fsync of their own (a cut may undo them: the job runs again), so
# the jobs that ran more than once are counted and reported; every job must still end. 100 cuts (JOBQ_POWERCUTS=1000 for the long mode);
# every other cut is torn: half of the unsynced 4 KiB chunks reach the disk, in no order.
# Then durability = normal is measured over a tenth as many cuts (JOBQ_POWERCUTS_NORMAL): how
# many acknowledged jobs a cut loses is reported, not judged.
. "$(dirname "$0")/../lib.sh"
if [ -z "${JOBQ_CRASHVFS_PRELOAD:-}" ]; then
    echo "SKIP [$TEST_NAME]: JOBQ_CRASHVFS_PRELOAD is empty: ctest sets it to the crashvfs module" \
        "(after the sanitizer runtimes in sanitizer builds; cmake warned if one was not found)"
    exit 77
fi
# Sanitizer builds (JOBQ_SANITIZED, set by ctest) run about ten times slower: 20 cuts there.
CUTS=${JOBQ_POWERCUTS:-$([ -n "${JOBQ_SANITIZED:-}" ] && echo 20 || echo 100)}
NORMAL_CUTS=${JOBQ_POWERCUTS_NORMAL:-$(((CUTS + 9) / 10))}
SEED=${JOBQ_POWERCUT_SEED:-$$}
RANDOM=$SEED
echo "seed $SEED (JOBQ_POWERCUT_SEED=$SEED repeats the cut points)"
CUT_STATUS=86 # crashvfs's exit status at the cut

producer() {
    local p=$1 i=0 id rc
    while [ ! -e "$T/stop" ]; do
        i=$((i + 1))
        rc=0
        id=$(cli --timeout 5s submit local "{\"p\":$p,\"i\":$i}" --key "p$p-$i" 2>/dev/null) || rc=$?
        if [ "$rc" = 0 ]; then
            echo "p$p-$i ${id%% *}" >>"$T/acked.$p"
        elif [ "$rc" = 3 ]; then
            sleep 0.01 # jobqd is down between a cut and the next start: pace the retries
        fi
    done
}

start_producers() {
    rm -f "$T/stop"
    PRODUCERS=()
    for p in 1 2 3; do
        touch "$T/acked.$p"
        producer "$p" &
        PRODUCERS+=($!)
        CLEANUP_PIDS+=($!)
    done
}

stop_producers() {
    touch "$T/stop"
    for pid in "${PRODUCERS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}

# vfs_jobqd VAR=VALUE...: starts jobqd in the background with the module and these settings.
vfs_jobqd() {
    STARTS=$((STARTS + 1))
    LOG="$T/jobqd.$STARTS.log"
    env LD_PRELOAD="$JOBQ_CRASHVFS_PRELOAD" "$@" "$JOBQD" -c "$T/jobq.conf" 2>"$LOG" &
    JOBQD_PID=$!
}

# calibrate: how many counted operations (writes, truncates, syncs) jobqd performs in a second
# of this workload, so that cut points fall where the workload reaches.
calibrate() {
    vfs_jobqd JOBQ_CRASHVFS_HOLD=1
    timeout 60 grep -q -m1 'event=ready' <(tail -F -n +1 "$LOG" 2>/dev/null) ||
        fail "jobqd with the module did not become ready"
    local before
    before=$(cat "$T"/acked.* | wc -l)
    timeout 60 tail -q -F -n 0 "$T"/acked.{1,2,3} 2>/dev/null | head -n 10 >/dev/null || true
    local t0=$EPOCHREALTIME
    timeout 60 tail -q -F -n 0 "$T"/acked.{1,2,3} 2>/dev/null | head -n 30 >/dev/null || true
    local t1=$EPOCHREALTIME
    stop_jobqd
    local ops
    ops=$(sed -n 's/^crashvfs: exit: ops=\([0-9]*\).*/\1/p' "$LOG")
    [ -n "$ops" ] || fail "the module did not report its operations in $LOG"
    local acks=$(($(cat "$T"/acked.* | wc -l) - before))
    OPS_PER_ACK=$(((ops + acks - 1) / acks))
    ACKS_PER_S=$(awk -v a=30 -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%d", a / (t1 - t0) }')
    # A round runs about 15 acknowledged submits on average, from the start of jobqd.
    RANGE=$((OPS_PER_ACK * 30))
    echo "calibration: $ops operations for $acks acks ($OPS_PER_ACK per ack, $ACKS_PER_S acks/s): cut points in 1..$RANGE"
}

# check_store WANT_LOSSLESS: reopens the database without the module (read-only, as the next
# process finds it after the cut) and compares it with the acknowledged submits. Sets LOST
# (acknowledged key/id pairs not found) and fails on a bad integrity check, a key stored twice,
# or, when WANT_LOSSLESS is 1, any loss.
check_store() {
    local out
    out=$(sqlite3 -readonly "$T/jobq.db" "PRAGMA integrity_check;
        SELECT 'dups ' || count(*) FROM (SELECT 1 FROM jobs WHERE key IS NOT NULL
                                         GROUP BY queue, key HAVING count(*) > 1);") ||
        fail "sqlite3 cannot read the database after cut $k (cut point $n)"
    [ "$(head -n 1 <<<"$out")" = ok ] || fail "integrity_check after cut $k (cut point $n): $out"
    [ "$(tail -n 1 <<<"$out")" = "dups 0" ] || fail "keys stored twice after cut $k: $out"
    sqlite3 -readonly "$T/jobq.db" "SELECT key || ' ' || id FROM jobs WHERE key IS NOT NULL" |
        sort >"$T/stored"
    cat "$T"/acked.* | sort >"$T/acked"
    LOST=$(comm -23 "$T/acked" "$T/stored" | wc -l)
    if [ "$1" = 1 ] && [ "$LOST" != 0 ]; then
        comm -23 "$T/acked" "$T/stored" | head -n 5 >&2
        fail "cut $k (cut point $n, torn $torn%): $LOST acknowledged job(s) missing (first above: key id)"
    fi
}

# cuts COUNT WANT_LOSSLESS [SCALE]: COUNT rounds, each a start of jobqd with a random cut point
# (in 1..RANGE*SCALE) that runs until the cut; the store is checked after each. Sets
# MAX_ROUND_LOSS and ROUND_ACKS (acknowledged during the rounds).
cuts() {
    local count=$1 lossless=$2 scale=${3:-1} rc lost_before=0 acks_before
    acks_before=$(cat "$T"/acked.* | wc -l)
    MAX_ROUND_LOSS=0
    for k in $(seq 1 "$count"); do
        n=$(((RANDOM << 15 | RANDOM) % (RANGE * scale) + 1))
        torn=$((k % 2 * 50))
        vfs_jobqd JOBQ_CRASHVFS_CUT="$n" JOBQ_CRASHVFS_TORN="$torn"
        if ! timeout 60 tail --pid="$JOBQD_PID" -s 0.02 -f /dev/null; then
            kill9_jobqd
            fail "cut $k: jobqd did not reach its cut point $n within 60 s"
        fi
        rc=0
        wait "$JOBQD_PID" || rc=$?
        JOBQD_PID=
        [ "$rc" = "$CUT_STATUS" ] || fail "cut $k: jobqd exited with status $rc before its cut point $n"
        check_store "$lossless"
        if [ $((LOST - lost_before)) -gt "$MAX_ROUND_LOSS" ]; then
            MAX_ROUND_LOSS=$((LOST - lost_before))
        fi
        lost_before=$LOST
    done
    ROUND_ACKS=$(($(wc -l <"$T/acked") - acks_before))
}

# The handler records each run of a job (appends of a short line are atomic).
printf '#!/bin/sh\necho "$JOBQ_JOB_ID" >>"%s/ran"\n' "$T" >"$T/record.sh"
chmod 755 "$T/record.sh"
SERVER_EXTRA="log_level = info"
write_config "[queue.local]
command = $T/record.sh
concurrency = 2"
start_producers
calibrate
t0=$SECONDS
cuts "$CUTS" 1
full_acked=$(wc -l <"$T/acked")
full_secs=$((SECONDS - t0))

# After the last cut, jobqd without the module runs every job to its end: each ran at least once.
stop_producers
start_jobqd
ids=$(sqlite3 "$T/jobq.db" 'SELECT id FROM jobs ORDER BY id')
deadline=$((SECONDS + 120))
echo "$ids" | xargs -n 1000 echo | while read -r chunk; do
    # Each wait is held by jobqd for up to 8 s (raw gives up after 10).
    until r=$(raw "{\"op\":\"wait\",\"ids\":[${chunk// /,}],\"timeout\":\"8s\"}") &&
        [ "$(jq -r .done <<<"$r")" = true ]; do
        [ $SECONDS -lt $deadline ] || fail "jobs did not finish after the cuts: $(jq -c '[.jobs[] | select(.state != "succeeded")][0]' <<<"$r")"
    done
done
stop_jobqd
echo "after the cuts, jobqd ran the remaining jobs in $((SECONDS - t0 - full_secs))s"
n=final k=final
check_store 1
stored=$(sqlite3 "$T/jobq.db" 'SELECT count(*) FROM jobs')
# A job running during 3 cuts is dead as a suspected poison job (by design); any other end but
# success is a failure.
poisoned=$(sqlite3 "$T/jobq.db" "SELECT count(*) FROM jobs WHERE state = 5 AND error LIKE 'suspected poison job%'")
expect_eq "jobs neither succeeded nor poisoned" \
    "$(sqlite3 "$T/jobq.db" "SELECT count(*) FROM jobs WHERE state != 4 AND NOT (state = 5 AND error LIKE 'suspected poison job%')")" 0
never_ran=$(sqlite3 "$T/jobq.db" "SELECT id FROM jobs WHERE state = 4" | sort -u | comm -23 - <(sort -u "$T/ran") | wc -l)
expect_eq "succeeded jobs whose handler never ran" "$never_ran" 0
reran=$(sort "$T/ran" | uniq -d | wc -l)
runs=$(wc -l <"$T/ran")
ok "durability = full: $CUTS power cuts ($((CUTS / 2)) torn) in ${full_secs}s, $full_acked acknowledged jobs, $stored stored, 0 lost, integrity ok after every cut, all ran ($poisoned dead as poison jobs after 3 cuts while running); $runs runs, $reran jobs ran more than once (a cut undid their claim or outcome, or caught them running)"

# durability = normal: the WAL is synced only at checkpoints, so a cut loses the acknowledged
# jobs of the commits since the last one. Measured on a fresh database, with rounds 4 times as
# long so that some of them pass a checkpoint (every 1,000 WAL pages).
rm -f "$T"/jobq.db* "$T"/acked.*
SERVER_EXTRA="log_level = info
durability = normal"
write_config "[queue.local]
command = $T/record.sh
concurrency = 2"
start_producers
calibrate
t0=$SECONDS
cuts "$NORMAL_CUTS" 0 4
stop_producers
echo "durability = normal: $NORMAL_CUTS cuts in $((SECONDS - t0))s"
normal_acked=$ROUND_ACKS
echo "durability = normal: $NORMAL_CUTS power cuts, $normal_acked jobs acknowledged in the rounds, $LOST lost" \
    "($(awk -v l="$LOST" -v a="$normal_acked" 'BEGIN { printf "%.1f", a ? 100 * l / a : 0 }')%)," \
    "$(awk -v l="$LOST" -v c="$NORMAL_CUTS" 'BEGIN { printf "%.1f", l / c }') per cut on average," \
    "at most $MAX_ROUND_LOSS in one cut; integrity ok after every cut"
ok "power cuts: full $CUTS cuts, $full_acked acked, 0 lost; normal $NORMAL_CUTS cuts, $normal_acked acked, $LOST lost"
