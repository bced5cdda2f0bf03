#!/usr/bin/env bash
# compare.sh: measures jobq against beanstalkd and Redis (durable and default modes) and the
# raw SQLite limit on the same shapes of work, on 127.0.0.1 only, and prints a table and one
# "ratio NAME VALUE" line per comparison. Usage: bench/compare.sh [--quick] [--build DIR]
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/compare.sh [--quick] [--build DIR]

Installs beanstalkd and redis-server from Debian if they are missing (apt-get, as root or
with sudo), then, each server alone on a free port of 127.0.0.1 in a temp dir:
  beanstalkd -b DIR -f 0                      (fsync on every write)      "f0"
  beanstalkd -b DIR                           (fsync every 50 ms)         "default"
  redis-server --appendonly yes --appendfsync always                      "always"
  redis-server --appendonly yes --appendfsync everysec                    "everysec"
  jobqd, durability = full, listening on tcp://127.0.0.1:PORT
Workloads (200-byte bodies; every thread has its own connection and one request in flight):
  submit  16 producers: beanstalkd put, Redis LPUSH, jobq-bench submit --producers 16
  e2e     the 16 producers plus 4 consumers: reserve + delete, BRPOP, jobq_worker_run
          (no-op handler, concurrency 1); counts jobs fully consumed per second
  batch   jobq-bench batch (1,000 jobs per submit_batch; 1 and 4 threads), against the raw
          SQLite limit: jobq's INSERT, 1,000 rows per transaction, WAL, synchronous=FULL,
          in the same temp dir
Redis runs with --save "" (no RDB snapshots during the runs). --quick runs each workload
about 2 s (under 3 minutes in all), the full run 10 s each. Binaries come from DIR/bin
(--build, default ./build): jobqd, jobq-bench, jobq-worker-bench, jobq-peer-load.
The last lines are "ratio NAME VALUE", jobq / peer, higher is better.
EOF
}

