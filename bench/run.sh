#!/usr/bin/env bash
# run.sh: runs the whole jobq-bench suite against fresh, local jobqd instances (ipc:// only,
# in a temp dir) and prints one table; builds nothing. Usage: bench/run.sh [--quick]
# [--out FILE] [BUILD_DIR]  (BUILD_DIR defaults to ./build; $OUT also names the JSON file).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/run.sh [--quick] [--out FILE] [BUILD_DIR]

Starts jobqd from BUILD_DIR/bin (default ./build) in a temp dir, listening only on an ipc://
socket there, and runs jobq-bench against it:
  durability = full:   submit (1, 16 and 64 producers), batch100 (1 thread), batch (1000
                       jobs; 1 and 4 threads), echo (the nng limit: 1, 16, 64 contexts),
                       exec on true8/true2/true32 (/bin/true, concurrency 8/2/32),
                       load (half the maximum: submit -> ack, submit -> start on true8),
                       latency (on true8), e2e (jobq-worker-bench: 16 batch producers,
                       4 jobq_worker_run workers with a no-op handler), idle, rss
  durability = normal: submit (1, 16 and 64 producers), batch100, batch
  claim:               a remote worker's fetch + ack with 10,000 and 10,000,000 jobs queued
                       (1,000,000 with --quick), rows inserted with sqlite3 into a stopped
                       jobqd's database
  sqlite:              the raw SQLite limit (jobq-peer-load): jobq's INSERT, 1,000 rows per
                       transaction, synchronous = FULL, in the same temp dir
Prints one table, then jobq's figures as fractions of the limits of the same run (submit
over echo with as many contexts, batch over raw SQLite), writes every row as JSON to FILE
(--out, else $OUT, else a new file under ${TMPDIR:-/tmp}, whose name is printed), stops
jobqd with SIGTERM and removes the temp dir. --quick makes every workload run about 2 s
(under 8 minutes in all; the full run stays under 25 minutes).
EOF
}

QUICK=
OUT=${OUT:-}
BUILD=./build
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=--quick ;;
    --out)
        [ $# -ge 2 ] || { usage >&2; exit 2; }
        OUT=$2
        shift
        ;;
    --out=*) OUT=${1#--out=} ;;
    -h | --help)
        usage
        exit 0
        ;;
    -*)
        echo "run.sh: unknown option $1" >&2
        usage >&2
        exit 2
        ;;
    *) BUILD=$1 ;;
    esac
    shift
done

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBQD=$BUILD/bin/jobqd
BENCH=$BUILD/bin/jobq-bench
WBENCH=$BUILD/bin/jobq-worker-bench
PEER=$BUILD/bin/jobq-peer-load
for b in "$JOBQD" "$BENCH" "$WBENCH" "$PEER"; do
    [ -x "$b" ] || { echo "run.sh: $b not found; build first (cmake --build $BUILD)" >&2; exit 2; }
done

# The whole run's time budget; each step gets what is left (timeout kills a stuck step).
if [ -n "$QUICK" ]; then
    BUDGET=470
    CLAIM_BIG=1000000
    WB_JOBS=5000
    SECS=2
else
    BUDGET=1480
    CLAIM_BIG=10000000
    WB_JOBS=100000
    SECS=5
fi
command -v sqlite3 >/dev/null 2>&1 || {
    echo "run.sh: the claim rows need the sqlite3 command (apt-get install sqlite3)" >&2
    exit 2
}
START=$SECONDS

T=$(mktemp -d "${TMPDIR:-/tmp}/jobq-bench.XXXXXX")
SOCK="ipc://$T/jobqd.sock"
# As root, jobqd needs an account to switch to (it refuses to run as root), and that account
# the temp dir, where it makes its database and socket.
USER_LINE=
if [ "$(id -u)" = 0 ]; then
    USER_LINE="user = nobody"
    chown nobody "$T"
fi
if [ -z "$OUT" ]; then
    OUT=$(mktemp "${TMPDIR:-/tmp}/jobq-bench-results.XXXXXX.json")
fi
JOBQD_PID=
RC=0

