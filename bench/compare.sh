#!/usr/bin/env bash
# compare.sh: measures jobq against real job queues (beanstalkd, BullMQ on Redis, graphile-worker
# on PostgreSQL 15), raw Redis lists, the raw SQLite limit and the machine's spawn rate, with
# identical workloads, on 127.0.0.1 only; prints a table and one "ratio NAME VALUE" line per
# comparison. Usage: bench/compare.sh [--quick] [--build DIR] [--skip PEER[,PEER...]]
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/compare.sh [--quick] [--build DIR] [--skip PEER[,PEER...]]

One command, one run. Installs what is missing (as root or with sudo without a password):
beanstalkd, redis-server and postgresql (PostgreSQL 15) from Debian, nodejs and npm from Debian,
and BullMQ and graphile-worker from npm at the versions of bench/peers/package-lock.json
(npm ci into DIR/bench-peers, reused while the lockfile is unchanged). Then runs, one server
at a time, each alone on a free port of 127.0.0.1 with its data in a temp dir:
  beanstalkd -b DIR -f 0                      (fsync on every write)     "beanstalkd_f0"
  beanstalkd -b DIR                           (fsync every 50 ms)        "beanstalkd_default"
  redis-server --appendonly yes --appendfsync always|everysec, raw lists "redis_*"
  BullMQ (Queue/Worker API, bench/peers/peer.js) on redis-server --appendonly yes
      --appendfsync always | everysec                                    "bullmq_*"
  graphile-worker (bench/peers/peer.js) on PostgreSQL 15 (initdb + pg_ctl in the temp dir,
      as nobody when run as root; fsync and synchronous_commit on)    "pg_queue"
  jobqd, durability = full, on tcp://127.0.0.1:PORT (libjobq: jobq-bench, jobq-worker-bench,
      jobq-peer-load)                                                    "jobq"
  the same jobqd on that PostgreSQL 15 (database jobq), one node, the
      workloads but exec                                                 "jobqpg"
  three such jobqd on that database, submit, batch, drain and mixed   "jobqpg3"
Workloads, the same for every system (200-byte bodies, a handler that returns at once):
  submit  16 producers, one connection and one single submit in flight each
  batch   one thread, 1,000 jobs per request (beanstalkd: 1,000 pipelined puts; Redis: one
          LPUSH; BullMQ: addBulk; graphile-worker: add_jobs; jobq: submit_batch, also from
          4 threads), against the raw SQLite limit: jobq's INSERT, 1,000 rows per
          transaction, WAL, synchronous=FULL, in the same temp dir
  drain   a backlog of 20,000 jobs put first, then 4 worker processes x concurrency 4 (jobq:
          jobq-worker-bench --backlog --processes; BullMQ, graphile-worker: 4 Node processes
          with concurrency 4; beanstalkd, Redis: 16 consumer connections, one job each at a
          time); jobs started per second until the last (graphile-worker's runner cannot
          be paused, so its start, a pool connect and a schema check, is inside its time)
  mixed   the 16 producers and those workers together (jobq: jobq-peer-load --processes,
          4 processes of one jobq_worker_run of concurrency 4); jobs started per second, and
          p50/p99 of submit to the handler's start
  paced   jobq only: mixed with the 16 producers on a fixed timetable, 200 jobs/s in all and
          then half the rate mixed reached; p50/p99 of submit to start when jobqd has room
  exec    jobq's local exec of /bin/true at concurrency 8 against `xargs -P 8 /bin/true`,
          the machine's spawn rate measured in the same run
--quick: 2 s per timed workload and a 5,000-job backlog (about 3 minutes in all on a machine at
rest); the full run: 10 s each and 20,000 jobs. Every wait is bounded (timeout); a peer that
cannot be installed or started is reported on a "# skipped" line and its ratios are left out
(the script still exits 0); a workload that fails makes the exit status 1. Binaries come from
DIR/bin (--build, default ./build): jobqd, jobq-bench, jobq-worker-bench, jobq-peer-load.
--skip leaves peers out (beanstalkd, redis: raw lists, bullmq, pg); $PGBIN names another
PostgreSQL 15 bin directory (default /usr/lib/postgresql/15/bin).
The last lines are "ratio NAME VALUE", jobq / peer, higher is better; e2e_vs_* are the mixed
workload against beanstalkd and raw Redis lists; pg_*_vs_pg_queue and pg_*_vs_sqlite compare
jobq on PostgreSQL with graphile-worker and with jobq on SQLite, pg3_* the same with three
jobq nodes on that database (jobq-peer-load spreads producers and consumers over them; the
nodes, PostgreSQL and the load share the machine's cores). Column CPU_US (and the
"cpu_us_per_job KEY VALUE" lines) is jobqd's own CPU time per job (of every node), from
/proc/PID/stat; for
jobq on PostgreSQL, "#" lines add the statements, commits and WAL bytes per job
(pg_stat_statements, loaded in the cluster the script starts, and pg_current_wal_lsn).
The PostgreSQL queue is graphile-worker, not pg-boss: graphile-worker wakes its workers with
LISTEN/NOTIFY and claims through one function (SKIP LOCKED), while pg-boss's workers poll
on an interval, which bounds its drain and its submit-to-start latency by that interval
rather than by PostgreSQL (an earlier harness measured pg-boss under 100 jobs/s against
graphile-worker's 1,875). graphile-worker logs every completed job at info;
peer.js keeps its warnings and errors only.
EOF
}

