# cluster.sh: what the tests of several jobqd on one PostgreSQL (tests/it_cluster*.sh) share:
# a cluster of its own (tests/pg.sh) with a database jobq, nodes started, followed and killed
# by name, requests to a node, the leader as the database says. Sourced after lib.sh and
# pg.sh. A test writes each node's config as $T/NODE.conf (server_section gives its [server]
# part) or defines node_conf NODE to write it at the node's first start.

NODES=(a b c)
declare -A PID
declare -A LOGF
declare -A STARTS_OF

# stop_nodes: kill -9 of every node still running (a frozen one is woken first).
stop_nodes() {
    for n in "${NODES[@]}"; do
        if [ -n "${PID[$n]:-}" ]; then
            kill -CONT "${PID[$n]}" 2>/dev/null || true
            kill -9 "${PID[$n]}" 2>/dev/null || true
        fi
    done
}

# cluster_setup: starts the test's PostgreSQL (stopped at exit, after the nodes), creates the
# database jobq; sets DBURL.
cluster_setup() {
    mkdir "$T/pg"
    pg_init "$T/pg" || fail "no PostgreSQL cluster"
    # lib.sh's cleanup reads the test's status first: keep it across stopping the rest.
    trap 'rc=$?; set +e; stop_nodes; pg_frozen_cont; pg_stop immediate >/dev/null 2>&1; (exit $rc); cleanup' EXIT
    pg_start || fail "PostgreSQL did not start"
    pg_psql -c "CREATE DATABASE jobq" || fail "CREATE DATABASE"
    DBURL=$(pg_url jobq)
}

# PostgreSQL's processes frozen by pg_freeze (woken at exit if the test failed meanwhile).
PG_FROZEN=()

# pg_freeze: SIGSTOP of the postmaster and every backend: connections stay open, nothing
# answers (a hung server, not a stopped one).
pg_freeze() {
    local pm
    pm=$(head -n 1 "$PG_DIR/data/postmaster.pid")
    PG_FROZEN=("$pm" $(ps -o pid= --ppid "$pm"))
    kill -STOP "${PG_FROZEN[@]}"
}

# pg_frozen_cont: SIGCONT of what pg_freeze stopped.
pg_frozen_cont() {
    [ ${#PG_FROZEN[@]} -eq 0 ] || kill -CONT "${PG_FROZEN[@]}" 2>/dev/null || true
    PG_FROZEN=()
}

# server_section NODE [EXTRA]: the [server] section of NODE's config (EXTRA: more lines).
server_section() {
    cat <<EOF
[server]
listen = ipc://$T/$1.sock
http = 127.0.0.1:0
database = $DBURL
node = $1
node_ttl = 3s
leader_ttl = 3s
poll_interval = 250ms
durability = full
log_level = info
shutdown_grace = 5s
$(user_line)
${2:-}
EOF
}

# launch_node NODE: starts it in the background (its log: LOGF[NODE], one file per start).
launch_node() {
    local n=$1
    [ -f "$T/$n.conf" ] || node_conf "$n"
    STARTS_OF[$n]=$((${STARTS_OF[$n]:-0} + 1))
    LOGF[$n]="$T/$n.${STARTS_OF[$n]}.log"
    : >"${LOGF[$n]}"
    "$JOBQD" -c "$T/$n.conf" 2>>"${LOGF[$n]}" &
    PID[$n]=$!
}

# wait_log NODE PATTERN [SECONDS]: returns once NODE's current log has a line matching PATTERN.
wait_log() {
    timeout "${3:-60}" grep -q -m1 -- "$2" <(tail -F -n +1 "${LOGF[$1]}" 2>/dev/null) ||
        fail "node $1 never logged '$2'; its log ends: $(tail -n 5 "${LOGF[$1]}")"
}

# kill9_node NODE: SIGKILL, reaped.
kill9_node() {
    kill -9 "${PID[$1]}" 2>/dev/null || true
    wait "${PID[$1]}" 2>/dev/null || true
    PID[$1]=
}

# stop_node NODE: SIGTERM; fails unless it drains and exits 0.
stop_node() {
    local rc=0
    kill -TERM "${PID[$1]}"
    wait "${PID[$1]}" || rc=$?
    PID[$1]=
    expect_eq "exit status of $1 after SIGTERM" "$rc" 0
}

# nraw NODE JSON: one request to NODE (60 s for its reply).
nraw() { timeout 70 "$JOBQ_RAW" "ipc://$T/$1.sock" 60 --data "$2"; }

# ncli NODE ARGS...: the jobq CLI against NODE.
ncli() {
    local n=$1
    shift
    "$JOBQ" --url "ipc://$T/$n.sock" "$@"
}

# q SQL: one statement on the database jobq.
q() { pg_psql jobq -c "$1"; }

# leader: the node holding an unexpired leader's lease ("" when none).
leader() { q "SELECT node FROM jobq_leader WHERE expires_at >= now()"; }

# wait_job NODE ID [SECONDS]: waits on NODE until job ID ends; fails unless it succeeded.
wait_job() {
    local r
    r=$(nraw "$1" "{\"op\":\"wait\",\"id\":$2,\"timeout\":\"${3:-20}s\"}")
    jq -e '.done and .jobs[0].state == "succeeded"' <<<"$r" >/dev/null ||
        fail "wait on $1 for job $2: $r"
    WAITED=$r
}

# start_workers QUEUE: a `jobq work QUEUE --concurrency 4 -- true` on every node (WPIDS).
start_workers() {
    WPIDS=()
    for n in "${NODES[@]}"; do
        "$JOBQ" --url "ipc://$T/$n.sock" work "$1" --concurrency 4 -- true 2>"$T/work.$n.log" &
        WPIDS+=($!)
        CLEANUP_PIDS+=($!)
    done
}

# stop_workers: SIGTERM to start_workers' workers, reaped.
stop_workers() {
    for p in "${WPIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${WPIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}

# by_mode SHORT LONG [SET]: SET when not empty, else LONG with JOBQ_CLUSTER_LONG=1, else SHORT:
# the length of a test's run (the default fits make test; the long mode is run by hand).
by_mode() {
    if [ -n "${3:-}" ]; then
        echo "$3"
    elif [ "${JOBQ_CLUSTER_LONG:-}" = 1 ]; then
        echo "$2"
    else
        echo "$1"
    fi
}