stop_jobqd() {
    [ -n "$JOBQD_PID" ] || return 0
    kill -TERM "$JOBQD_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 400); do # shutdown_grace is 5 s; give it 40 s
        kill -0 "$JOBQD_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$JOBQD_PID" 2>/dev/null; then
        echo "run.sh: jobqd (pid $JOBQD_PID) ignored SIGTERM for 40 s; killing it" >&2
        kill -KILL "$JOBQD_PID" 2>/dev/null || true
        RC=1
    fi
    local st=0
    wait "$JOBQD_PID" 2>/dev/null || st=$?
    if [ "$st" -ne 0 ]; then
        echo "run.sh: jobqd exited with status $st after SIGTERM" >&2
        RC=1
    fi
    JOBQD_PID=
}

cleanup() {
    local rc=$?
    stop_jobqd
    rm -rf "$T"
    exit $((rc != 0 ? rc : RC))
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_jobqd NAME DURABILITY: a fresh jobqd with its own database; returns once it logged
# event=ready.
start_jobqd() {
    local name=$1 durability=$2
    rm -f "$T/jobqd.sock"
    cat >"$T/$name.conf" <<EOF
[server]
listen = $SOCK
http =
$USER_LINE
database = $T/$name.db
durability = $durability
shutdown_grace = 5s
log_level = info

[queue.bench]

[queue.true2]
command = /bin/true
concurrency = 2

[queue.true8]
command = /bin/true
concurrency = 8

[queue.true32]
command = /bin/true
concurrency = 32

[queue.wbench]

[queue.claim]
EOF
    LOG="$T/$name.log"
    : >"$LOG"
    "$JOBQD" -c "$T/$name.conf" 2>>"$LOG" &
    JOBQD_PID=$!
    local i
    for i in $(seq 1 1200); do # 120 s at most (a 10M-job database is counted at start)
        grep -q 'event=ready' "$LOG" && return 0
        if ! kill -0 "$JOBQD_PID" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    echo "run.sh: jobqd ($durability) did not become ready; its log:" >&2
    tail -n 20 "$LOG" >&2
    exit 1
}

# report_log NAME: the warnings and errors jobqd logged, if any.
report_log() {
    local n
    n=$(grep -c -E 'level=(warn|error|fatal)' "$LOG" || true)
    if [ "$n" -gt 0 ]; then
        echo "# jobqd ($1) logged $n warning/error lines; the first ones:" >&2
        grep -E 'level=(warn|error|fatal)' "$LOG" | head -n 5 >&2
    fi
}

PART=0
HEADER=
# bench ARGS...: one jobq-bench run; its rows go to the table and to $T/part.N.json.
bench() {
    PART=$((PART + 1))
    local left=$((BUDGET - (SECONDS - START)))
    if [ "$left" -le 5 ]; then
        echo "run.sh: out of time budget ($BUDGET s); skipping: $*" >&2
        RC=1
        return 0
    fi
    # Write back what earlier steps left dirty, so that no step pays for another's I/O.
    timeout 60 sync -f "$T" || true
    local st=0
    timeout -k 5 "$left" "$BENCH" --url "$SOCK" $QUICK $HEADER --json "$T/part.$PART.json" "$@" ||
        st=$?
    HEADER=--no-header
    if [ "$st" -ne 0 ]; then
        echo "run.sh: jobq-bench $* failed (status $st)" >&2
        RC=1
    fi
}

# row_json NAME LINE: adds one row (a JSON object text) as its own part.
row_json() {
    PART=$((PART + 1))
    printf '[\n  %s\n]\n' "$1" >"$T/part.$PART.json"
}

# print_row WORKLOAD QUEUE TAG THREADS JOBS SECONDS RATE NOTE: a table line in jobq-bench's
# layout, for the rows measured by other programs.
print_row() {
    printf '%-13s %-7s %-6s %7s %9s %7.2f %9.0f %9s %9s %9s %9s %-4s %6s  %s\n' \
        "$1" "$2" "$3" "$4" "$5" "$6" "$7" - - - - - 0 "$8"
}

# e2e_workers TAG: jobq-worker-bench, 16 producers submitting in batches and 4 workers
# (jobq_worker_run, a no-op handler, one job at a time each), counting jobs fully consumed.
e2e_workers() {
    local out st=0 left=$((BUDGET - (SECONDS - START)))
    if [ "$left" -le 5 ]; then
        echo "run.sh: out of time budget; skipping e2e" >&2
        RC=1
        return 0
    fi
    timeout 60 sync -f "$T" || true
    out=$(timeout -k 5 "$left" "$WBENCH" --url "$SOCK" --queue wbench --jobs "$WB_JOBS" \
        --producers 16 --workers 4 --concurrency 1 2>"$T/wbench.err") || st=$?
    local rate secs
    rate=$(sed -n 's/.*jobs_per_s=\([0-9.]*\).*/\1/p' <<<"$out")
    secs=$(sed -n 's/.*total_s=\([0-9.]*\).*/\1/p' <<<"$out")
    if [ "$st" -ne 0 ] || [ -z "$rate" ]; then
        echo "run.sh: jobq-worker-bench failed (status $st):" >&2
        tail -n 5 "$T/wbench.err" >&2
        RC=1
        return 0
    fi
    print_row e2e wbench "$1" 4 "$WB_JOBS" "${secs:-0}" "$rate" \
        "16 batch producers, 4 jobq_worker_run workers (no-op), submit to last ack"
    row_json "{\"workload\": \"e2e\", \"queue\": \"wbench\", \"tag\": \"$1\", \"producers\": 16, \"workers\": 4, \"jobs\": $WB_JOBS, \"seconds\": ${secs:-0}, \"jobs_per_s\": $rate}"
}

# claim_run N: a jobqd whose queue "claim" holds N ready jobs, inserted with sqlite3 into its
# database while it is stopped; then one remote worker claims from it.
claim_run() {
    local n=$1 name=claim$1
    start_jobqd "$name" full # creates the database and its schema
    stop_jobqd
    local pad
    pad=$(printf 'x%.0s' $(seq 1 150))
    if ! timeout 600 sqlite3 "$T/$name.db" "PRAGMA journal_mode = WAL;
        INSERT INTO jobs (queue, payload, priority, state, run_at, max_attempts, timeout_ms,
                          created_at)
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $n)
        SELECT 'claim', '{\"to\":\"user@example.com\",\"pad\":\"' || '$pad' || '\"}', 0, 1,
               0, 8, 30000, 0 FROM c;" >/dev/null; then
        echo "run.sh: cannot fill $T/$name.db with $n jobs" >&2
        RC=1
        return 0
    fi
    start_jobqd "$name" full
    bench --tag full --queue claim --seconds 2 claim
    report_log "$name"
    stop_jobqd
    rm -f "$T/$name".db*
}

