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
  durability = full:   submit (1 and 16 producers), batch (1 and 4 threads),
                       exec on true2/true8/true32 (/bin/true, concurrency 2/8/32),
                       latency (on true8), idle, rss
  durability = normal: submit (1 and 16 producers), batch (1 and 4 threads)
Prints one table, writes every row as JSON to FILE (--out, else $OUT, else a new
file under ${TMPDIR:-/tmp}, whose name is printed), stops jobqd with SIGTERM and removes
the temp dir. --quick makes every workload run about 2 s (under 5 minutes in all; the
full run stays under 15 minutes).
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

JOBQD=$BUILD/bin/jobqd
BENCH=$BUILD/bin/jobq-bench
for b in "$JOBQD" "$BENCH"; do
    [ -x "$b" ] || { echo "run.sh: $b not found; build first (cmake --build $BUILD)" >&2; exit 2; }
done

# The whole run's time budget; each step gets what is left (timeout kills a stuck step).
if [ -n "$QUICK" ]; then BUDGET=280; else BUDGET=880; fi
START=$SECONDS

T=$(mktemp -d "${TMPDIR:-/tmp}/jobq-bench.XXXXXX")
SOCK="ipc://$T/jobqd.sock"
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
EOF
    LOG="$T/$name.log"
    : >"$LOG"
    "$JOBQD" -c "$T/$name.conf" 2>>"$LOG" &
    JOBQD_PID=$!
    local i
    for i in $(seq 1 300); do # 30 s at most
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
bench --tag full --queue bench submit batch
bench --tag full --exec-queue true2,true8,true32 exec
bench --tag full --exec-queue true8 latency
bench --tag full --pid "$JOBQD_PID" idle
bench --tag full --queue bench --pid "$JOBQD_PID" rss
report_log full
stop_jobqd
rm -f "$T"/full.db* # its dirty pages would otherwise be written back during the next run

start_jobqd normal normal
bench --tag normal --queue bench submit batch
report_log normal
stop_jobqd

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
echo "# JSON: $OUT ($((SECONDS - START)) s in all)"
