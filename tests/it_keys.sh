#!/usr/bin/env bash
# it_keys.sh: per-key fairness and limits against a real jobqd, observed from the handlers' own
# logs. For exec handlers, remote workers (`jobq work`) and webhooks alike: key_concurrency = 1
# never lets two jobs of one key run at once while other keys run beside it, and keys take
# turns (a key with a backlog submitted first does not delay the keys behind it); explain says
# "key busy (1 running)". key_rate = 5/s starts each key's jobs 5 a second, each key apart.
. "$(dirname "$0")/lib.sh"
: "${JOBQ_HOOKD:?JOBQ_HOOKD must name the jobq-hookd test endpoint}"

# The handler: "TIME_MS start KEY", a short job, "TIME_MS end KEY" appended to the log named
# by its first argument.
cat >"$T/handler.sh" <<'SH'
#!/bin/sh
ms() { date +%s%3N; }
echo "$(ms) start $JOBQ_GROUP_KEY" >>"$1"
sleep "${2:-0.3}"
echo "$(ms) end $JOBQ_GROUP_KEY" >>"$1"
SH
chmod +x "$T/handler.sh"

export JOBQ_HOOKD_KEYS="$T/hook.log" JOBQ_HOOKD_DELAY_MS=300 JOBQ_HOOKD_SLOW_KEY=S \
    JOBQ_HOOKD_SLOW_AFTER=3
echo 200 >"$T/script"
"$JOBQ_HOOKD" "$T/script" "$T/hooks.log" >"$T/hookd.out" &
CLEANUP_PIDS+=("$!")
poll_until "jobq-hookd listens" 'grep -q "^port " "$T/hookd.out"'
hport=$(awk '/^port /{print $2}' "$T/hookd.out")

write_config "[queue.ex]
command = $T/handler.sh $T/ex.log
concurrency = 4
key_concurrency = 1
[queue.rem]
concurrency = 4
key_concurrency = 1
[queue.hook]
url = http://127.0.0.1:$hport/hook
concurrency = 4
key_concurrency = 1
[queue.slow]
url = http://127.0.0.1:$hport/hook
concurrency = 4
key_concurrency = 1
max_attempts = 5
[queue.rt]
command = $T/handler.sh $T/rt.log 0
concurrency = 8
key_rate = 5/s"
start_jobqd

# max_per_key LOG: the most jobs of one key running at once in the log.
max_per_key() {
    sort -n -k1,1 -s "$1" | awk '$2 == "start" { n[$3]++; if (n[$3] > m) m = n[$3] }
        $2 == "end" { n[$3]-- } END { print m + 0 }'
}
# max_all LOG: the most jobs running at once, whatever their key.
max_all() {
    sort -n -k1,1 -s "$1" | awk '$2 == "start" { n++; if (n > m) m = n } $2 == "end" { n-- }
        END { print m + 0 }'
}
# start_order LOG: the keys in the order their jobs started.
start_order() {
    sort -n -k1,1 -s "$1" | awk '$2 == "start" { printf "%s", $3 }'
}

# submit_keys QUEUE: 8 jobs of key A (submitted first), then 2 of B and 2 of C, while the
# queue is paused, so that the claim sees them all at once.
submit_keys() {
    cli pause "$1" >/dev/null
    seq 1 8 | sed 's/.*/{"k":"A"}/' >"$T/a.ndjson"
    cli submit "$1" --batch "$T/a.ndjson" --group-key A >/dev/null
    for k in B C; do
        printf '{"k":"%s"}\n{"k":"%s"}\n' $k $k >"$T/$k.ndjson"
        cli submit "$1" --batch "$T/$k.ndjson" --group-key $k >/dev/null
    done
    cli resume "$1" >/dev/null
}

# check_fair WHAT LOG: at most one job of a key at once, several keys at once, and B and C
# done in the first two turns (all six of their jobs and A's first two start first).
check_fair() {
    expect_eq "$1: jobs started" "$(grep -c ' start ' "$2")" 12
    expect_eq "$1: most jobs of one key at once" "$(max_per_key "$2")" 1
    [ "$(max_all "$2")" -ge 2 ] || fail "$1: keys did not run beside each other: $(cat "$2")"
    local order
    order=$(start_order "$2")
    [ "$(printf '%s' "${order:0:6}" | tr -cd BC | wc -c)" = 4 ] ||
        fail "$1: B and C waited behind A's backlog: start order $order"
    ok "$1: key_concurrency 1 holds (3 keys ran at once) and keys take turns: $order"
}

