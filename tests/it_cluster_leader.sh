#!/usr/bin/env bash
# it_cluster_leader.sh: three jobqd nodes on one PostgreSQL (tests/cluster.sh) with a per-minute
# schedule, and a supervisor that kill -9s whichever node leads every 20 s (on the wall clock's
# 20 s marks, a few hundred ms either side, so that every third kill falls on a minute's tick)
# and starts it again at once. Afterwards the jobs the schedule made say that each tick fired
# exactly once: one job per minute mark from the first tick to the last one due, none missing,
# none twice, each carrying its scheduled time in its key and run_at. About 2 minutes (2 or 3
# ticks, 6 kills); JOBQ_CLUSTER_LONG=1 runs 11 minutes (11 ticks, 33 kills), and
# JOBQ_CLUSTER_LEADER_S=N sets the length of the kills in seconds.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"
. "$(dirname "$0")/cluster.sh"

KILL_S=$(by_mode 120 660 "${JOBQ_CLUSTER_LEADER_S:-}")
cluster_setup

node_conf() {
    {
        server_section "$1"
        cat <<EOF
[queue.ticks]

[schedule.tick]
cron = * * * * *
queue = ticks
EOF
    } >"$T/$1.conf"
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# live_leader: the node whose running process (its pid as registered) holds the lease now.
live_leader() {
    local row n pid
    row=$(q "SELECT l.node || ' ' || n.pid FROM jobq_leader l JOIN jobq_nodes n ON
             n.incarnation = l.incarnation WHERE l.expires_at >= now()") || return 1
    read -r n pid <<<"$row"
    [ -n "$n" ] && [ "${PID[$n]:-}" = "$pid" ] || return 1
    echo "$n"
}

t_launch=$(now_ms)
for n in "${NODES[@]}"; do launch_node "$n"; done
for n in "${NODES[@]}"; do wait_log "$n" 'event=ready'; done
t_ready=$(now_ms)
poll_until "a leader is elected" 'L=$(live_leader)'
ok "3 nodes ready, $L leads; killing the leader every 20 s for ${KILL_S} s"

# ---- the supervisor: kill -9 of the leader on each 20 s mark (with an offset), restart ----
offsets=(-400 -150 0 100 250 600 -50 350 -250) # ms from the mark
kills=0
handovers=()
t_stop=$((t_ready + KILL_S * 1000))
while :; do
    mark=$((($(now_ms) / 20000 + 1) * 20000))
    at=$((mark + ${offsets[$((kills % ${#offsets[@]}))]}))
    [ "$at" -le "$t_stop" ] || break
    wait_ms=$((at - $(now_ms)))
    [ "$wait_ms" -le 0 ] || sleep "$(printf '%d.%03d' $((wait_ms / 1000)) $((wait_ms % 1000)))"
    poll_until "a live leader before kill $((kills + 1))" 'L=$(live_leader)'
    t_kill=$(now_ms)
    kill9_node "$L"
    launch_node "$L"
    kills=$((kills + 1))
    wait_log "$L" 'event=ready'
    # Who leads next, and how long the cluster went without one (whoever takes the lease).
    poll_until "a leader after kill $kills" 'L2=$(live_leader)'
    handovers+=("$(($(now_ms) - t_kill))")
    echo "# kill $kills at $((t_kill % 60000)) ms into the minute: $L killed, $L2 leads $((${handovers[-1]})) ms later"
done
t_end=$(now_ms)

# ---- every minute mark since the schedule began has its tick, each once ----
# The schedule starts when a node first stored it (between the launch and the ready lines):
# a mark in that span may have a tick or not; every mark after the ready lines must.
first_due=$(((t_ready / 60000 + 1) * 60000))
last_due=$((t_end / 60000 * 60000))
expected=$(((last_due - first_due) / 60000 + 1))
[ "$expected" -ge 1 ] || fail "no minute mark within the run (ready at $t_ready, end $t_end)"
poll_until "the tick of $last_due (the last mark due)" \
    '[ "$(q "SELECT count(*) FROM jobs WHERE queue = '"'ticks'"' AND key = '"'schedule:tick:$last_due'"'")" -ge 1 ]'
# A duplicate could only come from a leader that did not see its predecessor's tick: give the
# one elected after the last kill its first maintenance runs (a lease's length) to make one.
sleep 4
rows=$(q "SELECT key || ' ' || run_at || ' ' || created_at FROM jobs WHERE queue = 'ticks' ORDER BY run_at, id")
prev=
late=()
n_ticks=0
while read -r key run_at created; do
    [ -n "$key" ] || continue
    tick=${key#schedule:tick:}
    expect_eq "run_at of the job of $key" "$run_at" "$tick"
    [ $((tick % 60000)) -eq 0 ] || fail "tick $tick is not on a minute mark"
    [ "$tick" -gt "$t_launch" ] || fail "tick $tick is before the nodes were launched ($t_launch)"
    [ -z "$prev" ] || [ "$tick" -ne "$prev" ] || fail "tick $tick fired twice"
    [ -z "$prev" ] || expect_eq "the tick after $prev" "$tick" "$((prev + 60000))"
    if [ "$tick" -ge "$first_due" ] || [ -n "$prev" ]; then
        late+=("$((created - tick))")
    fi
    prev=$tick
    n_ticks=$((n_ticks + 1))
done <<<"$rows"
first=$(head -n 1 <<<"$rows" | awk '{print $2}')
[ "$first" -le "$first_due" ] || fail "the first tick is $first, but $first_due was due (ready at $t_ready)"
expect_eq "the last tick" "$prev" "$last_due"
expect_eq "jobs of the schedule" "$(q "SELECT count(*) FROM jobs WHERE queue = 'ticks'")" "$n_ticks"
elections=$(cat "$T"/*.log | grep -c 'event=leader_elected' || true)
sorted=$(printf '%s\n' "${handovers[@]}" | sort -n)
ok "$kills kills of the leader in $(((t_end - t_ready) / 1000)) s ($elections elections; a new leader $(head -n 1 <<<"$sorted")-$(tail -n 1 <<<"$sorted") ms after a kill): $n_ticks ticks, one per minute mark, none missed, none twice (each job created $(printf '%s\n' "${late[@]}" | sort -n | head -n 1)-$(printf '%s\n' "${late[@]}" | sort -n | tail -n 1) ms after its mark)"

for n in "${NODES[@]}"; do stop_node "$n"; done
ok "the nodes drain and exit 0"
