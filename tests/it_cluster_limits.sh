#!/usr/bin/env bash
# it_cluster_limits.sh: a queue's `rate` and circuit breaker hold across three jobqd nodes on
# one PostgreSQL database (a cluster of its own from tests/pg.sh), real processes:
# - `rate = 10/s` on a queue every node runs: the starts of the three together, counted from
#   the handlers' own log, stay within the rate in every 1 s and 2 s window (three buckets of
#   their own would start about 30 a second);
# - a handler failing on node a only opens the breaker there; nodes b and c, whose handlers
#   succeed, stop starting the queue's jobs until the open period ends, show it open in
#   `jobq stats`, `explain` and /metrics, and start again once a's half-open probe succeeded;
# - node a killed while its breaker is open: b and c hold the queue through the open period
#   and one cooldown more (a's verdict, overdue), then probe themselves and close it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"

NODES=(a b c)
declare -A PID
declare -A LOGF

mkdir "$T/pg"
pg_init "$T/pg" || fail "no PostgreSQL cluster"
stop_nodes() {
    for n in "${NODES[@]}"; do
        [ -z "${PID[$n]:-}" ] || kill -9 "${PID[$n]}" 2>/dev/null || true
    done
}
trap 'rc=$?; set +e; stop_nodes; pg_stop immediate >/dev/null 2>&1; (exit $rc); cleanup' EXIT
pg_start || fail "PostgreSQL did not start"
pg_psql -c "CREATE DATABASE jobq" || fail "CREATE DATABASE"
DBURL=$(pg_url jobq)

# The handlers log "ms-since-epoch start NODE" as they start; brk fails on node a while
# $T/down exists, and always succeeds on b and c.
cat >"$T/rl.sh" <<EOF
#!/bin/sh
echo "\$(date +%s%3N) start \$1" >>"$T/rl.log"
sleep 0.05
EOF
cat >"$T/brk.sh" <<EOF
#!/bin/sh
echo "\$(date +%s%3N) start \$1" >>"$T/brk.log"
if [ "\$1" = a ] && [ -e "$T/down" ]; then exit 1; fi
sleep 0.2
EOF
chmod +x "$T/rl.sh" "$T/brk.sh"
touch "$T/down" "$T/rl.log" "$T/brk.log"
chmod 666 "$T/rl.log" "$T/brk.log"
chmod 777 "$T"

for n in "${NODES[@]}"; do
    cat >"$T/$n.conf" <<EOF
[server]
listen = ipc://$T/$n.sock
http = 127.0.0.1:0
database = $DBURL
node = $n
$(user_line)

[queue.rl]
command = $T/rl.sh $n
concurrency = 8
rate = 10/s

[queue.brk]
command = $T/brk.sh $n
concurrency = 2
max_attempts = 1
breaker_failures = 3
breaker_cooldown = 4s
EOF
    LOGF[$n]="$T/$n.log"
    "$JOBQD" -c "$T/$n.conf" 2>>"${LOGF[$n]}" &
    PID[$n]=$!
done
wait_log() {
    timeout "${3:-60}" grep -q -m1 -- "$2" <(tail -F -n +1 "${LOGF[$1]}" 2>/dev/null) ||
        fail "node $1 never logged '$2'; its log ends: $(tail -n 5 "${LOGF[$1]}")"
}
for n in "${NODES[@]}"; do wait_log "$n" 'event=ready'; done
ncli() {
    local n=$1
    shift
    "$JOBQ" --url "ipc://$T/$n.sock" "$@"
}
http() {
    local p
    p=$(grep -o 'event=http_listen addr=127\.0\.0\.1:[0-9]*' "${LOGF[$1]}" | tail -n 1 | sed 's/.*://')
    [ -n "$p" ] || fail "no event=http_listen line for $1"
    curl -sS --max-time 10 "http://127.0.0.1:$p$2"
}
now_ms() { date +%s%3N; }