# sqlite_limit: the raw SQLite limit: jobq's INSERT, 1,000 rows per transaction, FULL.
sqlite_limit() {
    local schemas=() f out st=0
    for f in "$SRC"/migrations/*.sql; do schemas+=(--schema "$f"); done
    timeout 60 sync -f "$T" || true
    out=$(timeout -k 5 120 "$PEER" sqlite "$T/raw.db" "${schemas[@]}" --rows 1000 \
        --seconds "$SECS") || st=$?
    local rate secs jobs
    rate=$(sed -n 's/.*jobs_per_s=\([0-9.]*\).*/\1/p' <<<"$out")
    secs=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$out")
    jobs=$(sed -n 's/.* jobs=\([0-9]*\).*/\1/p' <<<"$out")
    if [ "$st" -ne 0 ] || [ -z "$rate" ]; then
        echo "run.sh: jobq-peer-load sqlite failed (status $st)" >&2
        RC=1
        return 0
    fi
    print_row sqlite.limit - - 1 "$jobs" "$secs" "$rate" \
        "raw SQLite: jobq's INSERT, 1,000 rows/txn, WAL, synchronous = FULL"
    row_json "{\"workload\": \"sqlite.limit\", \"queue\": \"\", \"tag\": \"\", \"producers\": 1, \"jobs\": $jobs, \"seconds\": $secs, \"jobs_per_s\": $rate}"
    rm -f "$T"/raw.db*
}