QUICK=
BUILD=./build
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --build)
        [ $# -ge 2 ] || {
            usage >&2
            exit 2
        }
        BUILD=$2
        shift
        ;;
    --build=*) BUILD=${1#--build=} ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "compare.sh: unknown argument $1" >&2
        usage >&2
        exit 2
        ;;
    esac
    shift
done

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBQD=$BUILD/bin/jobqd
BENCH=$BUILD/bin/jobq-bench
WBENCH=$BUILD/bin/jobq-worker-bench
PEER=$BUILD/bin/jobq-peer-load
for b in "$JOBQD" "$BENCH" "$WBENCH" "$PEER"; do
    [ -x "$b" ] || {
        echo "compare.sh: $b not found; build first (cmake --build $BUILD)" >&2
        exit 2
    }
done
for f in "$SRC"/migrations/*.sql; do
    [ -f "$f" ] || {
        echo "compare.sh: no migrations under $SRC/migrations" >&2
        exit 2
    }
done

if [ -n "$QUICK" ]; then
    SECS=2
    WB_JOBS=5000 # jobq-worker-bench runs a fixed count: about 2 s here
    BUDGET=170
else
    SECS=10
    WB_JOBS=25000
    BUDGET=600
fi

# install_peers: beanstalkd and redis-server from Debian, when missing.
install_peers() {
    local missing=() p sudo=()
    command -v beanstalkd >/dev/null 2>&1 || missing+=(beanstalkd)
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    [ ${#missing[@]} -gt 0 ] || return 0
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "compare.sh: ${missing[*]} missing, and installing needs root (or sudo without" \
                "a password): apt-get install -y ${missing[*]}" >&2
            exit 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "compare.sh: ${missing[*]} missing and there is no apt-get (not Debian?);" \
            "install them and run again" >&2
        exit 1
    fi
    echo "# installing ${missing[*]} from Debian" >&2
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/jobq-compare-apt.XXXXXX")
    # The package lists may be absent or stale: update once when a package has no candidate.
    for p in "${missing[@]}"; do
        if ! apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
            timeout 300 "${sudo[@]}" apt-get update >>"$log" 2>&1 || true
            break
        fi
    done
    if ! DEBIAN_FRONTEND=noninteractive timeout 600 "${sudo[@]}" apt-get install -y \
        --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
        echo "compare.sh: cannot install ${missing[*]} with apt-get; its last lines:" >&2
        tail -n 8 "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
    for p in beanstalkd redis-server; do
        command -v "$p" >/dev/null 2>&1 || {
            echo "compare.sh: $p still missing after apt-get install" >&2
            exit 1
        }
    done
}

install_peers

T=$(mktemp -d "${TMPDIR:-/tmp}/jobq-compare.XXXXXX")
START=$SECONDS
SRV_PID=
SRV_NAME=
RC=0

# stop_server: SIGTERM to the server this script started, SIGKILL after 20 s.
stop_server() {
    [ -n "$SRV_PID" ] || return 0
    kill -TERM "$SRV_PID" 2>/dev/null || true
    for _ in $(seq 1 200); do
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SRV_PID" 2>/dev/null; then
        echo "compare.sh: $SRV_NAME (pid $SRV_PID) ignored SIGTERM for 20 s; killing it" >&2
        kill -KILL "$SRV_PID" 2>/dev/null || true
    fi
    wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=
}

cleanup() {
    local rc=$?
    stop_server
    rm -rf "$T"
    exit $((rc != 0 ? rc : RC))
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# port_taken_hint LOG PORT: a clear message when LOG says the port was in use.
port_taken_hint() {
    if grep -qiE 'address already in use|EADDRINUSE|bind' "$1" 2>/dev/null; then
        echo "compare.sh: port $2 on 127.0.0.1 is taken (another process bound it first)" >&2
    fi
}

# start_peer KIND NAME ARGS...: starts beanstalkd or redis-server (KIND) on a free port with
# ARGS, data in $T/NAME; sets PORT. Tries 3 ports (another process may take one first).
start_peer() {
    local kind=$1 name=$2 try
    shift 2
    SRV_NAME="$kind ($name)"
    for try in 1 2 3; do
        PORT=$("$PEER" port)
        rm -rf "${T:?}/$name"
        mkdir -p "$T/$name"
        local log="$T/$name.log"
        if [ "$kind" = beanstalkd ]; then
            beanstalkd -l 127.0.0.1 -p "$PORT" -b "$T/$name" "$@" >"$log" 2>&1 &
        else
            redis-server --bind 127.0.0.1 --port "$PORT" --dir "$T/$name" --save '' \
                --daemonize no --protected-mode yes --appendonly yes "$@" >"$log" 2>&1 &
        fi
        SRV_PID=$!
        if "$PEER" wait "${kind%-server}" "$PORT" --seconds 15 2>"$T/wait.err" &&
            kill -0 "$SRV_PID" 2>/dev/null; then
            return 0
        fi
        echo "compare.sh: $SRV_NAME did not start on 127.0.0.1:$PORT (try $try of 3):" >&2
        cat "$T/wait.err" >&2
        tail -n 5 "$log" >&2
        port_taken_hint "$log" "$PORT"
        stop_server
    done
    echo "compare.sh: giving up on $SRV_NAME" >&2
    exit 1
}

# start_jobqd: a fresh jobqd (durability = full) on a free port; sets PORT and URL.
start_jobqd() {
    local try
    SRV_NAME=jobqd
    for try in 1 2 3; do
        PORT=$("$PEER" port)
        URL="tcp://127.0.0.1:$PORT"
        rm -rf "$T/jobq"
        mkdir -p "$T/jobq"
        # As root, jobqd needs an account to switch to, and that account its directory.
        local user_line=
        if [ "$(id -u)" = 0 ]; then
            user_line="user = nobody"
            chown nobody "$T/jobq"
            chmod 755 "$T"
        fi
        cat >"$T/jobq/jobq.conf" <<EOF
[server]
listen = $URL
http =
database = $T/jobq/jobq.db
durability = full
shutdown_grace = 5s
log_level = info
$user_line

[queue.bench]

[queue.e2e]

[queue.wbench]
EOF
        local log="$T/jobq.log"
        : >"$log"
        "$JOBQD" -c "$T/jobq/jobq.conf" 2>>"$log" &
        SRV_PID=$!
        for _ in $(seq 1 300); do # 30 s at most
            grep -q 'event=ready' "$log" && return 0
            kill -0 "$SRV_PID" 2>/dev/null || break
            sleep 0.1
        done
        echo "compare.sh: jobqd did not become ready on $URL (try $try of 3); its log:" >&2
        tail -n 5 "$log" >&2
        port_taken_hint "$log" "$PORT"
        stop_server
    done
    echo "compare.sh: giving up on jobqd" >&2
    exit 1
}

# left: seconds of the budget left, at least 5 (a step is then cut short by timeout).
left() {
    local l=$((BUDGET - (SECONDS - START)))
    echo $((l > 5 ? l : 5))
}

declare -A RATE P50 P99 NOTE
KEYS=()

# record KEY RATE P50_US P99_US NOTE: one figure of the table (latencies in microseconds;
# "-" when not measured).
record() {
    KEYS+=("$1")
    RATE[$1]=$2
    P50[$1]=$3
    P99[$1]=$4
    NOTE[$1]=$5
}

# field LINE NAME: the value of NAME=... in a result line.
field() {
    sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"
}

# peer KEY ARGS...: one jobq-peer-load run; its result goes to the table under KEY.
peer() {
    local key=$1 out st=0
    shift
    timeout 60 sync -f "$T" || true # write back what earlier steps left dirty
    out=$(timeout -k 5 "$(left)" "$PEER" "$@" --seconds "$SECS") || st=$?
    if [ "$st" -ne 0 ] || [ -z "$out" ]; then
        echo "compare.sh: jobq-peer-load $* failed (status $st)" >&2
        RC=1
        record "$key" - - - "failed"
        return 0
    fi
    local note=""
    if [ "$(field "$out" workload)" = e2e ]; then
        note="puts/s $(field "$out" put_per_s | cut -d. -f1); p50/p99: age when consumed"
    fi
    record "$key" "$(field "$out" jobs_per_s)" "$(field "$out" p50_us)" \
        "$(field "$out" p99_us)" "$note"
}

# json_row FILE WORKLOAD PRODUCERS: the jobq-bench JSON row of that workload and thread count.
json_row() {
    grep "\"workload\": \"$2\"" "$1" | grep "\"producers\": $3," | head -n 1
}

# json_num ROW NAME: a number member of a JSON row.
json_num() {
    sed -n "s/.*\"$2\": \([0-9.]*\).*/\1/p" <<<"$1"
}