QUICK=
BUILD=./build
declare -A SKIP # peer -> why it is skipped
# skip_peers LIST: the peers of a comma-separated --skip list, skipped at the user's word.
skip_peers() {
    local p
    for p in ${1//,/ }; do
        case "$p" in
        beanstalkd | redis | bullmq | pg) SKIP[$p]="--skip $p" ;;
        *)
            echo "compare.sh: --skip takes beanstalkd, redis, bullmq and pg, not $p" >&2
            exit 2
            ;;
        esac
    done
}
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --skip)
        [ $# -ge 2 ] || {
            usage >&2
            exit 2
        }
        skip_peers "$2"
        shift
        ;;
    --skip=*) skip_peers "${1#--skip=}" ;;
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
    DRAIN_JOBS=5000
    DRAIN_CAP=10 # the longest a drain may take before it is cut short
    SPAWNS=2000
    BUDGET=540
else
    SECS=10
    DRAIN_JOBS=20000
    DRAIN_CAP=90
    SPAWNS=10000
    BUDGET=1900
fi
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
NODE_DIR=$(cd "$BUILD" && pwd)/bench-peers # npm ci puts node_modules here (a build dir)

SUDO=()
# can_install: true when apt-get can run here (root, or sudo without a password).
can_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    [ "$(id -u)" -eq 0 ] && return 0
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
        return 0
    fi
    return 1
}