machine() {
    local cpu fs_tmp fs_work
    cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1 | tr -d '"\134')
    fs_tmp=$(df -T "$T" 2>/dev/null | awk 'NR==2 {print $2}')
    fs_work=$(df -T . 2>/dev/null | awk 'NR==2 {print $2}')
    NPROC=$(nproc)
    CPU=${cpu:-unknown}
    FS_TMP=${fs_tmp:-unknown}
    FS_WORK=${fs_work:-unknown}
}

machine
echo "# jobq bench: $NPROC cpus ($CPU), database on $FS_TMP ($T), ${QUICK:-full} run, $(date -u +%FT%TZ)"

start_jobqd full full
bench --tag full --queue bench --producers 1,16,64 --exec-queue true8,true2,true32 \
    submit batch echo exec load latency
e2e_workers full
bench --tag full --pid "$JOBQD_PID" idle
bench --tag full --queue bench --pid "$JOBQD_PID" rss
report_log full
stop_jobqd
rm -f "$T"/full.db* # its dirty pages would otherwise be written back during the next run

start_jobqd normal normal
bench --tag normal --queue bench --producers 1,16,64 submit batch
report_log normal
stop_jobqd
rm -f "$T"/normal.db*

claim_run 10000
claim_run "$CLAIM_BIG"

sqlite_limit
# One JSON document: the machine, then every row of every part.
{
    printf '{"machine": {"nproc": %s, "cpu": "%s", "fs_tmp": "%s", "fs_cwd": "%s"},\n' \
        "$NPROC" "$CPU" "$FS_TMP" "$FS_WORK"
    printf ' "quick": %s, "date": "%s",\n "rows": [' \
        "$([ -n "$QUICK" ] && echo true || echo false)" "$(date -u +%FT%TZ)"
    first=1
    for i in $(seq 1 "$PART"); do
        f="$T/part.$i.json"
        [ -f "$f" ] || continue
        while IFS= read -r line; do
            case "$line" in
            '  {'*)
                line=${line%,}
                if [ $first -eq 1 ]; then first=0; else printf ','; fi
                printf '\n  %s' "${line#  }"
                ;;
            esac
        done <"$f"
    done
    printf '\n]}\n'
} >"$OUT"

# jobq's figures as fractions of the limits measured in this run.
rate_of() { # WORKLOAD TAG PRODUCERS
    jq -r --arg w "$1" --arg t "$2" --argjson p "$3" \
        '[.rows[] | select(.workload == $w and .tag == $t and .producers == $p) | .jobs_per_s]
         | first // empty' "$OUT"
}
fraction() { # NAME NUMERATOR DENOMINATOR
    if [ -n "$2" ] && [ -n "$3" ]; then
        awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { if (b > 0) printf "limit %s %.2f\n", n, a / b }'
    fi
}
if command -v jq >/dev/null 2>&1; then
    echo
    echo "# jobq as a fraction of the limits measured above (higher is better)"
    sql=$(rate_of sqlite.limit "" 1)
    for p in 1 16 64; do
        fraction "submit_full_x${p}_vs_echo_x${p}" "$(rate_of submit full "$p")" "$(rate_of echo full "$p")"
    done
    for p in 1 16 64; do
        fraction "submit_normal_x${p}_vs_echo_x${p}" "$(rate_of submit normal "$p")" "$(rate_of echo full "$p")"
    done
    fraction batch100_full_vs_sqlite "$(rate_of batch100 full 1)" "$sql"
    fraction batch_full_vs_sqlite "$(rate_of batch full 1)" "$sql"
    fraction batch4_full_vs_sqlite "$(rate_of batch full 4)" "$sql"
    fraction e2e_workers_vs_echo_x16 "$(rate_of e2e full 16)" "$(rate_of echo full 16)"
    # The cost of a claim (1 / rate) with the big backlog over the cost with 10,000 queued.
    claim_small=$(jq -r '[.rows[] | select(.workload == "claim" and .queued <= 10000)
        | .jobs_per_s] | first // empty' "$OUT")
    claim_big=$(jq -r '[.rows[] | select(.workload == "claim" and .queued > 10000)
        | .jobs_per_s] | first // empty' "$OUT")
    fraction claim_cost_big_over_10k "$claim_small" "$claim_big"
else
    echo "# (jq is missing: no fractions; apt-get install jq)" >&2
fi
echo "# JSON: $OUT ($((SECONDS - START)) s in all)"
