#!/usr/bin/env bash
# it_cluster.sh: three jobqd nodes on one PostgreSQL database (a cluster of its own from
# tests/pg.sh), real processes, no mocks:
# - the three started at once on an empty database migrate it once (advisory lock); one
#   leader is elected; `jobq nodes` lists the three;
# - a job submitted on node a is started by node b (the only one with a command for its
#   queue) through NOTIFY, and a `wait` held on a is answered when b finishes it;
# - many no-op jobs ($JOBQ_CLUSTER_JOBS, default 10,000; half exec handlers on every node,
#   half remote workers `jobq work` on every node) submitted to all three: each ends exactly
#   once (one attempt, succeeded), none lost;
# - global_concurrency holds across the nodes (the handlers count each other);
# - cancel on one node of a job running on another;
# - kill -9 of the leader with jobs running: they are rescued (a crash attempt) and run
#   elsewhere; another node is elected;
# - one idempotency key submitted to the three nodes at once: one job, two duplicates;
# - pause on one node holds the queue on all; resume on another releases it;
# - the listener's backend terminated: every node reconnects, resyncs, and wake-ups resume;
# - SIGSTOP of a node past its TTL, then SIGCONT: its jobs were rescued and ran elsewhere, and
#   the outcomes it records after waking change nothing (fenced); it re-registers;
# - a per-minute schedule across the leader's death: each tick fired exactly once (the test
#   waits for the first tick after the kill: up to a minute).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"
. "$(dirname "$0")/cluster.sh"

N=${JOBQ_CLUSTER_JOBS:-10000}
cluster_setup

mkdir -p "$T/g"
cat >"$T/gjob.sh" <<EOF
#!/bin/sh
# a job of queue g: counts the g jobs running at once (across the nodes) while it runs
touch "$T/g/\$JOBQ_JOB_ID"
ls "$T/g" | wc -l >>"$T/g.counts"
sleep 0.3
rm -f "$T/g/\$JOBQ_JOB_ID"
EOF
chmod +x "$T/gjob.sh"

# node_conf NODE: the config of a node; only node b has a command for queue only_b.
node_conf() {
    local n=$1 onlyb=""
    [ "$n" != b ] || onlyb="command = true"
    {
        server_section "$n"
        cat <<EOF
[queue.ex]
command = true
concurrency = 4

[queue.w]
lease = 20s

[queue.only_b]
$onlyb

[queue.slow]
command = sleep 3
concurrency = 3

[queue.long]
command = sleep 60
concurrency = 2

[queue.g]
command = $T/gjob.sh
concurrency = 4
global_concurrency = 2

[queue.ticks]

[schedule.tick]
cron = * * * * *
queue = ticks
EOF
    } >"$T/$n.conf"
}

# http NODE PATH: GET on the node's monitor endpoint (its port from event=http_listen).
http() {
    local p
    p=$(grep -o 'event=http_listen addr=127\.0\.0\.1:[0-9]*' "${LOGF[$1]}" | tail -n 1 | sed 's/.*://')
    [ -n "$p" ] || fail "no event=http_listen line for $1"
    curl -sS --max-time 10 "http://127.0.0.1:$p$2"
}
owner_of() { q "SELECT n.name FROM jobs j JOIN jobq_nodes n ON n.incarnation = j.owner WHERE j.id = $1"; }