# Exec handlers; explain of A's waiting job while A runs.
submit_keys ex
poll_until "a job of A runs" '[ "$(cli list --queue ex --state running --json | jq "[.jobs[] | select(.group_key == \"A\")] | length")" = 1 ]'
# A's last job waits behind A's others for seconds: explain says why (polled: between one of A's
# jobs ending and the next starting, A runs nothing for an instant).
id=$(cli list --queue ex --state ready --json | jq -r '[.jobs[] | select(.group_key == "A")][-1].id')
poll_until "explain of job $id says key busy" 'cli explain "$id" | grep -q "key busy (1 running)"'
cli explain "$id" | grep -q 'ready, but key busy (1 running): key "A" of queue ex' ||
    fail "explain of a job of a busy key: $(cli explain "$id")"
cli get "$id" | grep -q '^group_key *A$' || fail "get does not show the group_key: $(cli get "$id")"
cli list --queue ex | grep -q 'GROUP_KEY' || fail "list has no GROUP_KEY column"
ok "explain says key busy (1 running); get and list show the group_key"
poll_until "queue ex drains" '[ "$(cli stats --json | jq .queues.ex.succeeded)" = 12 ]'
check_fair "exec handlers" "$T/ex.log"

# Remote workers: two `jobq work` processes of 4 slots each, one fetch path, one cap.
submit_keys rem
for w in 1 2; do
    "$JOBQ" --url "$SOCK" work rem --concurrency 4 -- "$T/handler.sh" "$T/rem.log" 2>"$T/work$w.err" &
    CLEANUP_PIDS+=("$!")
done
poll_until "queue rem drains" '[ "$(cli stats --json | jq .queues.rem.succeeded)" = 12 ]'
check_fair "remote workers" "$T/rem.log"

# Webhooks: the receiver logs when each delivery arrives and when it answers.
submit_keys hook
poll_until "queue hook drains" '[ "$(cli stats --json | jq .queues.hook.succeeded)" = 12 ]'
check_fair "webhooks" "$T/hook.log"

# A webhook's 429 with Retry-After: 3 for a job of key S holds key S for 3 s, not the queue:
# key T's three jobs run meanwhile, S's second job starts only after the 3 s.
cli pause slow >/dev/null
printf '{}\n{}\n' >"$T/s.ndjson"
printf '{}\n{}\n{}\n' >"$T/t.ndjson"
cli submit slow --batch "$T/s.ndjson" --group-key S >/dev/null
cli submit slow --batch "$T/t.ndjson" --group-key T >/dev/null
: >"$T/hook.log"
cli resume slow >/dev/null
poll_until "queue slow drains" '[ "$(cli stats --json | jq .queues.slow.succeeded)" = 5 ]'
t429=$(sort -n "$T/hook.log" | awk '$2 == "start" && $3 == "S" { print $1; exit }')
t_last=$(sort -n "$T/hook.log" | awk '$2 == "start" && $3 == "T" { t = $1 } END { print t }')
s_second=$(sort -n "$T/hook.log" | awk '$2 == "start" && $3 == "S" { n++; if (n == 2) print $1 }')
[ $((t_last - t429)) -lt 2500 ] ||
    fail "key T waited for key S's slow-down: $(sort -n "$T/hook.log")"
[ $((s_second - t429)) -ge 2900 ] ||
    fail "key S started again $((s_second - t429)) ms after its 429 with Retry-After: 3"
grep -q 'event=key_slowed queue=slow group_key="S"' "$LOG" || fail "no key_slowed line"
! grep -q 'event=queue_slowed queue=slow' "$LOG" || fail "the whole queue was slowed down"
ok "a webhook's 429 with Retry-After holds its key only: T ran meanwhile, S again after $((s_second - t429)) ms"

# key_rate = 5/s: 30 jobs of each of two keys; over the first 2 s each key starts about 10
# (5/s, each key its own: one shared bucket would give each about 5).
cli pause rt >/dev/null
seq 1 30 | sed 's/.*/{}/' >"$T/rt.ndjson"
cli submit rt --batch "$T/rt.ndjson" --group-key X >/dev/null
cli submit rt --batch "$T/rt.ndjson" --group-key Y >/dev/null
cli resume rt >/dev/null
sleep 3.2 # the rate is what is measured: starts over a window of time
t0=$(sort -n "$T/rt.log" | awk '$2 == "start" { print $1; exit }')
for k in X Y; do
    for w in 0 1000; do
        n=$(awk -v k=$k -v a=$((t0 + w)) -v b=$((t0 + w + 2000)) \
            '$2 == "start" && $3 == k && $1 >= a && $1 < b' "$T/rt.log" | wc -l)
        [ "$n" -ge 8 ] && [ "$n" -le 11 ] ||
            fail "key $k started $n jobs in the 2 s from +${w} ms, want about 10: $(sort -n "$T/rt.log" | head -40)"
    done
done
ok "key_rate 5/s: each key starts about 10 jobs in any 2 s window, each key apart"
stop_jobqd
