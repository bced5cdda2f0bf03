#!/usr/bin/env bash
# it_cluster_pgdown.sh: three jobqd nodes on one PostgreSQL (tests/cluster.sh) under load while
# PostgreSQL fails: a producer per node submits without pause (exec and remote-worker jobs),
# exec handlers and `jobq work` workers of every node run them throughout, and
# - PostgreSQL is stopped (pg_ctl stop -m fast) for $OUT_S s and started again;
# - PostgreSQL is frozen (SIGSTOP of the postmaster and every backend) for $OUT_S s, then
#   woken: each node finds its batch hung (event=store_stalled) and answers meanwhile;
# - the listeners' backends are terminated (pg_terminate_backend).
# Afterwards: every request was answered within its timeout ($RT_S s; ok or the retryable
# store_unavailable, nothing else); every submit acknowledged ok exists and succeeded, once;
# every one answered store_unavailable did nothing; every node logged the store's loss and its
# return and runs new jobs without a restart (a job of a queue only it runs, submitted on
# another node: the wake-up crosses the listener). OUT_S is 8 s; JOBQ_CLUSTER_LONG=1 makes it
# 30 s (JOBQ_CLUSTER_OUTAGE_S=N sets it).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"
. "$(dirname "$0")/cluster.sh"

OUT_S=$(by_mode 8 30 "${JOBQ_CLUSTER_OUTAGE_S:-}")
RT_S=10 # a request's timeout (a third of libjobq's default): no reply within it is a hang
cluster_setup

# node_conf NODE: queues ex (exec) and w (remote workers) on every node; only_NODE runs only on
# NODE.
node_conf() {
    {
        server_section "$1"
        cat <<EOF
[queue.ex]
command = sleep 0.05
concurrency = 4

[queue.w]
lease = 5s
EOF
        for o in "${NODES[@]}"; do
            printf '\n[queue.only_%s]\n' "$o"
            [ "$o" != "$1" ] || echo "command = true"
        done
    } >"$T/$1.conf"
}

# log_count NODE PATTERN: lines matching PATTERN in NODE's current log.
log_count() { grep -c -- "$2" "${LOGF[$1]}" || true; }

# wait_log_more NODE PATTERN COUNT [SECONDS]: waits until NODE's log has more than COUNT lines
# matching PATTERN.
wait_log_more() {
    local deadline=$((SECONDS + ${4:-60}))
    until [ "$(log_count "$1" "$2")" -gt "$3" ]; do
        [ $SECONDS -lt $deadline ] || fail "node $1 never logged '$2' again; its log ends: $(tail -n 5 "${LOGF[$1]}")"
        sleep 0.05
    done
}

# producer NODE: submits to NODE until $T/stop exists, one request at a time, alternately to
# ex and w, each with a unique payload; one line per request in $T/prod.NODE: tag, start (ms
# since the epoch), time to the reply (ms), jobq-raw's status, the reply.
producer() {
    local n=$1 i=0 qn r rc t0 t1
    while [ ! -e "$T/stop" ]; do
        i=$((i + 1))
        qn=ex
        [ $((i % 2)) = 1 ] || qn=w
        t0=${EPOCHREALTIME/./}
        rc=0
        r=$("$JOBQ_RAW" "ipc://$T/$n.sock" "$RT_S" --data \
            "{\"op\":\"submit\",\"queue\":\"$qn\",\"payload\":{\"p\":\"$n-$i\"}}" 2>&1) || rc=$?
        t1=${EPOCHREALTIME/./}
        echo "$n-$i $((t0 / 1000)) $(((t1 - t0) / 1000)) $rc $r" >>"$T/prod.$n"
        [ "$rc" = 0 ] || sleep 0.1 # no reply: jobq-raw reported it; do not spin
    done
}

# acked NODE: how many submits NODE's producer got an ok for so far.
acked() { cat "$T/prod.$1" 2>/dev/null | grep -c '"ok":true' || true; }

# wait_progress WHAT: waits until every producer got 10 more oks (the nodes serve again).
wait_progress() {
    local n base
    for n in "${NODES[@]}"; do
        base=$(acked "$n")
        poll_until "node $n acknowledges submits again ($1)" '[ "$(acked "$n")" -ge $((base + 10)) ]'
    done
}