# ---- three nodes started at once on an empty database ----
for n in "${NODES[@]}"; do launch_node "$n"; done
for n in "${NODES[@]}"; do wait_log "$n" 'event=ready'; done
files=$(ls "$JOBQ_SRC"/migrations/pg/*.sql | wc -l)
expect_eq "migrations recorded" "$(q 'SELECT count(*) FROM jobq_migrations')" "$files"
migrated=$(cat "$T"/a.1.log "$T"/b.1.log "$T"/c.1.log | grep -c 'event=migrated' || true)
expect_eq "migration lines over the three logs" "$migrated" "$files"
ok "3 nodes started at once on an empty database: $files migrations applied once"

poll_until "a leader is elected" '[ -n "$(leader)" ]'
L=$(leader)
expect_eq "live nodes" "$(q "SELECT count(*) FROM jobq_nodes WHERE NOT fenced AND expires_at >= now()")" 3
out=$(ncli a nodes) || fail "jobq nodes: $out"
for n in "${NODES[@]}"; do grep -q "^$n " <<<"$out" || fail "jobq nodes lacks $n: $out"; done
grep -q "^$L .*leader" <<<"$out" || fail "jobq nodes does not mark $L the leader: $out"
r=$(nraw c '{"op":"nodes"}')
expect_eq "nodes op: alive" "$(jq '[.nodes[] | select(.alive)] | length' <<<"$r")" 3
expect_eq "nodes op: leaders" "$(jq '[.nodes[] | select(.leader)] | length' <<<"$r")" 1
for n in "${NODES[@]}"; do
    want=0
    [ "$n" != "$L" ] || want=1
    m=$(http "$n" /metrics)
    grep -q "^jobq_node_leader{node=\"$n\"} $want\$" <<<"$m" || fail "/metrics of $n: $(grep jobq_node <<<"$m")"
    grep -q "^jobq_node_info{node=\"$n\"," <<<"$m" || fail "/metrics of $n has no jobq_node_info"
    h=$(http "$n" /healthz)
    grep -q "^store: up" <<<"$h" || fail "/healthz of $n: $h"
    role=follower
    [ "$n" != "$L" ] || role=leader
    # A follower learns who leads at its next heartbeat after the election (poll_interval).
    poll_until "jobq stats on $n names $L the leader" \
        'ncli "$n" stats | grep -q "^node $n ($role; leader $L), store up"'
    expect_eq "/stats cluster of $n" "$(http "$n" /stats | jq -c '[.cluster.node, .cluster.leader, .cluster.leader_node]')" \
        "[\"$n\",$([ "$role" = leader ] && echo true || echo false),\"$L\"]"
done
ok "one leader ($L); \`jobq nodes\` and the nodes op list the three; /metrics shows each node's role, /healthz the store, \`jobq stats\` and /stats (the dashboard's header) the node, its role and the leader"

# The backlog is re-read after each heartbeat on a connection of its own, beside the writer.
for n in "${NODES[@]}"; do
    poll_until "$n has read the cluster's backlog" \
        'http "$n" /metrics | grep -Eq "^jobq_cluster_events_total\{node=\"$n\",event=\"backlog_read\"\} [1-9]"'
    m=$(http "$n" /metrics)
    grep -q "^jobq_cluster_events_total{node=\"$n\",event=\"backlog_read_failed\"} 0\$" <<<"$m" ||
        fail "$n failed to read the backlog: $(grep backlog_read <<<"$m")"
done
ok "each node reads the cluster's backlog on its own connection (backlog_read counted, none failed)"

# ---- schedules are changed on the leader, which fires them ----
F=
for n in "${NODES[@]}"; do [ "$n" = "$L" ] || F=$n; done
r=$(nraw "$F" '{"op":"schedule_add","name":"nightly","cron":"0 3 * * *","queue":"w"}')
expect_eq "schedule_add on follower $F" "$(jq -r .error.code <<<"$r")" invalid_state
grep -q "leader (node $L)" <<<"$(jq -r .error.message <<<"$r")" || fail "the refusal names no leader: $r"
r=$(nraw "$L" '{"op":"schedule_add","name":"nightly","cron":"0 3 * * *","queue":"w"}')
jq -e .ok <<<"$r" >/dev/null || fail "schedule_add on the leader $L: $r"
r=$(nraw "$L" '{"op":"schedule_delete","name":"nightly"}')
jq -e .ok <<<"$r" >/dev/null || fail "schedule_delete on the leader $L: $r"
ok "a schedule change sent to follower $F is refused naming the leader; on the leader $L it is made"

# ---- submit on a, start on b through NOTIFY; a wait held on a answered by b's finish ----
lat=()
for i in $(seq 30); do
    id=$(ncli a submit only_b "{\"i\":$i}")
    r=$(nraw a "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"20s\"}")
    jq -e '.done and .jobs[0].state == "succeeded"' <<<"$r" >/dev/null || fail "wait on a: $r"
    expect_eq "node that ran job $id" "$(q "SELECT count(*) FROM attempts WHERE job_id = $id")" 1
    lat+=("$(jq '.jobs[0].started_at - .jobs[0].created_at' <<<"$r")")
done
sorted=$(printf '%s\n' "${lat[@]}" | sort -n)
ok "30 jobs submitted on a, run by b (NOTIFY), each wait held on a answered: submit->start ms p50 $(sed -n 15p <<<"$sorted"), p90 $(sed -n 27p <<<"$sorted"), max $(tail -n 1 <<<"$sorted")"

# ---- one key submitted to the three nodes at once: one job, the others duplicates ----
for round in 1 2 3 4 5; do
    kp=()
    for n in "${NODES[@]}"; do
        nraw "$n" "{\"op\":\"submit\",\"queue\":\"only_b\",\"payload\":{\"r\":$round},\"key\":\"k$round\"}" >"$T/key.$n" &
        kp+=($!)
    done
    wait "${kp[@]}"
    ids=$(cat "$T"/key.a "$T"/key.b "$T"/key.c | jq -r 'if .ok then .id else "error: \(.error.message)" end' | sort -u)
    expect_eq "ids answered for key k$round on 3 nodes" "$(wc -l <<<"$ids")" 1
    expect_eq "duplicates among the 3 answers" "$(cat "$T"/key.a "$T"/key.b "$T"/key.c | jq -s '[.[] | select(.duplicate)] | length')" 2
done
expect_eq "jobs with keys k1..k5" "$(q "SELECT count(*) FROM jobs WHERE key LIKE 'k_'")" 5
ok "one key submitted to the 3 nodes at once, 5 times: one job each, the two others answered duplicate"

# ---- pause and resume are the cluster's ----
ncli a pause only_b >/dev/null
wait_log b 'event=queue_paused queue=only_b by=another_node' 20
id=$(ncli c submit only_b '{"paused":true}')
r=$(nraw c "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"1s\"}")
expect_eq "state of a job of the queue paused on a, submitted on c, 1 s later" "$(jq -r '.jobs[0].state' <<<"$r")" ready
ncli c resume only_b >/dev/null
r=$(nraw a "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"20s\"}")
jq -e '.done and .jobs[0].state == "succeeded"' <<<"$r" >/dev/null || fail "after resume on c: $r"
ok "pause on a stops b (the queue's only runner) from starting a job submitted on c; resume on c starts it"

# ---- the listener's backend terminated: it reconnects, and wake-ups resume ----
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'jobqd-listen'" >/dev/null
for n in "${NODES[@]}"; do wait_log "$n" 'event=listener_reconnected' 30; done
id=$(ncli c submit only_b '{"after":"reconnect"}')
r=$(nraw c "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"20s\"}")
jq -e '.done and .jobs[0].state == "succeeded"' <<<"$r" >/dev/null || fail "wait after the reconnect: $r"
ok "every node's listener terminated by PostgreSQL reconnected (resync); submit on c, run by b, wait on c: $(jq '.jobs[0].started_at - .jobs[0].created_at' <<<"$r") ms to start"

# ---- many jobs through exec handlers and remote workers on every node ----
start_workers w
t0=$(date +%s%N)
half=$((N / 2))
per=1000
k=0
for ((i = 0; i < N; i += per)); do
    n=${NODES[$((k % 3))]}
    qn=ex
    [ $i -lt $half ] || qn=w
    jq -cn --arg q "$qn" --argjson from "$i" --argjson per "$per" \
        '{op:"submit_batch",jobs:[range($from; $from + $per) | {queue:$q,payload:{i:.}}]}' >"$T/batch.json"
    r=$(timeout 70 "$JOBQ_RAW" "ipc://$T/$n.sock" 60 --file "$T/batch.json")
    jq -e '.ok' <<<"$r" >/dev/null || fail "submit_batch on $n: $r"
    k=$((k + 1))
done
# At least 60 s, and 10 ms a job (100,000 jobs ran at 255 jobs/s on a loaded 2-core machine).
JOBQ_POLL_TIMEOUT=$((N / 100 > ${JOBQ_POLL_TIMEOUT:-60} ? N / 100 : ${JOBQ_POLL_TIMEOUT:-60})) \
    poll_until "all $N jobs succeeded" \
    '[ "$(q "SELECT count(*) FROM jobs WHERE queue IN ('"'ex','w'"') AND state = 4")" = "$N" ]'
ms=$((($(date +%s%N) - t0) / 1000000))
expect_eq "jobs not succeeded" "$(q "SELECT count(*) FROM jobs WHERE queue IN ('ex','w') AND state <> 4")" 0
expect_eq "jobs with more than one attempt" \
    "$(q "SELECT count(*) FROM (SELECT job_id FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.queue IN ('ex','w') GROUP BY job_id HAVING count(*) <> 1) x")" 0
expect_eq "attempts not a success" \
    "$(q "SELECT count(*) FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.queue IN ('ex','w') AND a.kind <> 'success'")" 0
stop_workers
ok "$N jobs (half exec, half remote workers) on 3 nodes: each succeeded once, none lost, in ${ms} ms ($((N * 1000 / (ms > 0 ? ms : 1))) jobs/s)"

# ---- global_concurrency = 2 across three nodes of concurrency 4 ----
jq -cn '{op:"submit_batch",jobs:[range(24) | {queue:"g",payload:{i:.}}]}' >"$T/g.json"
r=$(timeout 70 "$JOBQ_RAW" "ipc://$T/a.sock" 60 --file "$T/g.json")
ids=$(jq -c .ids <<<"$r")
r=$(nraw b "{\"op\":\"wait\",\"ids\":$ids,\"timeout\":\"50s\"}")
jq -e '.done and ([.jobs[] | select(.state == "succeeded")] | length) == 24' <<<"$r" >/dev/null ||
    fail "g jobs: $(jq -c '[.jobs[].state] | group_by(.) | map({(.[0]): length}) | add' <<<"$r")"
max=$(sort -n "$T/g.counts" | tail -n 1)
[ "$max" -le 2 ] || fail "global_concurrency = 2 exceeded: $max jobs of g ran at once"
ok "global_concurrency = 2 held across 3 nodes of concurrency 4: at most $max of 24 ran at once"

# ---- cancel on one node of a job running on another ----
id=$(ncli a submit long '{"c":1}')
poll_until "the long job runs" '[ "$(q "SELECT state FROM jobs WHERE id = $id")" = 2 ]'
o=$(owner_of "$id")
other=a
[ "$o" != a ] || other=b
r=$(nraw "$other" "{\"op\":\"cancel\",\"id\":$id}")
jq -e '.ok and .job.state == "cancelled"' <<<"$r" >/dev/null || fail "cancel on $other of a job on $o: $r"
expect_eq "the last attempt's kind" "$(q "SELECT kind FROM attempts WHERE job_id = $id ORDER BY id DESC LIMIT 1")" cancelled
ok "cancel sent to $other of a job running on $o: stopped there, answered here"

# ---- kill -9 of the leader with jobs running: rescued and run elsewhere ----
L=$(leader)
ids=()
for i in 1 2 3 4 5 6 7 8 9; do ids+=("$(ncli "$L" submit slow "{\"k\":$i}")"); done
poll_until "slow jobs run on $L" \
    '[ "$(q "SELECT count(*) FROM jobs j JOIN jobq_nodes n ON n.incarnation = j.owner WHERE n.name = '"'$L'"' AND j.state = 2 AND j.queue = '"'slow'"'")" -ge 1 ]'
inc=$(q "SELECT incarnation FROM jobq_nodes WHERE name = '$L'")
t_kill=$(date +%s)
kill -9 "${PID[$L]}"
wait "${PID[$L]}" 2>/dev/null || true
PID[$L]=
# The jobs it ran when it died (read now: one may have ended just before the kill; the
# rescue waits for node_ttl).
victims=$(q "SELECT string_agg(id::text, ' ') FROM jobs WHERE owner = $inc AND state = 2")
[ -n "$victims" ] || fail "no job of $L was running at its kill"
survivors=()
for n in "${NODES[@]}"; do [ "$n" = "$L" ] || survivors+=("$n"); done
poll_until "a new leader" 'L2=$(leader); [ -n "$L2" ] && [ "$L2" != "$L" ]'
# The rescue is logged by the leader that did it (on a loaded machine the lease may move).
poll_until "the rescue of $L's jobs" \
    'grep -q "event=rescued" "${LOGF[${survivors[0]}]}" "${LOGF[${survivors[1]}]}"'
r=$(nraw "${survivors[0]}" "{\"op\":\"wait\",\"ids\":[$(IFS=,; echo "${ids[*]}")],\"timeout\":\"50s\"}")
jq -e '.done and ([.jobs[] | select(.state == "succeeded")] | length) == 9' <<<"$r" >/dev/null ||
    fail "slow jobs after the kill: $r"
for v in $victims; do
    expect_eq "attempts of rescued job $v" \
        "$(q "SELECT string_agg(kind, ',' ORDER BY id) FROM attempts WHERE job_id = $v")" "crash,success"
done
ok "kill -9 of the leader $L with jobs $victims running: $L2 elected, rescued them, they ran again elsewhere"

# ---- SIGSTOP of a node past its TTL, then SIGCONT: fenced ----
S=${survivors[0]}
[ "$S" != "$L2" ] || S=${survivors[1]}
ids=()
for i in 1 2 3 4 5 6; do ids+=("$(ncli "$S" submit slow "{\"s\":$i}")"); done
poll_until "slow jobs run on $S" \
    '[ "$(q "SELECT count(*) FROM jobs j JOIN jobq_nodes n ON n.incarnation = j.owner WHERE n.name = '"'$S'"' AND j.state = 2 AND j.queue = '"'slow'"'")" -ge 1 ]'
inc=$(q "SELECT incarnation FROM jobq_nodes WHERE name = '$S'")
kill -STOP "${PID[$S]}"
stopped=$(q "SELECT string_agg(id::text, ' ') FROM jobs WHERE owner = $inc AND state = 2")
[ -n "$stopped" ] || fail "no job of $S was running when it was stopped"
poll_until "$S declared dead" \
    'grep -q "event=node_dead node=$S" "${LOGF[${survivors[0]}]}" "${LOGF[${survivors[1]}]}"'
r=$(nraw "$L2" "{\"op\":\"wait\",\"ids\":[$(IFS=,; echo "${ids[*]}")],\"timeout\":\"50s\"}")
jq -e '.done and ([.jobs[] | select(.state == "succeeded")] | length) == 6' <<<"$r" >/dev/null ||
    fail "slow jobs after the stop: $r"
before=$(q "SELECT string_agg(id || ':' || state || ':' || attempt || ':' || coalesce(finished_at, 0), ' ' ORDER BY id) FROM jobs WHERE id IN ($(echo "$stopped" | tr ' ' ','))")
hist=$(q "SELECT count(*) FROM attempts WHERE job_id IN ($(echo "$stopped" | tr ' ' ','))")
kill -CONT "${PID[$S]}"
wait_log "$S" "event=node_fenced" 30
# Its runners' outcomes (the sleeps ended while it was stopped) are recorded after the fence:
# wait until it has no job running, then compare.
poll_until "$S records its stale outcomes" \
    '[ "$(nraw "$S" "{\"op\":\"nodes\"}" | jq -r ".self.running")" = 0 ]'
after=$(q "SELECT string_agg(id || ':' || state || ':' || attempt || ':' || coalesce(finished_at, 0), ' ' ORDER BY id) FROM jobs WHERE id IN ($(echo "$stopped" | tr ' ' ','))")
expect_eq "rescued jobs after the stopped node woke" "$after" "$before"
expect_eq "attempt rows of the rescued jobs" "$(q "SELECT count(*) FROM attempts WHERE job_id IN ($(echo "$stopped" | tr ' ' ','))")" "$hist"
ok "SIGSTOP of $S past node_ttl: jobs $stopped rescued and run elsewhere; after SIGCONT its outcomes changed nothing (fenced) and it re-registered"

# ---- the schedule across the leader's death: each tick exactly once ----
poll_until "a tick fired after the kill of $L" \
    '[ "$(q "SELECT count(*) FROM jobs WHERE queue = '"'ticks'"' AND run_at >= $((t_kill * 1000))")" -ge 1 ]'
expect_eq "ticks fired twice" "$(q "SELECT count(*) FROM (SELECT run_at FROM jobs WHERE queue = 'ticks' GROUP BY run_at HAVING count(*) > 1) d")" 0
span=$(q "SELECT count(*) || ' ' || ((max(run_at) - min(run_at)) / 60000 + 1) FROM jobs WHERE queue = 'ticks'")
read -r got want <<<"$span"
expect_eq "ticks (one per minute since the first, none missed, none twice)" "$got" "$want"
ok "per-minute schedule across the leader's kill -9: $got ticks, each once"

for n in "${NODES[@]}"; do
    [ -n "${PID[$n]:-}" ] || continue
    kill -TERM "${PID[$n]}"
    rc=0
    wait "${PID[$n]}" || rc=$?
    PID[$n]=
    expect_eq "exit status of $n after SIGTERM" "$rc" 0
done
ok "the nodes left drain and exit 0"
