#!/usr/bin/env bash
# it_ioerr.sh: the I/O-error loop. A small workload (3 submits with keys, each run by an exec
# queue) performs W writes and S syncs of the database and its WAL. For every N in 1..W, and
# then 1..S, the real jobqd starts on a copy of the same database with the crashvfs module
# failing its Nth write (sync) with SQLITE_IOERR_WRITE (SQLITE_IOERR_FSYNC), once; then with
# that write and every later one failing (:persist) for every FAIL_PERSIST_STEP-th N. Each time:
# every submit is answered (an error code, not a hang); a failed one is retried with its key;
# jobqd logs the error at level error; with a single fault it goes on serving (the retry is
# acknowledged and every acknowledged job runs); with a persistent one it stops cleanly on
# SIGTERM. Afterwards the database, reopened without the fault, passes integrity_check and holds
# every acknowledged job (run to success by a jobqd without the module when the fault stayed).
. "$(dirname "$0")/../lib.sh"
: "${JOBQ_CRASHVFS_PRELOAD:?JOBQ_CRASHVFS_PRELOAD must name the crashvfs module (ctest sets it)}"
PERSIST_STEP=${JOBQ_IOERR_PERSIST_STEP:-3}
JOBS=3

SERVER_EXTRA="log_level = info"
write_config "[queue.local]
command = /bin/true
concurrency = 1"

# The template: a migrated database with a few finished jobs, copied before every run.
start_jobqd
for i in 1 2 3; do cli submit local "{\"seed\":$i}" >/dev/null; done
cli wait 1 2 3 >/dev/null
stop_jobqd
cp "$T/jobq.db" "$T/template.db"
[ ! -e "$T/jobq.db-wal" ] || fail "jobqd left a WAL file after a clean stop"

# vfs_jobqd VAR=VALUE...: starts jobqd in the background with the module and these settings.
vfs_jobqd() {
    STARTS=$((STARTS + 1))
    LOG="$T/jobqd.$STARTS.log"
    env LD_PRELOAD="$JOBQ_CRASHVFS_PRELOAD" "$@" "$JOBQD" -c "$T/jobq.conf" 2>"$LOG" &
    JOBQD_PID=$!
}

# stop_within: SIGTERM; jobqd must exit 0 within 30 s.
stop_within() {
    kill -TERM "$JOBQD_PID" 2>/dev/null || true
    if ! timeout 30 tail --pid="$JOBQD_PID" -s 0.02 -f /dev/null; then
        kill9_jobqd
        fail "$what: jobqd did not stop within 30 s of SIGTERM"
    fi
    local rc=0
    wait "$JOBQD_PID" || rc=$?
    JOBQD_PID=
    expect_eq "$what: jobqd's exit status after SIGTERM" "$rc" 0
}

# submit_all: JOBS submits, each retried once with its key if it failed. Writes ACKED (lines
# "key id"). Sets FAILED_SUBMITS and RETRIES_FAILED.
submit_all() {
    : >"$T/acked"
    local i id rc err
    for i in $(seq 1 "$JOBS"); do
        for try in 1 2; do
            rc=0
            id=$(cli --timeout 20s submit local "{\"i\":$i}" --key "k$i" 2>"$T/submit.err") || rc=$?
            err=$(cat "$T/submit.err")
            case $rc in
            0)
                echo "k$i ${id%% *}" >>"$T/acked"
                break
                ;;
            1)
                [ -n "$err" ] || fail "$what: a failed submit printed no reason"
                ! grep -q -i "timed out\|timeout" <<<"$err" ||
                    fail "$what: a submit got no answer in 20 s: $err"
                FAILED_SUBMITS=$((FAILED_SUBMITS + 1))
                [ "$try" = 1 ] || RETRIES_FAILED=$((RETRIES_FAILED + 1))
                ;;
            *) fail "$what: submit exited with status $rc: $err" ;;
            esac
        done
    done
}

# check_db: the database without the module: integrity ok, every acknowledged key with its id.
check_db() {
    local out
    out=$(sqlite3 -readonly "$T/jobq.db" 'PRAGMA integrity_check') ||
        fail "$what: sqlite3 cannot read the database"
    expect_eq "$what: integrity_check" "$out" ok
    while read -r key id; do
        expect_eq "$what: the job acknowledged for key $key" \
            "$(sqlite3 -readonly "$T/jobq.db" "SELECT id FROM jobs WHERE key = '$key'")" "$id"
    done <"$T/acked"
}