# ---- rate = 10/s over the three nodes ----
ncli a pause rl >/dev/null
seq 1 100 | sed 's/.*/{}/' >"$T/rl.ndjson"
ncli b submit rl --batch "$T/rl.ndjson" >/dev/null
ncli c resume rl >/dev/null
sleep 4.5 # starts over a window of time are what is measured
t0=$(sort -n "$T/rl.log" | awk '{ print $1; exit }')
[ -n "$t0" ] || fail "no job of rl started"
# Any 1 s window: at most 10 plus the burst (a quarter of a second's worth: 2) plus one for the
# time between a claim and its handler's log line; 2 s: 20 plus the same.
worst1=$(sort -n "$T/rl.log" | awk -v end=$((t0 + 4000)) '$1 < end { t[n++] = $1 }
    END { m = 0; for (i = 0; i < n; i++) { c = 0; for (j = i; j < n && t[j] < t[i] + 1000; j++) c++; if (c > m) m = c }; print m }')
worst2=$(sort -n "$T/rl.log" | awk -v end=$((t0 + 4000)) '$1 < end { t[n++] = $1 }
    END { m = 0; for (i = 0; i < n; i++) { c = 0; for (j = i; j < n && t[j] < t[i] + 2000; j++) c++; if (c > m) m = c }; print m }')
in4=$(awk -v a="$t0" -v b=$((t0 + 4000)) '$1 >= a && $1 < b' "$T/rl.log" | wc -l)
nodes_used=$(awk -v b=$((t0 + 4000)) '$1 < b { print $3 }' "$T/rl.log" | sort -u | wc -l)
log_head() { sort -n "$T/rl.log" | awk -v a="$t0" '{ printf "%d:%s ", $1 - a, $3 }' | head -c 1500; }
[ "$worst1" -le 13 ] || fail "rate 10/s: $worst1 starts in one 1 s window over the 3 nodes: $(log_head)"
[ "$worst2" -le 23 ] || fail "rate 10/s: $worst2 starts in one 2 s window over the 3 nodes: $(log_head)"
[ "$in4" -ge 36 ] && [ "$in4" -le 44 ] || fail "rate 10/s: $in4 starts in 4 s, want about 40: $(log_head)"
[ "$nodes_used" -ge 2 ] || fail "rate 10/s: only $nodes_used node(s) started jobs: $(log_head)"
ok "rate 10/s held over 3 nodes: at most $worst1 starts in any 1 s, $worst2 in any 2 s, $in4 in 4 s, on $nodes_used nodes"
ncli a pause rl >/dev/null

# ---- a breaker node a opens holds the queue on b and c ----
seq 1 200 | sed 's/.*/{}/' >"$T/brk.ndjson"
ncli a submit brk --batch "$T/brk.ndjson" >/dev/null
wait_log a 'event=breaker_open queue=brk reason="3 consecutive failures"' 20
opened=$(now_ms)
rm -f "$T/down" # the downstream is back: a's probe will succeed
for n in b c; do
    wait_log "$n" 'event=breaker_open queue=brk reason="node a: 3 consecutive failures"' 5
    expect_eq "breaker of brk in jobq stats on $n" "$(ncli "$n" stats --json | jq -r .queues.brk.breaker)" open
    m=$(http "$n" /metrics)
    grep -q '^jobq_breaker_state{queue="brk"} 1$' <<<"$m" ||
        fail "/metrics of $n: $(grep jobq_breaker_state <<<"$m")"
    ex=$(ncli "$n" explain "$(pg_psql jobq -c "SELECT min(id) FROM jobs WHERE queue = 'brk' AND state = 1")")
    grep -q "node a: 3 consecutive failures" <<<"$ex" || fail "explain on $n: $ex"
done
# Open for 4 s from a's open, then half-open with a's probe deciding: no start on b or c from
# a moment after the open (the notification, a claim in flight) until a closed it.
wait_log a 'event=breaker_closed queue=brk' 20
closed=$(now_ms)
for n in b c; do wait_log "$n" 'event=breaker_closed queue=brk' 5; done
late=$(awk -v a=$((opened + 500)) -v b=$((closed - 100)) '$1 >= a && $1 < b && $3 != "a"' "$T/brk.log" | wc -l)
[ "$late" -eq 0 ] || fail "$late jobs of brk started on b or c while a's breaker was open: $(awk -v a="$opened" '{ printf "%d:%s ", $1 - a, $3 }' "$T/brk.log" | tail -c 1500)"
grep -q 'event=breaker_closed queue=brk$' "${LOGF[a]}" || fail "a did not close it by its probe"
for n in b c; do
    grep -q 'event=breaker_closed queue=brk by=another_node' "${LOGF[$n]}" || fail "$n closed it by itself"
    grep -q 'event=breaker_half_open queue=brk probe=another_node' "${LOGF[$n]}" ||
        fail "$n half-opened without waiting for a's probe"
done
poll_until "b and c start jobs of brk again" \
    "[ \$(awk -v a=$closed '\$1 >= a && \$3 != \"a\"' \"$T/brk.log\" | wc -l) -gt 0 ]"
ok "a's breaker opened on b and c at once (stats, /metrics), no start there while open; a's probe closed it for all ($((closed - opened)) ms)"

# ---- the opener stops while its breaker is open: the others probe after one more cooldown ----
touch "$T/down"
ncli b submit brk --batch "$T/brk.ndjson" >/dev/null
poll_until "a opens the breaker of brk again" \
    "[ \$(grep -c 'event=breaker_open queue=brk reason=\"3 consecutive failures\"' \"${LOGF[a]}\") -ge 2 ]"
opened=$(now_ms)
kill -9 "${PID[a]}"
PID[a]=
rm -f "$T/down"
mark=$(wc -l <"$T/brk.log")
# Open for 4 s, then held 4 s more for a's verdict, which never comes: b and c probe then.
poll_until "b or c probes and closes the breaker of brk" \
    "grep -q 'event=breaker_closed queue=brk\$' \"${LOGF[b]}\" \"${LOGF[c]}\""
closed=$(now_ms)
for n in b c; do wait_log "$n" 'event=breaker_closed queue=brk' 5; done
early=$(tail -n +$((mark + 1)) "$T/brk.log" | awk -v a=$((opened + 500)) -v b=$((opened + 7500)) '$1 >= a && $1 < b' | wc -l)
[ "$early" -eq 0 ] || fail "$early jobs of brk started on b or c before a's verdict was overdue: $(tail -n +$((mark + 1)) "$T/brk.log" | awk -v a="$opened" '{ printf "%d:%s ", $1 - a, $3 }' | head -c 1500)"
[ $((closed - opened)) -ge 7500 ] || fail "closed $((closed - opened)) ms after the open, before a's verdict was overdue"
ok "the opener killed while open: b and c held the queue through the open period and one cooldown more, then probed and closed it ($((closed - opened)) ms)"