# jobq_bench WORKLOAD ARGS...: one jobq-bench run against $URL; its JSON rows stay in
# $T/bench.json for bench_row.
jobq_bench() {
    local st=0
    timeout 60 sync -f "$T" || true
    rm -f "$T/bench.json"
    timeout -k 5 "$(left)" "$BENCH" --url "$URL" --queue bench --seconds "$SECS" \
        --json "$T/bench.json" "$@" >"$T/bench.out" 2>&1 || st=$?
    if [ "$st" -ne 0 ]; then
        echo "compare.sh: jobq-bench $* failed (status $st):" >&2
        tail -n 5 "$T/bench.out" >&2
        RC=1
    fi
}

# bench_row KEY WORKLOAD PRODUCERS NOTE: the row of the last jobq-bench run to the table.
bench_row() {
    local r=""
    [ -f "$T/bench.json" ] && r=$(json_row "$T/bench.json" "$2" "$3")
    if [ -z "$r" ]; then
        echo "compare.sh: jobq-bench gave no $2 row for $3 threads" >&2
        RC=1
        record "$1" - - - failed
        return 0
    fi
    record "$1" "$(json_num "$r" jobs_per_s)" "$(json_num "$r" p50_us)" \
        "$(json_num "$r" p99_us)" "$4"
}

machine() {
    CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
    FS=$(df -T "$T" 2>/dev/null | awk 'NR==2 {print $2}')
    echo "# jobq compare: $(nproc) cpus (${CPU:-unknown}), temp dirs on ${FS:-unknown} ($T)," \
        "${QUICK:+quick }run of ${SECS} s per workload, $(date -u +%FT%TZ)," \
        "load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# beanstalkd $(beanstalkd -v 2>&1 | awk '{print $2}'), redis $(redis-server -v |
        sed -n 's/.*v=\([^ ]*\).*/\1/p'), SQLite $(sqlite3 --version 2>/dev/null |
            awk '{print $1}' || echo '?')"
}

machine

# The peers, one server at a time.
for mode in f0 default; do
    if [ "$mode" = f0 ]; then extra=(-f 0); else extra=(); fi
    start_peer beanstalkd "beanstalkd-$mode" "${extra[@]}"
    peer "beanstalkd_${mode}_submit" beanstalkd "$PORT" submit --producers 16 --name bench
    peer "beanstalkd_${mode}_e2e" beanstalkd "$PORT" e2e --producers 16 --consumers 4 --name e2e
    stop_server
done
for mode in always everysec; do
    start_peer redis-server "redis-$mode" --appendfsync "$mode"
    peer "redis_${mode}_submit" redis "$PORT" submit --producers 16 --name bench
    peer "redis_${mode}_e2e" redis "$PORT" e2e --producers 16 --consumers 4 --name e2e
    stop_server
done
rm -rf "$T"/beanstalkd-* "$T"/redis-* # their dirty pages must not be written back during jobq's

# jobq, durability = full.
start_jobqd
jobq_bench --producers 16 submit
bench_row jobq_submit submit 16 "jobq-bench submit --producers 16 (one shared client)"
peer jobq_submit_conns jobq "$URL" submit --producers 16 --name bench
NOTE[jobq_submit_conns]="jobq-peer-load: one client per producer"
peer jobq_e2e jobq "$URL" e2e --producers 16 --consumers 4 --concurrency 1 --name e2e
st=0
wb=$(timeout -k 5 "$(left)" "$WBENCH" --url "$URL" --queue wbench --jobs "$WB_JOBS" \
    --producers 16 --workers 4 --concurrency 1 2>"$T/wbench.err") || st=$?