# acked_ids: the acknowledged ids as a JSON array.
acked_ids() {
    awk '{ printf "%s%s", (NR > 1 ? "," : ""), $2 }' "$T/acked"
}

# wait_acked: every acknowledged job succeeds within 30 s.
wait_acked() {
    [ -s "$T/acked" ] || return 0
    local r
    r=$(raw "{\"op\":\"wait\",\"ids\":[$(acked_ids)],\"timeout\":\"30s\"}")
    [ "$(jq -r '.done and all(.jobs[]; .state == "succeeded")' <<<"$r")" = true ] ||
        fail "$what: acknowledged jobs did not run: $(jq -c '[.jobs[] | {id, state}]' <<<"$r")"
}

# one_run KIND N PERSIST: the workload with the Nth write or sync failing.
HIT=0 MISSED=0 STARTS_FAILED=0 FAILED_SUBMITS=0 RETRIES_FAILED=0
one_run() {
    local kind=$1 n=$2 persist=$3 spec="$1:$2${3:+:persist}"
    what="fail=$spec"
    rm -f "$T"/jobq.db*
    cp "$T/template.db" "$T/jobq.db"
    : >"$T/acked"
    vfs_jobqd JOBQ_CRASHVFS_FAIL="$spec"
    # Ready, or gone: tail follows the log until jobqd exits.
    if ! timeout 30 grep -q -m1 'event=ready' <(tail --pid="$JOBQD_PID" -s 0.02 -F -n +1 "$LOG" 2>/dev/null); then
        alive "$JOBQD_PID" && fail "$what: jobqd neither became ready nor exited within 30 s"
        local rc=0
        wait "$JOBQD_PID" || rc=$?
        JOBQD_PID=
        expect_eq "$what: jobqd's exit status when it cannot start" "$rc" 1
        grep -q '^jobqd: .*I/O error' "$LOG" || fail "$what: jobqd stopped without saying why: $(tail -n 3 "$LOG")"
        STARTS_FAILED=$((STARTS_FAILED + 1))
    else
        local before=$RETRIES_FAILED
        submit_all
        if [ -z "$persist" ]; then
            [ "$RETRIES_FAILED" = "$before" ] ||
                fail "$what: after a single fault, a retried submit failed again: $(cat "$T/submit.err")"
            wait_acked
        fi
        stop_within
    fi
    if grep -q '^crashvfs: failing' "$LOG"; then
        HIT=$((HIT + 1))
        grep -q 'level=error\|^jobqd: ' "$LOG" || fail "$what: the fault was not logged as an error"
    else
        MISSED=$((MISSED + 1))
    fi
    check_db
    if [ -n "$persist" ] && [ -s "$T/acked" ]; then
        start_jobqd # without the module: what was acknowledged runs now
        wait_acked
        stop_within
    fi
}

# Calibration: the workload without a fault, counted.
what="calibration"
rm -f "$T"/jobq.db*
cp "$T/template.db" "$T/jobq.db"
vfs_jobqd
timeout 60 grep -q -m1 'event=ready' <(tail -F -n +1 "$LOG" 2>/dev/null) || fail "jobqd with the module did not become ready"
submit_all
expect_eq "acknowledged submits without a fault" "$(wc -l <"$T/acked")" "$JOBS"
wait_acked
stop_within
WRITES=$(sed -n 's/^crashvfs: exit: .*writes=\([0-9]*\).*/\1/p' "$LOG")
SYNCS=$(sed -n 's/^crashvfs: exit: .*syncs=\([0-9]*\).*/\1/p' "$LOG")
[ -n "$WRITES" ] && [ -n "$SYNCS" ] || fail "the module did not report its counts in $LOG"
echo "the workload: $WRITES writes, $SYNCS syncs"

t0=$SECONDS
runs=0
for kind in write sync; do
    max=$WRITES
    [ "$kind" = write ] || max=$SYNCS
    for n in $(seq 1 "$max"); do
        one_run "$kind" "$n" ""
        runs=$((runs + 1))
        if [ $((n % PERSIST_STEP)) = 1 ] || [ "$PERSIST_STEP" = 1 ]; then
            one_run "$kind" "$n" persist
            runs=$((runs + 1))
        fi
    done
done
[ "$HIT" -gt 0 ] || fail "no fault was ever reached"
ok "$runs runs in $((SECONDS - t0))s ($WRITES writes, $SYNCS syncs): $HIT faults hit, $MISSED not reached, $STARTS_FAILED stopped jobqd at start, $FAILED_SUBMITS submits answered with an error, nothing acknowledged lost, integrity ok every time"
