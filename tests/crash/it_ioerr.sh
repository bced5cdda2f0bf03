#!/usr/bin/env bash
# it_ioerr.sh: the I/O-error loop. A small workload (2 submits with keys, each run by an exec
# queue) performs W writes and S syncs of the database and its WAL. For every N in 1..W, and
# then 1..S, the real jobqd starts on a copy of the same database with the crashvfs module
# failing its Nth write (sync) with SQLITE_IOERR_WRITE (SQLITE_IOERR_FSYNC), once; then with
# that write and every later one failing (:persist) for every JOBQ_IOERR_PERSIST_STEP-th N (4). Each time:
# every submit is answered (an error code, not a hang); a failed one is retried with its key;
# jobqd logs the error at level error; with a single fault it goes on serving (the retry is
# acknowledged and every acknowledged job runs); with a persistent one it stops cleanly on
# SIGTERM. Afterwards the database, reopened without the fault, passes integrity_check and holds
# every acknowledged job (run to success by a jobqd without the module when the fault stayed).
. "$(dirname "$0")/../lib.sh"
if [ -z "${JOBQ_CRASHVFS_PRELOAD:-}" ]; then
    echo "SKIP [$TEST_NAME]: JOBQ_CRASHVFS_PRELOAD is empty: ctest sets it to the crashvfs module" \
        "(after the sanitizer runtimes in sanitizer builds; cmake warned if one was not found)"
    exit 77
fi
PERSIST_STEP=${JOBQ_IOERR_PERSIST_STEP:-4}
JOBS=2

SERVER_EXTRA="log_level = info
shutdown_grace = 500ms"
write_config "[queue.local]
command = /bin/true
concurrency = 1"

# The template: a migrated database with a few finished jobs, copied before every run.
start_jobqd
for i in 1 2 3; do cli submit local "{\"seed\":$i}" >/dev/null; done
cli wait 1 2 3 >/dev/null
stop_jobqd
TEMPLATE=$T/template.db
cp "$T/jobq.db" "$TEMPLATE"
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
    local out want
    out=$(sqlite3 -readonly "$T/jobq.db" "PRAGMA integrity_check;
        SELECT key || ' ' || id FROM jobs WHERE key IS NOT NULL ORDER BY key;") ||
        fail "$what: sqlite3 cannot read the database"
    expect_eq "$what: integrity_check" "$(head -n 1 <<<"$out")" ok
    want=$(sort "$T/acked")
    [ -z "$want" ] || [ -z "$(comm -23 <(echo "$want") <(tail -n +2 <<<"$out" | sort))" ] ||
        fail "$what: acknowledged jobs missing (key id): $(comm -23 <(echo "$want") <(tail -n +2 <<<"$out" | sort) | tr '\n' ' ')"
}

# acked_ids: the acknowledged ids as a JSON array.
acked_ids() {
    awk '{ printf "%s%s", (NR > 1 ? "," : ""), $2 }' "$T/acked"
}

# wait_acked: every acknowledged job succeeds within 8 s (raw gives up after 10 s).
wait_acked() {
    [ -s "$T/acked" ] || return 0
    local r
    r=$(raw "{\"op\":\"wait\",\"ids\":[$(acked_ids)],\"timeout\":\"8s\"}")
    [ "$(jq -r '.done and all(.jobs[]; .state == "succeeded")' <<<"$r")" = true ] ||
        fail "$what: acknowledged jobs did not run: $(jq -c '[.jobs[] | {id, state}]' <<<"$r")"
}

# one_run KIND N PERSIST: the workload with the Nth write or sync failing.
HIT=0 MISSED=0 STARTS_FAILED=0 FAILED_SUBMITS=0 RETRIES_FAILED=0
one_run() {
    local kind=$1 n=$2 persist=$3 spec="$1:$2${3:+:persist}"
    what="fail=$spec"
    rm -f "$T"/jobq.db*
    cp "$TEMPLATE" "$T/jobq.db"
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
cp "$TEMPLATE" "$T/jobq.db"
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

# The runs: every N of both kinds once, every PERSIST_STEP-th also with :persist.
runs=()
for kind in write sync; do
    max=$WRITES
    [ "$kind" = write ] || max=$SYNCS
    for n in $(seq 1 "$max"); do
        runs+=("$kind:$n:")
        [ $(((n - 1) % PERSIST_STEP)) != 0 ] || runs+=("$kind:$n:persist")
    done
done
if [ -n "${JOBQ_IOERR_ONLY:-}" ]; then # KIND:N[:persist], to look at one run
    runs=("$JOBQ_IOERR_ONLY:")
fi

# lane K: the runs whose index is K modulo LANES, in a directory (and jobqd) of its own; most of
# a run is waiting (for a retry timer, a start), so lanes overlap well.
lane() {
    local k=$1 i
    ROOT=$T
    T=$ROOT/lane$k
    mkdir -p "$T"
    SOCK="ipc://$T/jobqd.sock"
    export JOBQ_URL="$SOCK"
    JOBQD_PID= STARTS=0 CLEANUP_PIDS=()
    trap cleanup EXIT
    write_config "[queue.local]
command = /bin/true
concurrency = 1"
    for ((i = k; i < ${#runs[@]}; i += LANES)); do
        IFS=: read -r kind n persist <<<"${runs[$i]}"
        t1=$EPOCHREALTIME
        one_run "$kind" "$n" "$persist"
        [ -z "${JOBQ_IOERR_TRACE:-}" ] ||
            echo "${runs[$i]} $(awk -v a="$t1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')s"
    done
    echo "$HIT $MISSED $STARTS_FAILED $FAILED_SUBMITS" >"$ROOT/lane$k.result"
}

LANES=${JOBQ_IOERR_LANES:-2}
t0=$SECONDS
LANE_PIDS=()
for k in $(seq 0 $((LANES - 1))); do
    lane "$k" &
    LANE_PIDS+=($!)
    CLEANUP_PIDS+=($!)
done
for pid in "${LANE_PIDS[@]}"; do
    wait "$pid" || fail "a lane failed (its error is above)"
done
read -r HIT MISSED STARTS_FAILED FAILED_SUBMITS < <(cat "$T"/lane*.result |
    awk '{ h += $1; m += $2; s += $3; f += $4 } END { print h, m, s, f }')
[ "$HIT" -gt 0 ] || fail "no fault was ever reached"
ok "${#runs[@]} runs in $((SECONDS - t0))s ($WRITES writes, $SYNCS syncs; $LANES lanes): $HIT faults hit, $MISSED not reached, $STARTS_FAILED stopped jobqd at start, $FAILED_SUBMITS submits answered with an error, nothing acknowledged lost, integrity ok every time"