wb_rate=$(sed -n 's/.*jobs_per_s=\([0-9.]*\).*/\1/p' <<<"$wb")
if [ "$st" -ne 0 ] || [ -z "$wb_rate" ]; then
    echo "compare.sh: jobq-worker-bench failed (status $st):" >&2
    tail -n 5 "$T/wbench.err" >&2
    RC=1
    wb_rate=-
fi
record jobq_wbench "$wb_rate" - - "jobq-worker-bench: $WB_JOBS jobs, batch producers, 4x1 workers"
jobq_bench batch
bench_row jobq_batch1 batch 1 "jobq-bench batch, 1 thread; p50/p99 per request"
bench_row jobq_batch4 batch 4 "jobq-bench batch, 4 threads; p50/p99 per request"
n=$(grep -c -E 'level=(warn|error|fatal)' "$T/jobq.log" || true)
if [ "$n" -gt 0 ]; then
    echo "# jobqd logged $n warning/error lines; the first ones:" >&2
    grep -E 'level=(warn|error|fatal)' "$T/jobq.log" | head -n 5 >&2
fi
stop_server
rm -rf "$T/jobq"

# The raw SQLite limit, on the same filesystem.
schemas=()
for f in "$SRC"/migrations/*.sql; do schemas+=(--schema "$f"); done
peer sqlite_limit sqlite "$T/raw.db" "${schemas[@]}" --rows 1000
NOTE[sqlite_limit]="jobq's INSERT, 1,000 rows/txn, WAL, FULL; p50/p99 per txn"

# The table: latencies in ms.
ms() {
    case "$1" in
    - | "" | -1.0) echo - ;;
    *) awk -v v="$1" 'BEGIN { printf "%.2f", v / 1000 }' ;;
    esac
}
label() {
    case "$1" in
    beanstalkd_f0_*) echo "beanstalkd -f 0" ;;
    beanstalkd_default_*) echo "beanstalkd default" ;;
    redis_always_*) echo "redis always" ;;
    redis_everysec_*) echo "redis everysec" ;;
    jobq_*) echo "jobq full" ;;
    sqlite_*) echo "sqlite raw" ;;
    esac
}
workload() {
    case "$1" in
    *_submit | *_submit_conns) echo "submit x16" ;;
    *_e2e) echo "e2e 16+4" ;;
    jobq_wbench) echo "e2e wbench" ;;
    jobq_batch1) echo "batch1000 x1" ;;
    jobq_batch4) echo "batch1000 x4" ;;
    sqlite_limit) echo "txn1000 x1" ;;
    esac
}
echo
printf '%-18s %-13s %10s %9s %9s  %s\n' SYSTEM WORKLOAD JOBS/S P50_MS P99_MS NOTE
for k in "${KEYS[@]}"; do
    rate=${RATE[$k]}
    [ "$rate" = - ] || rate=$(printf '%.0f' "$rate")
    printf '%-18s %-13s %10s %9s %9s  %s\n' "$(label "$k")" "$(workload "$k")" "$rate" \
        "$(ms "${P50[$k]}")" "$(ms "${P99[$k]}")" "${NOTE[$k]}"
done
echo "# $((SECONDS - START)) s in all; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# ratio NAME JOBQ_KEY PEER_KEY: jobq / peer with 2 decimals ("nan" when one is missing).
ratio() {
    local a=${RATE[$2]:--} b=${RATE[$3]:--}
    if [ "$a" = - ] || [ "$b" = - ]; then
        echo "ratio $1 nan"
        RC=1
        return 0
    fi
    awk -v n="$1" -v a="$a" -v b="$b" \
        'BEGIN { if (b > 0) printf "ratio %s %.2f\n", n, a / b; else printf "ratio %s nan\n", n }'
}
ratio submit_vs_beanstalkd_f0 jobq_submit beanstalkd_f0_submit
ratio submit_vs_beanstalkd_default jobq_submit beanstalkd_default_submit
ratio submit_vs_redis_always jobq_submit redis_always_submit
ratio submit_vs_redis_everysec jobq_submit redis_everysec_submit
ratio e2e_vs_beanstalkd_f0 jobq_e2e beanstalkd_f0_e2e
ratio e2e_vs_beanstalkd_default jobq_e2e beanstalkd_default_e2e
ratio e2e_vs_redis_always jobq_e2e redis_always_e2e
ratio e2e_vs_redis_everysec jobq_e2e redis_everysec_e2e
ratio batch_vs_sqlite_limit jobq_batch1 sqlite_limit
ratio batch4_vs_sqlite_limit jobq_batch4 sqlite_limit