APT_UPDATED=
# apt_install PKG...: installs Debian packages (bounded); false with the reason on stderr.
apt_install() {
    if ! can_install; then
        echo "compare.sh: $* missing, and installing needs apt-get as root (or sudo without a" \
            "password): apt-get install -y $*" >&2
        return 1
    fi
    echo "# installing $* from Debian" >&2
    local log p
    log=$(mktemp "${TMPDIR:-/tmp}/jobq-compare-apt.XXXXXX")
    # The package lists may be absent or stale: update once when a package has no candidate.
    for p in "$@"; do
        if [ -z "$APT_UPDATED" ] && ! apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
            timeout 300 "${SUDO[@]}" apt-get update >>"$log" 2>&1 || true
            APT_UPDATED=1
            break
        fi
    done
    if ! DEBIAN_FRONTEND=noninteractive timeout 600 "${SUDO[@]}" apt-get install -y \
        --no-install-recommends "$@" >>"$log" 2>&1; then
        echo "compare.sh: cannot install $* with apt-get; its last lines:" >&2
        tail -n 8 "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

# install_peers: each peer's programs, when missing; a peer that cannot be had is skipped.
install_peers() {
    [ -n "${SKIP[beanstalkd]:-}" ] || command -v beanstalkd >/dev/null 2>&1 ||
        apt_install beanstalkd || SKIP[beanstalkd]="beanstalkd could not be installed from Debian"
    if [ -z "${SKIP[redis]:-}" ] || [ -z "${SKIP[bullmq]:-}" ]; then
        command -v redis-server >/dev/null 2>&1 || apt_install redis-server || {
            SKIP[redis]="redis-server could not be installed from Debian"
            SKIP[bullmq]=${SKIP[redis]}
        }
    fi
    [ -n "${SKIP[pg]:-}" ] || [ -x "$PGBIN/initdb" ] || apt_install postgresql-15 ||
        SKIP[pg]="PostgreSQL 15 could not be installed from Debian"
    if [ -z "${SKIP[bullmq]:-}" ] || [ -z "${SKIP[pg]:-}" ]; then
        if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
            apt_install nodejs npm || SKIP[node]="node and npm could not be installed from Debian"
        fi
        [ -n "${SKIP[node]:-}" ] || install_node_peers || SKIP[node]="npm ci of bench/peers failed"
        if [ -n "${SKIP[node]:-}" ]; then
            SKIP[bullmq]=${SKIP[bullmq]:-${SKIP[node]}}
            SKIP[pg]=${SKIP[pg]:-${SKIP[node]}}
        fi
    else
        SKIP[node]="neither bullmq nor pg is run"
    fi
    [ -x "$PGBIN/initdb" ] || SKIP[pg]=${SKIP[pg]:-"no $PGBIN/initdb"}
    local k
    for k in "${!SKIP[@]}"; do
        echo "# skipped: $k: ${SKIP[$k]}"
    done
}

# install_node_peers: BullMQ and graphile-worker at the lockfile's versions into $NODE_DIR.
install_node_peers() {
    local lock=$SRC/bench/peers/package-lock.json
    if [ -d "$NODE_DIR/node_modules" ] && cmp -s "$lock" "$NODE_DIR/package-lock.json"; then
        return 0
    fi
    echo "# npm ci of bench/peers (BullMQ, graphile-worker) into $NODE_DIR" >&2
    rm -rf "$NODE_DIR"
    mkdir -p "$NODE_DIR"
    cp "$SRC/bench/peers/package.json" "$lock" "$NODE_DIR/"
    if ! (cd "$NODE_DIR" && timeout 600 npm ci --no-audit --no-fund --loglevel=error \
        >"$NODE_DIR/npm.log" 2>&1); then
        echo "compare.sh: npm ci failed; its last lines:" >&2
        tail -n 8 "$NODE_DIR/npm.log" >&2
        rm -rf "$NODE_DIR/node_modules"
        return 1
    fi
}

install_peers

T=$(mktemp -d "${TMPDIR:-/tmp}/jobq-compare.XXXXXX")
START=$SECONDS
SRV_PID=
SRV_NAME=
SRV_SIG=TERM
RC=0

# stop_server: SIGTERM (PostgreSQL: SIGINT, its fast shutdown) to the server this script
# started, SIGKILL after 20 s.
stop_server() {
    [ -n "$SRV_PID" ] || return 0
    kill -"$SRV_SIG" "$SRV_PID" 2>/dev/null || true
    for _ in $(seq 1 200); do
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SRV_PID" 2>/dev/null; then
        echo "compare.sh: $SRV_NAME (pid $SRV_PID) ignored SIG$SRV_SIG for 20 s; killing it" >&2
        kill -KILL "$SRV_PID" 2>/dev/null || true
    fi
    wait "$SRV_PID" 2>/dev/null || true
    [ "$SRV_PID" != "${JOBQ_PID:-}" ] || JOBQ_PID=
    SRV_PID=
    SRV_SIG=TERM
}

cleanup() {
    local rc=$?
    [ -z "${MORE_PIDS:-}" ] || stop_more_nodes
    stop_server
    if [ -n "${PG_PID:-}" ]; then # PostgreSQL, kept while a jobqd ran on it
        SRV_PID=$PG_PID SRV_SIG=INT
        stop_server
    fi
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

# As root, the servers that refuse root (PostgreSQL) and jobqd run as nobody, in dirs it owns.
AS=()
if [ "$(id -u)" = 0 ]; then
    AS=(runuser -u nobody --)
    chmod 755 "$T"
fi

# start_peer KIND NAME ARGS...: starts beanstalkd or redis-server (KIND) on a free port with
# ARGS, data in $T/NAME; sets PORT. Tries 3 ports (another process may take one first).
# False (with the reason on stderr) when it does not start.
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
    return 1
}

# start_pg: a fresh PostgreSQL 15 cluster in $T/pg (initdb, then pg_ctl start, listening on
# 127.0.0.1:PORT and a socket in $T/pg only; as nobody when run as root); sets PORT and
# PG_URL. False (with the reason on stderr) when it does not start.
start_pg() {
    local d=$T/pg try
    SRV_NAME="PostgreSQL 15"
    rm -rf "$d"
    mkdir -p "$d"
    [ ${#AS[@]} -eq 0 ] || chown nobody "$d"
    if ! timeout 120 "${AS[@]}" "$PGBIN/initdb" -D "$d/data" -U jobq -A trust -E UTF8 \
        --no-sync >"$T/initdb.log" 2>&1; then
        echo "compare.sh: initdb failed; its last lines:" >&2
        tail -n 5 "$T/initdb.log" >&2
        return 1
    fi
    for try in 1 2 3; do
        PORT=$("$PEER" port)
        if timeout 60 "${AS[@]}" "$PGBIN/pg_ctl" -D "$d/data" -l "$d/log" -w -t 45 \
            -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$d" \
            -o "-c fsync=on -c synchronous_commit=on -c max_connections=100" \
            -o "-c shared_preload_libraries=pg_stat_statements" \
            start >"$T/pg_ctl.log" 2>&1; then
            SRV_PID=$(head -n 1 "$d/data/postmaster.pid")
            SRV_SIG=INT
            PG_URL="postgres://jobq@127.0.0.1:$PORT/postgres"
            PG_PORT=$PORT
            # For the per-job costs of jobq on PostgreSQL (statements, commits).
            "$PGBIN/psql" -qAt "$PG_URL" -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' \
                >/dev/null 2>&1 || echo "compare.sh: pg_stat_statements is not available" >&2
            return 0
        fi
        echo "compare.sh: PostgreSQL did not start on 127.0.0.1:$PORT (try $try of 3):" >&2
        tail -n 5 "$d/log" >&2
        port_taken_hint "$d/log" "$PORT"
        timeout 30 "${AS[@]}" "$PGBIN/pg_ctl" -D "$d/data" -m immediate -w -t 20 stop \
            >/dev/null 2>&1 || true
    done
    return 1
}

# jobq_conf DIR URL DATABASE: the config every measured jobqd runs (DIR/jobq.conf; as root
# DIR is nobody's and jobqd switches to nobody).
jobq_conf() {
    local user_line=
    if [ "$(id -u)" = 0 ]; then
        user_line="user = nobody"
        chown nobody "$1"
    fi
    cat >"$1/jobq.conf" <<EOF
[server]
listen = $2
http =
database = $3
durability = full
shutdown_grace = 5s
log_level = info
$user_line

[queue.bench]

[queue.e2e]

[queue.drain]

[queue.true8]
command = /bin/true
concurrency = 8
EOF
}

# start_jobqd [DATABASE]: a fresh jobqd (durability = full) on a free port, on a new SQLite file
# or on DATABASE (a postgresql:// URL); sets PORT, URL and JOBQ_PID (for its CPU time).
start_jobqd() {
    local try db=${1:-}
    SRV_NAME=jobqd
    for try in 1 2 3; do
        PORT=$("$PEER" port)
        URL="tcp://127.0.0.1:$PORT"
        rm -rf "$T/jobq"
        mkdir -p "$T/jobq"
        jobq_conf "$T/jobq" "$URL" "${db:-$T/jobq/jobq.db}"
        local log="$T/jobq.log"
        : >"$log"
        "$JOBQD" -c "$T/jobq/jobq.conf" 2>>"$log" &
        SRV_PID=$!
        for _ in $(seq 1 300); do # 30 s at most
            if grep -q 'event=ready' "$log"; then
                JOBQ_PID=$SRV_PID
                return 0
            fi
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

# more_nodes N DATABASE: N - 1 more jobqd on DATABASE (a postgresql:// URL) beside the one
# start_jobqd started there; sets URLS (every node's URL, comma-separated) and MORE_PIDS.
MORE_PIDS=
more_nodes() {
    local i port url log pid
    URLS=$URL
    for i in $(seq 2 "$1"); do
        port=$("$PEER" port)
        url="tcp://127.0.0.1:$port"
        log="$T/jobq$i.log"
        rm -rf "$T/jobq$i"
        mkdir -p "$T/jobq$i"
        jobq_conf "$T/jobq$i" "$url" "$2"
        : >"$log"
        "$JOBQD" -c "$T/jobq$i/jobq.conf" 2>>"$log" &
        pid=$!
        MORE_PIDS="$MORE_PIDS $pid"
        URLS="$URLS,$url"
        for _ in $(seq 1 300); do # 30 s at most
            grep -q 'event=ready' "$log" && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if ! grep -q 'event=ready' "$log"; then
            echo "compare.sh: node $i of jobq on PostgreSQL did not become ready; its log:" >&2
            tail -n 5 "$log" >&2
            return 1
        fi
    done
}

# stop_more_nodes: stops the nodes more_nodes started.
stop_more_nodes() {
    local p
    for p in $MORE_PIDS; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in $MORE_PIDS; do
        wait "$p" 2>/dev/null || true
    done
    MORE_PIDS=
    rm -rf "$T"/jobq[0-9]*
}

# jobq_nodes_workloads P: submit, batch, drain and mixed against every node of $URLS at once
# (jobq-peer-load spreads its producers and consumers over them), recorded as P_*.
jobq_nodes_workloads() {
    local p=$1
    measure "${p}_submit" "jobq-peer-load: one client per producer, spread over the nodes" \
        "$PEER" jobq "$URLS" submit --producers 16 --name bench --seconds "$SECS"
    measure "${p}_batch1" "jobq-peer-load batch --rows 1000, 1 thread, one node" \
        "$PEER" jobq "$URLS" batch --rows 1000 --name bench --seconds "$SECS"
    measure "${p}_drain" "jobq-peer-load drain: 4 consumers x concurrency 4 over the nodes" \
        "$PEER" jobq "$URLS" drain --jobs "$DRAIN_JOBS" --consumers 4 --concurrency 4 \
        --name drain --seconds "$DRAIN_CAP"
    measure "${p}_mixed" "16 producers + 4 processes x concurrency 4 over the nodes; p50/p99 submit to start" \
        "$PEER" jobq "$URLS" e2e --producers 16 --consumers 4 --concurrency 4 --processes \
        --name e2e --seconds "$SECS"
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

# What jobqd spends per job: its CPU time (user + system, from /proc/PID/stat) and, on
# PostgreSQL, the statements and commits of database jobq (pg_stat_statements, which counts
# each statement of jobqd's, BEGIN, SAVEPOINT and COMMIT included) and the WAL it wrote.
declare -A CPUUS PGSTMT PGCOMMIT PGWAL
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
COST_PG= # set while the jobqd measured keeps its jobs in PostgreSQL
COST0=

# proc_ticks PID...: the CPU time the PIDs have used, in clock ticks (fields 14 and 15 of
# their stat).
proc_ticks() {
    local p t=0
    for p in "$@"; do
        t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}

# pg_counters: "STATEMENTS COMMITS WAL_BYTES" so far, when COST_PG is set.
pg_counters() {
    [ -n "$COST_PG" ] || return 0
    "$PGBIN/psql" -qAt -F ' ' "$PG_URL" -c "SELECT coalesce(sum(s.calls), 0),
        coalesce(sum(s.calls) FILTER (WHERE s.query ILIKE 'commit%'), 0),
        pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint
        FROM pg_database d LEFT JOIN pg_stat_statements s ON s.dbid = d.oid
        WHERE d.datname = 'jobq'" 2>/dev/null || true
}

# cost_begin: the counters before a jobq workload (nothing when no jobqd runs).
cost_begin() {
    COST0=
    [ -n "${JOBQ_PID:-}" ] || return 0
    COST0="$(proc_ticks "$JOBQ_PID" $MORE_PIDS) $(pg_counters)"
}

# cost_end JOBS KEY...: what was spent since cost_begin, per job, recorded for each KEY.
cost_end() {
    local jobs=$1 k c0 s0 m0 w0 c1 s1 m1 w1
    shift
    [ -n "$COST0" ] && [ -n "$jobs" ] && [ "$jobs" != 0 ] || return 0
    read -r c0 s0 m0 w0 <<<"$COST0"
    read -r c1 s1 m1 w1 <<<"$(proc_ticks "$JOBQ_PID" $MORE_PIDS) $(pg_counters)"
    per() { awk -v a="$1" -v b="$2" -v n="$jobs" -v m="$3" 'BEGIN { printf "%.2f", (b - a) * m / n }'; }
    for k in "$@"; do
        CPUUS[$k]=$(per "$c0" "$c1" "$(awk -v hz="$CLK_TCK" 'BEGIN { print 1e6 / hz }')")
        if [ -n "${w0:-}" ] && [ -n "${w1:-}" ]; then
            PGSTMT[$k]=$(per "$s0" "$s1" 1)
            PGCOMMIT[$k]=$(per "$m0" "$m1" 1)
            PGWAL[$k]=$(per "$w0" "$w1" 1)
        fi
    done
}

# field LINE NAME: the value of NAME=... in a result line.
field() {
    sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"
}

# measure KEY NOTE CMD...: runs CMD (bounded by the budget) and records its "result" line:
# jobs_per_s, p50_us, p99_us; a drain that did not finish says how many jobs were left.
measure() {
    local key=$1 note=$2 out st=0
    shift 2
    timeout 60 sync -f "$T" || true # write back what earlier steps left dirty
    cost_begin
    out=$(timeout -k 5 "$(left)" "$@" 2>"$T/measure.err") || st=$?
    out=$(grep '^result ' <<<"$out" | tail -n 1 || true)
    if [ "$st" -ne 0 ] || [ -z "$out" ]; then
        echo "compare.sh: $key: $(basename "$1") ${*:2} failed (status $st):" >&2
        tail -n 5 "$T/measure.err" >&2
        RC=1
        record "$key" - - - "failed"
        return 0
    fi
    cost_end "$(field "$out" jobs)" "$key"
    local un
    un=$(field "$out" unfinished)
    if [ -n "$un" ] && [ "$un" != 0 ]; then
        note="${note:+$note; }$un of $(field "$out" backlog) left at the ${DRAIN_CAP} s cap"
    fi
    record "$key" "$(field "$out" jobs_per_s)" "$(field "$out" p50_us)" \
        "$(field "$out" p99_us)" "$note"
}

# node_peer KEY NOTE TARGET WORKLOAD ARGS...: one bench/peers/peer.js run.
node_peer() {
    local key=$1 note=$2
    shift 2
    measure "$key" "$note" env NODE_PATH="$NODE_DIR/node_modules" node "$SRC/bench/peers/peer.js" "$@"
}

# json_row FILE WORKLOAD PRODUCERS: the jobq-bench JSON row of that workload and thread count.
json_row() {
    grep "\"workload\": \"$2\"" "$1" | grep "\"producers\": $3," | head -n 1
}

# json_num ROW NAME: a number member of a JSON row.
json_num() {
    sed -n "s/.*\"$2\": \([0-9.]*\).*/\1/p" <<<"$1"
}

# jobq_bench ARGS...: one jobq-bench run against $URL; its JSON rows stay in $T/bench.json
# for bench_row.
jobq_bench() {
    local st=0
    timeout 60 sync -f "$T" || true
    rm -f "$T/bench.json"
    cost_begin
    timeout -k 5 "$(left)" "$BENCH" --url "$URL" --seconds "$SECS" \
        --json "$T/bench.json" "$@" >"$T/bench.out" 2>&1 || st=$?
    CPUUS[_bench]= PGSTMT[_bench]= PGCOMMIT[_bench]= PGWAL[_bench]=
    [ ! -f "$T/bench.json" ] ||
        cost_end "$(sed -n 's/.*"jobs": \([0-9]*\).*/\1/p' "$T/bench.json" | awk '{ n += $1 } END { print n + 0 }')" _bench
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
    CPUUS[$1]=${CPUUS[_bench]:-} PGSTMT[$1]=${PGSTMT[_bench]:-}
    PGCOMMIT[$1]=${PGCOMMIT[_bench]:-} PGWAL[$1]=${PGWAL[_bench]:-}
}

# jobq_workloads P: the jobq workloads against the jobqd at $URL, recorded as P_submit,
# P_batch1, P_batch4, P_drain and P_mixed (and P_exec unless the second argument is noexec).
jobq_workloads() {
    local p=$1 st=0 wb wb_rate wb_note wb_handled n
    jobq_bench --queue bench --producers 16 submit
    bench_row "${p}_submit" submit 16 "jobq-bench submit --producers 16 (one shared client)"
    measure "${p}_submit_conns" "jobq-peer-load: one client per producer" \
        "$PEER" jobq "$URL" submit --producers 16 --name bench --seconds "$SECS"
    jobq_bench --queue bench batch
    bench_row "${p}_batch1" batch 1 "jobq-bench batch, 1 thread; p50/p99 per request"
    bench_row "${p}_batch4" batch 4 "jobq-bench batch, 4 threads; p50/p99 per request"
    cost_begin
    wb=$(timeout -k 5 "$(left)" "$WBENCH" --url "$URL" --queue drain --jobs "$DRAIN_JOBS" \
        --producers 4 --workers 4 --concurrency 4 --backlog --processes --limit "$DRAIN_CAP" \
        2>"$T/wbench.err") || st=$?
    wb_rate=$(sed -n 's/.*jobs_per_s=\([0-9.]*\).*/\1/p' <<<"$wb")
    if [ "$st" -ne 0 ] || [ -z "$wb_rate" ]; then
        echo "compare.sh: jobq-worker-bench failed (status $st):" >&2
        tail -n 5 "$T/wbench.err" >&2
        RC=1
        wb_rate=-
    fi
    wb_note="jobq-worker-bench --backlog --processes: 4 processes x concurrency 4"
    wb_handled=$(sed -n 's/.*handled=\([0-9]*\).*/\1/p' <<<"$wb")
    if [ -n "$wb_handled" ] && [ "$wb_handled" -lt "$DRAIN_JOBS" ]; then
        wb_note="$wb_note; $((DRAIN_JOBS - wb_handled)) of $DRAIN_JOBS left at the ${DRAIN_CAP} s cap"
    fi
    record "${p}_drain" "$wb_rate" - - "$wb_note"
    cost_end "${wb_handled:-0}" "${p}_drain" # the backlog's submits and its work
    measure "${p}_mixed" "16 producers + 4 processes x concurrency 4; p50/p99 submit to start" \
        "$PEER" jobq "$URL" e2e --producers 16 --consumers 4 --concurrency 4 --processes \
        --name e2e --seconds "$SECS"
    # Latency under a load that leaves room: 200 jobs/s, and half of what mixed reached.
    measure "${p}_light" "16 producers at 200 jobs/s in all + 4 processes x concurrency 4; p50/p99 submit to start" \
        "$PEER" jobq "$URL" e2e --producers 16 --consumers 4 --concurrency 4 --processes \
        --rate 200 --name e2e --seconds "$SECS"
    local half=${RATE[${p}_mixed]:--}
    if [ "$half" != - ]; then
        half=$(awk -v r="$half" 'BEGIN { printf "%.0f", r / 2 }')
        measure "${p}_half" "16 producers at $half jobs/s in all (half of mixed) + 4 processes x concurrency 4; p50/p99 submit to start" \
            "$PEER" jobq "$URL" e2e --producers 16 --consumers 4 --concurrency 4 --processes \
            --rate "$half" --name e2e --seconds "$SECS"
    fi
    if [ "${2:-}" != noexec ]; then
        jobq_bench --exec-queue true8 exec
        bench_row "${p}_exec" exec 1 "local exec of /bin/true, concurrency 8"
    fi
    n=$(grep -c -E 'level=(warn|error|fatal)' "$T/jobq.log" || true)
    if [ "$n" -gt 0 ]; then
        echo "# jobqd logged $n warning/error lines; the first ones:" >&2
        grep -E 'level=(warn|error|fatal)' "$T/jobq.log" | head -n 5 >&2
    fi
}

machine() {
    CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
    FS=$(df -T "$T" 2>/dev/null | awk 'NR==2 {print $2}')
    echo "# jobq compare: $(nproc) cpus (${CPU:-unknown}), temp dirs on ${FS:-unknown} ($T)," \
        "${QUICK:+quick }run of ${SECS} s per workload, $DRAIN_JOBS-job backlog," \
        "$(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    local v=()
    [ -n "${SKIP[beanstalkd]:-}" ] || v+=("beanstalkd $(beanstalkd -v 2>&1 | awk '{print $2}')")
    [ -n "${SKIP[redis]:-}" ] || v+=("redis $(redis-server -v | sed -n 's/.*v=\([^ ]*\).*/\1/p')")
    [ -n "${SKIP[pg]:-}" ] || v+=("PostgreSQL $({ "$PGBIN/postgres" -V 2>/dev/null || echo '- - ?'; } | awk '{print $3}')")
    if [ -z "${SKIP[node]:-}" ]; then
        v+=("node $(node -v)")
        v+=("bullmq $(sed -n 's/.*"version": "\(.*\)".*/\1/p' "$NODE_DIR/node_modules/bullmq/package.json" | head -n 1)")
        v+=("graphile-worker $(sed -n 's/.*"version": "\(.*\)".*/\1/p' "$NODE_DIR/node_modules/graphile-worker/package.json" | head -n 1)")
    fi
    v+=("SQLite $(sqlite3 --version 2>/dev/null | awk '{print $1}' || echo '?')")
    local IFS=,
    echo "# ${v[*]}"
}

machine

MIX_NOTE="16 producers + 16 consumer connections; p50/p99 submit to start"
# The C peers: beanstalkd and raw Redis lists, one server at a time.
if [ -z "${SKIP[beanstalkd]:-}" ]; then
    for mode in f0 default; do
        if [ "$mode" = f0 ]; then extra=(-f 0); else extra=(); fi
        if ! start_peer beanstalkd "beanstalkd-$mode" "${extra[@]}"; then
            SKIP[beanstalkd_$mode]="beanstalkd $mode did not start"
            echo "# skipped: beanstalkd_$mode: it did not start (above)"
            continue
        fi
        k=beanstalkd_$mode
        measure "${k}_submit" "" "$PEER" beanstalkd "$PORT" submit --producers 16 --name bench --seconds "$SECS"
        measure "${k}_batch" "1,000 pipelined puts per round trip" \
            "$PEER" beanstalkd "$PORT" batch --name batch --rows 1000 --seconds "$SECS"
        measure "${k}_drain" "16 consumer connections" "$PEER" beanstalkd "$PORT" drain \
            --consumers 16 --jobs "$DRAIN_JOBS" --name drain --seconds "$DRAIN_CAP"
        measure "${k}_mixed" "$MIX_NOTE" "$PEER" beanstalkd "$PORT" e2e --producers 16 \
            --consumers 16 --name e2e --seconds "$SECS"
        stop_server
    done
fi
if [ -z "${SKIP[redis]:-}" ]; then
    for mode in always everysec; do
        if ! start_peer redis-server "redis-$mode" --appendfsync "$mode"; then
            SKIP[redis_$mode]="redis-server $mode did not start"
            echo "# skipped: redis_$mode: it did not start (above)"
            continue
        fi
        k=redis_$mode
        measure "${k}_submit" "LPUSH" "$PEER" redis "$PORT" submit --producers 16 --name bench --seconds "$SECS"
        measure "${k}_mixed" "LPUSH + BRPOP; $MIX_NOTE" "$PEER" redis "$PORT" e2e --producers 16 \
            --consumers 16 --name e2e --seconds "$SECS"
        stop_server
    done
fi
rm -rf "$T"/beanstalkd-* "$T"/redis-* # their dirty pages must not be written back later

# BullMQ on a local redis-server, through its Queue/Worker API.
if [ -z "${SKIP[bullmq]:-}" ]; then
    for mode in always everysec; do
        if ! start_peer redis-server "bullmq-$mode" --appendfsync "$mode"; then
            SKIP[bullmq_$mode]="redis-server $mode did not start"
            echo "# skipped: bullmq_$mode: redis-server did not start (above)"
            continue
        fi
        k=bullmq_$mode
        node_peer "${k}_submit" "one Queue each" bullmq submit --redis "$PORT" --producers 16 --seconds "$SECS"
        node_peer "${k}_batch" "addBulk" bullmq batch --redis "$PORT" --batch 1000 --seconds "$SECS"
        node_peer "${k}_drain" "4 processes x concurrency 4" bullmq drain --redis "$PORT" \
            --jobs "$DRAIN_JOBS" --workers 4 --concurrency 4 --seconds "$DRAIN_CAP"
        node_peer "${k}_mixed" "16 producers + 4x4 workers; p50/p99 submit to start" bullmq mixed \
            --redis "$PORT" --producers 16 --workers 4 --concurrency 4 --seconds "$SECS"
        stop_server
    done
    rm -rf "$T"/bullmq-*
fi

# graphile-worker on a local PostgreSQL 15.
if [ -z "${SKIP[pg]:-}" ]; then
    if start_pg; then
        node_peer pg_queue_submit "addJob, a pool each" graphile submit --pg "$PG_URL" --producers 16 --seconds "$SECS"
        node_peer pg_queue_batch "add_jobs" graphile batch --pg "$PG_URL" --batch 1000 --seconds "$SECS"
        node_peer pg_queue_drain "4 processes x concurrency 4" graphile drain --pg "$PG_URL" \
            --jobs "$DRAIN_JOBS" --workers 4 --concurrency 4 --seconds "$DRAIN_CAP"
        node_peer pg_queue_mixed "16 producers + 4x4 workers; p50/p99 submit to start" graphile mixed \
            --pg "$PG_URL" --producers 16 --workers 4 --concurrency 4 --seconds "$SECS"
        # jobq on the same PostgreSQL, one node, in a database of its own.
        if "$PGBIN/psql" -qAt "$PG_URL" -c 'CREATE DATABASE jobq' >"$T/createdb.log" 2>&1; then
            PG_PID=$SRV_PID SRV_PID=
            COST_PG=1
            start_jobqd "postgresql://jobq@127.0.0.1:$PG_PORT/jobq"
            jobq_workloads jobqpg noexec
            # Three nodes on that database: the same workloads spread over them.
            if more_nodes 3 "postgresql://jobq@127.0.0.1:$PG_PORT/jobq"; then
                jobq_nodes_workloads jobqpg3
            else
                RC=1
            fi
            stop_more_nodes
            stop_server
            COST_PG=
            rm -rf "$T/jobq"
            SRV_PID=$PG_PID SRV_SIG=INT PG_PID=
        else
            echo "compare.sh: cannot create database jobq for jobq on PostgreSQL:" >&2
            cat "$T/createdb.log" >&2
            RC=1
        fi
        stop_server
    else
        SKIP[pg]="PostgreSQL 15 did not start"
        echo "# skipped: pg_queue: PostgreSQL 15 did not start (above)"
    fi
    rm -rf "$T/pg"
fi

# The machine's spawn rate: xargs -P 8 running /bin/true, in this run.
t0=$(date +%s%N)
if seq 1 "$SPAWNS" | timeout -k 5 "$(left)" xargs -P 8 -n 1 /bin/true; then
    t1=$(date +%s%N)
    record spawn_limit "$(awk -v n="$SPAWNS" -v ns="$((t1 - t0))" 'BEGIN { printf "%.1f", n / (ns / 1e9) }')" \
        - - "seq $SPAWNS | xargs -P 8 -n 1 /bin/true"
else
    echo "compare.sh: xargs -P 8 /bin/true failed or timed out" >&2
    RC=1
    record spawn_limit - - - failed
fi

# jobq, durability = full, on SQLite.
start_jobqd
jobq_workloads jobq
stop_server
rm -rf "$T/jobq"

# The raw SQLite limit, on the same filesystem.
schemas=()
for f in "$SRC"/migrations/*.sql; do schemas+=(--schema "$f"); done
measure sqlite_limit "jobq's INSERT, 1,000 rows/txn, WAL, FULL; p50/p99 per txn" \
    "$PEER" sqlite "$T/raw.db" "${schemas[@]}" --rows 1000 --seconds "$SECS"

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
    bullmq_always_*) echo "bullmq always" ;;
    bullmq_everysec_*) echo "bullmq everysec" ;;
    pg_queue_*) echo "graphile-worker" ;;
    jobq_*) echo "jobq full" ;;
    jobqpg3_*) echo "jobq on pg x3" ;;
    jobqpg_*) echo "jobq on pg" ;;
    sqlite_*) echo "sqlite raw" ;;
    spawn_*) echo "xargs -P 8" ;;
    esac
}
workload() {
    case "$1" in
    *_submit | *_submit_conns) echo "submit x16" ;;
    *_batch | *_batch1) echo "batch1000 x1" ;;
    *_batch4) echo "batch1000 x4" ;;
    *_drain) echo "drain 4x4" ;;
    *_mixed) echo "mixed 16+4x4" ;;
    *_light) echo "paced 200/s" ;;
    *_half) echo "paced mixed/2" ;;
    *_exec) echo "exec true x8" ;;
    spawn_limit) echo "spawn true x8" ;;
    sqlite_limit) echo "txn1000 x1" ;;
    esac
}
echo
printf '%-18s %-13s %10s %9s %9s %8s  %s\n' SYSTEM WORKLOAD JOBS/S P50_MS P99_MS CPU_US NOTE
for k in "${KEYS[@]}"; do
    rate=${RATE[$k]}
    [ "$rate" = - ] || rate=$(printf '%.0f' "$rate")
    printf '%-18s %-13s %10s %9s %9s %8s  %s\n' "$(label "$k")" "$(workload "$k")" "$rate" \
        "$(ms "${P50[$k]}")" "$(ms "${P99[$k]}")" "${CPUUS[$k]:--}" "${NOTE[$k]}"
done
echo "# CPU_US: jobqd's CPU time (user + system) per job of the workload: per submitted job for"
echo "# submit and batch, per job submitted and worked for drain and mixed"
for k in "${KEYS[@]}"; do
    [ -n "${PGWAL[$k]:-}" ] || continue
    echo "# $(label "$k") $(workload "$k"): per job ${PGSTMT[$k]} statements," \
        "${PGCOMMIT[$k]} commits, ${PGWAL[$k]} WAL bytes (pg_stat_statements, pg_current_wal_lsn)"
done
for k in "${KEYS[@]}"; do
    [ -z "${CPUUS[$k]:-}" ] || echo "cpu_us_per_job $k ${CPUUS[$k]}"
done
echo "# $((SECONDS - START)) s in all; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# skipped KEY: the reason the peer of table key KEY was skipped, or nothing.
skipped() {
    local p
    for p in beanstalkd_f0 beanstalkd_default beanstalkd redis_always redis_everysec redis \
        bullmq_always bullmq_everysec bullmq pg; do
        case "$1" in
        "$p"_* | "${p}_queue"_* | jobq"$p"_*)
            if [ -n "${SKIP[$p]:-}" ]; then
                echo "${SKIP[$p]}"
                return 0
            fi
            ;;
        esac
    done
}

# ratio NAME JOBQ_KEY PEER_KEY: jobq / peer with 2 decimals; a "# ratio NAME skipped" line
# when the peer was skipped, "nan" (and exit status 1) when a measurement failed.
ratio() {
    local a=${RATE[$2]:--} b=${RATE[$3]:--} why
    why=$(skipped "$3")
    [ -n "$why" ] || why=$(skipped "$2")
    if [ -n "$why" ]; then
        echo "# ratio $1 skipped: $why"
        return 0
    fi
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
ratio submit_vs_bullmq_always jobq_submit bullmq_always_submit
ratio submit_vs_bullmq_everysec jobq_submit bullmq_everysec_submit
ratio submit_vs_pg_queue jobq_submit pg_queue_submit
ratio e2e_vs_beanstalkd_f0 jobq_mixed beanstalkd_f0_mixed
ratio e2e_vs_beanstalkd_default jobq_mixed beanstalkd_default_mixed
ratio e2e_vs_redis_always jobq_mixed redis_always_mixed
ratio e2e_vs_redis_everysec jobq_mixed redis_everysec_mixed
ratio drain_vs_beanstalkd_f0 jobq_drain beanstalkd_f0_drain
ratio drain_vs_beanstalkd_default jobq_drain beanstalkd_default_drain
ratio mixed_vs_beanstalkd_f0 jobq_mixed beanstalkd_f0_mixed
ratio mixed_vs_beanstalkd_default jobq_mixed beanstalkd_default_mixed
ratio drain_vs_bullmq_always jobq_drain bullmq_always_drain
ratio mixed_vs_bullmq_always jobq_mixed bullmq_always_mixed
ratio drain_vs_bullmq_everysec jobq_drain bullmq_everysec_drain
ratio mixed_vs_bullmq_everysec jobq_mixed bullmq_everysec_mixed
ratio drain_vs_pg_queue jobq_drain pg_queue_drain
ratio mixed_vs_pg_queue jobq_mixed pg_queue_mixed
ratio batch_vs_beanstalkd_default jobq_batch1 beanstalkd_default_batch
ratio batch_vs_bullmq_always jobq_batch1 bullmq_always_batch
ratio batch_vs_pg_queue jobq_batch1 pg_queue_batch
ratio batch_vs_sqlite_limit jobq_batch1 sqlite_limit
ratio batch4_vs_sqlite_limit jobq_batch4 sqlite_limit
ratio exec_vs_spawn_limit jobq_exec spawn_limit
# jobq on PostgreSQL (one node), beside graphile-worker on the same cluster and jobq on SQLite.
ratio pg_submit_vs_pg_queue jobqpg_submit pg_queue_submit
ratio pg_batch_vs_pg_queue jobqpg_batch1 pg_queue_batch
ratio pg_drain_vs_pg_queue jobqpg_drain pg_queue_drain
ratio pg_mixed_vs_pg_queue jobqpg_mixed pg_queue_mixed
ratio pg_submit_vs_sqlite jobqpg_submit jobq_submit
ratio pg_batch_vs_sqlite jobqpg_batch1 jobq_batch1
ratio pg_drain_vs_sqlite jobqpg_drain jobq_drain
ratio pg_mixed_vs_sqlite jobqpg_mixed jobq_mixed
# Three jobq nodes on that PostgreSQL (they share the machine's cores with it and the load).
ratio pg3_submit_vs_pg_queue jobqpg3_submit pg_queue_submit
ratio pg3_drain_vs_pg_queue jobqpg3_drain pg_queue_drain
ratio pg3_mixed_vs_pg_queue jobqpg3_mixed pg_queue_mixed
ratio pg3_drain_vs_sqlite jobqpg3_drain jobq_drain
ratio pg3_mixed_vs_sqlite jobqpg3_mixed jobq_mixed