for n in "${NODES[@]}"; do launch_node "$n"; done
for n in "${NODES[@]}"; do wait_log "$n" 'event=ready'; done
for n in "${NODES[@]}"; do wait_log "$n" 'event=listener_started'; done
start_workers w
PPIDS=()
for n in "${NODES[@]}"; do
    producer "$n" &
    PPIDS+=($!)
    CLEANUP_PIDS+=($!)
done
wait_progress "at start"
ok "3 nodes under load: a producer per node, exec handlers and 3 workers of concurrency 4"

# outage_window PHASE START_MS END_MS: the figures of the requests sent from START_MS to
# END_MS (they overlap the outage): how many, how many store_unavailable, the longest.
outage_window() {
    cat "$T"/prod.? | awk -v a="$2" -v b="$3" -v p="$1" '
        $2 >= a && $2 <= b { n++; if ($0 ~ /store_unavailable/) u++; if ($3 > m) m = $3 }
        END { printf "%s: %d requests, %d store_unavailable, the longest %d ms\n", p, n, u, m }'
}

# outage WHAT DOWN FOUND UP: under load, runs DOWN, waits until every node logged FOUND (it
# found the store gone), runs UP once OUT_S s have passed since DOWN, and waits until every
# node's heartbeat came back and every producer is served again. FIGS: the figures of the
# requests sent meanwhile.
outage() {
    local what=$1 down=$2 found=$3 up=$4 n t0 t1 t_found left
    declare -A base_found base_back
    for n in "${NODES[@]}"; do
        base_found[$n]=$(log_count "$n" "$found")
        base_back[$n]=$(log_count "$n" 'event=heartbeat_resumed')
    done
    t0=$(($(date +%s%N) / 1000000))
    $down || fail "$down"
    for n in "${NODES[@]}"; do wait_log_more "$n" "$found" "${base_found[$n]}" $((OUT_S + 20)); done
    t_found=$(($(date +%s%N) / 1000000))
    left=$((t0 + OUT_S * 1000 - t_found))
    [ "$left" -le 0 ] || sleep "$(printf '%d.%03d' $((left / 1000)) $((left % 1000)))"
    $up || fail "$up"
    for n in "${NODES[@]}"; do wait_log_more "$n" 'event=heartbeat_resumed' "${base_back[$n]}" 30; done
    wait_progress "after PostgreSQL $what"
    t1=$(($(date +%s%N) / 1000000))
    FIGS="every node found it in $((t_found - t0)) ms ($found); $(outage_window "$what ${OUT_S} s" "$t0" "$t1")"
}

outage stopped "pg_stop fast" 'event=store_unreachable' pg_start
ok "PostgreSQL stopped (pg_ctl stop -m fast) for $OUT_S s under load, started again: $FIGS"
# Frozen, each node finds its batch hung (a new connection unanswered too) and answers at once.
outage frozen pg_freeze 'event=store_stalled' pg_frozen_cont
ok "PostgreSQL frozen (SIGSTOP) for $OUT_S s under load, woken: $FIGS"

# ---- the listeners' backends terminated under load ----
declare -A base_rc
for n in "${NODES[@]}"; do base_rc[$n]=$(log_count "$n" 'event=listener_reconnected'); done
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'jobqd-listen'" >/dev/null
for n in "${NODES[@]}"; do wait_log_more "$n" 'event=listener_reconnected' "${base_rc[$n]}" 30; done
ok "the listeners' backends terminated under load: every node reconnected"

touch "$T/stop"
for p in "${PPIDS[@]}"; do wait "$p" || fail "a producer failed"; done

# ---- every node runs new jobs, woken from another node ----
lat=()
for n in "${NODES[@]}"; do
    for o in "${NODES[@]}"; do
        [ "$o" != "$n" ] || continue
        id=$(ncli "$o" submit "only_$n" "{\"from\":\"$o\"}")
        wait_job "$o" "$id" 30
        lat+=("$n<-$o $(jq '.jobs[0].started_at - .jobs[0].created_at' <<<"$WAITED") ms")
    done
done
ok "every node runs the jobs of its own queue submitted on the others (submit to start: ${lat[*]})"

# ---- every request answered in time; every acknowledged submit done once ----
total=$(cat "$T"/prod.? | wc -l)
hung=$(cat "$T"/prod.? | awk '$4 != 0' | wc -l)
[ "$hung" = 0 ] || fail "$hung of $total requests got no reply within $RT_S s: $(cat "$T"/prod.? | awk '$4 != 0' | head -n 5)"
# A COMMIT sent when the server froze cannot be resolved before it wakes: answered store_error
# "outcome unknown" (it may have committed), never a wrong store_unavailable.
unknown=$(cat "$T"/prod.? | grep '"code":"store_error".*outcome is unknown' | awk '{print $1}' || true)
other=$(cat "$T"/prod.? | grep -v '"ok":true' | grep -v '"code":"store_unavailable"' |
    grep -v 'outcome is unknown' || true)
[ -z "$other" ] || fail "requests answered neither ok nor store_unavailable: $(head -n 5 <<<"$other")"
slowest=$(cat "$T"/prod.? | sort -k3,3n | tail -n 1 | awk '{print $3}')
cat "$T"/prod.? | grep '"ok":true' | sed 's/^\([^ ]*\) .*"id":\([0-9]*\).*/\2 \1/' | sort -n >"$T/acked"
cat "$T"/prod.? | grep '"code":"store_unavailable"' | awk '{print $1}' | sort >"$T/refused"
n_acked=$(wc -l <"$T/acked")
n_refused=$(wc -l <"$T/refused")
unended() { q "SELECT count(*) FROM jobs WHERE queue IN ('ex','w') AND state NOT IN (4, 5, 6)"; }
# Every acknowledged submit ends, with no restart: a job a claim took is run or handed back
# (a claim reads again the jobs its own snapshot missed: store_pg.c, pg_claim_keys).
if ! (poll_until "every acknowledged submit ended" '[ "$(unended)" = 0 ]' 2>/dev/null); then
    q "SELECT id, queue, state, attempt, owner FROM jobs WHERE queue IN ('ex','w')
       AND state NOT IN (4, 5, 6) ORDER BY id LIMIT 10" >&2 || true
    fail "$(unended) acknowledged jobs have not ended (above: id queue state attempt owner)"
fi
q "SELECT id || ' ' || (payload::json->>'p') || ' ' || state FROM jobs WHERE queue IN ('ex','w') ORDER BY id" >"$T/stored"
missing=$(awk 'NR == FNR { s[$1 " " $2] = 1; next } !(($1 " " $2) in s)' \
    <(awk '{print $1, $2}' "$T/stored") "$T/acked")
[ -z "$missing" ] || fail "acknowledged submits missing (id tag): $(head -n 5 <<<"$missing")"
notok=$(awk '$3 != 4' "$T/stored")
[ -z "$notok" ] || fail "jobs that did not succeed (id tag state): $(head -n 5 <<<"$notok")"
twice=$(awk '{print $2}' "$T/stored" | sort | uniq -d)
[ -z "$twice" ] || fail "payloads stored twice: $(head -n 5 <<<"$twice")"
done_anyway=$(comm -12 "$T/refused" <(awk '{print $2}' "$T/stored" | sort))
[ -z "$done_anyway" ] || fail "submits answered store_unavailable that were stored: $(head -n 5 <<<"$done_anyway")"
multi=$(q "SELECT count(*) FROM (SELECT job_id FROM attempts a JOIN jobs j ON j.id = a.job_id
           WHERE j.queue IN ('ex','w') AND a.kind = 'success' GROUP BY job_id HAVING count(*) > 1) x")
expect_eq "jobs with more than one successful attempt" "$multi" 0
ok "$total requests: each answered within $RT_S s (the slowest in $slowest ms): $n_acked ok, each stored once and succeeded; $n_refused store_unavailable, none stored; $(grep -c . <<<"$unknown" || true) outcome unknown"

stop_workers
for n in "${NODES[@]}"; do stop_node "$n"; done
ok "the nodes drain and exit 0"
