#!/usr/bin/env bash
# it_stats_cost.sh: a request costs the loop what its reply holds, not what the daemon holds.
# With 5,000 queues made by allow_unknown_queues (max_queues raised), 8 clients calling stats
# in a loop leave ping answering in under 50 ms at the 99th percentile (stats used to build
# 11 MB of JSON per call, about a second of the loop each); plain stats carries counts only,
# and series come for the queues asked for; max_queues refuses the next queue with
# too_many_queues (submit, pause, fetch); a flood of bad requests writes a bounded number of
# log lines and the count of the others is in /metrics, which still passes promtool.
. "$(dirname "$0")/lib.sh"
for tool in curl jq python3; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done
: "${JOBQ_STATSLOAD:?JOBQ_STATSLOAD must name the jobq-statsload binary}"
NQUEUES=5000
SERVER_EXTRA="http = 127.0.0.1:0
log_level = info
allow_unknown_queues = true
max_queues = $((NQUEUES + 1))" write_config '[queue.configured]'
start_jobqd
port=$(grep -o 'event=http_listen addr=127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*://')
code() { jq -r .error.code <<<"$1"; }

# 5,000 queues in one batch: a job in each.
python3 -c "import json; print(json.dumps({'op': 'submit_batch', 'jobs': [{'queue': 'q%d' % i, 'payload': i} for i in range($NQUEUES)]}))" >"$T/batch.json"
expect_eq "a batch creating $NQUEUES queues" "$(raw_file "$T/batch.json" | jq -r '.ids | length')" $NQUEUES

# Plain stats: every queue, counts, paused and breaker, no series.
raw '{"op":"stats"}' >"$T/stats.json"
expect_eq "queues in plain stats" "$(jq '.queues | length' "$T/stats.json")" $((NQUEUES + 1))
expect_eq "a queue in plain stats" "$(jq -c '.queues.q7 | [.ready, .paused, .breaker, has("series"), has("totals")]' "$T/stats.json")" \
    '[1,false,"closed",false,false]'
# Series on request, for the queues named (unknown names are left out).
r=$(raw '{"op":"stats","queues":["q7","configured","nosuch"],"series":true}')
expect_eq "queues of a restricted stats" "$(jq -c '.queues | keys' <<<"$r")" '["configured","q7"]'
expect_eq "series of q7" "$(jq -c '.queues.q7 | [.totals.submitted, (.series.submitted | length), .ready]' <<<"$r")" '[1,300,1]'
expect_eq "restricted stats without series" \
    "$(raw '{"op":"stats","queues":["q7"]}' | jq -c '.queues.q7 | [.ready, has("series")]')" '[1,false]'
expect_eq "series must be a boolean" "$(code "$(raw '{"op":"stats","series":1}')")" invalid_argument
expect_eq "queues must name queues" "$(code "$(raw '{"op":"stats","queues":["a b"]}')")" invalid_argument
# The CLI's table and top's snapshot still show every queue.
expect_eq "jobq stats rows" "$(cli stats | grep -c '^q[0-9]')" $NQUEUES
cli top >"$T/top.out" 2>&1 || fail "jobq top: $(tail -n 3 "$T/top.out")"
grep -q '^q7 ' "$T/top.out" || fail "jobq top does not show q7: $(head -n 5 "$T/top.out")"
ok "stats: counts of $NQUEUES queues by default, series on request"

# 8 concurrent stats callers while 300 pings are timed. The loop used to spend about a
# second per call (pings then took seconds); now a call costs it about a millisecond. A
# machine busy with other work can delay any process for a while, so the best of three
# runs is judged. A sanitizer build (ASAN_OPTIONS set) runs everything a few times slower: the
# bound is 200 ms there, still far below what the old stats cost.
BOUND_MS=50
[ -z "${ASAN_OPTIONS:-}" ] || BOUND_MS=200
best=
for attempt in 1 2 3; do
    out=$("$JOBQ_STATSLOAD" load "$SOCK" 8 300 '{"op":"stats"}') || fail "stats load: $out"
    echo "# 8 stats callers, $NQUEUES queues, run $attempt: $out"
    p99=$(sed 's/.*p99_ms=\([0-9.]*\).*/\1/' <<<"$out")
    calls=$(sed 's/.*calls=\([0-9]*\).*/\1/' <<<"$out")
    [ "$calls" -ge 8 ] || fail "the stats callers were not served while the pings ran: $out"
    if [ -z "$best" ] || awk -v p="$p99" -v b="$best" 'BEGIN { exit !(p < b) }'; then
        best=$p99
    fi
    ! awk -v p="$best" -v b=$BOUND_MS 'BEGIN { exit !(p < b) }' || break
done
awk -v p="$best" -v b=$BOUND_MS 'BEGIN { exit !(p < b) }' ||
    fail "ping p99 is ${best} ms with 8 stats callers (want < $BOUND_MS)"
ok "ping p99 ${best} ms under 8 concurrent stats callers"

# max_queues: one more queue is fine, the next is refused, in submit, pause and fetch alike.
expect_eq "queue number max_queues" "$(raw '{"op":"submit","queue":"last","payload":1}' | jq -r .ok)" true
r=$(raw '{"op":"submit","queue":"onemore","payload":1}')
expect_eq "a queue over max_queues" "$(code "$r")" too_many_queues
jq -r .error.message <<<"$r" | grep -q max_queues || fail "the message does not name max_queues: $r"
expect_eq "pause of a new queue" "$(code "$(raw '{"op":"pause","queue":"onemore"}')")" too_many_queues
expect_eq "fetch from a new queue" "$(code "$(raw '{"op":"fetch","queue":"onemore","timeout":0}')")" too_many_queues
expect_eq "a batch naming a new queue" \
    "$(code "$(raw '{"op":"submit_batch","jobs":[{"queue":"q1"},{"queue":"onemore"}]}')")" too_many_queues
expect_eq "configured queues do not count" "$(raw '{"op":"submit","queue":"configured"}' | jq -r .ok)" true
expect_eq "existing queues still take jobs" "$(raw '{"op":"submit","queue":"q1"}' | jq -r .ok)" true
rc=0; cli submit onemore 1 2>"$T/err" || rc=$?
[ "$rc" -ne 0 ] || fail "the CLI's submit over max_queues succeeded"
grep -q max_queues "$T/err" || fail "CLI message: $(cat "$T/err")"
expect_eq "queues in stats" "$(raw '{"op":"stats"}' | jq '.queues | length')" $((NQUEUES + 2))
ok "max_queues: the next queue gets too_many_queues"

# A flood of bad requests: LOG_BURST (20) request_error lines a second at most, the rest
# counted in log_suppressed lines and in /metrics.
before=$(grep -c 'event=request_error' "$LOG" || true)
start=$(date +%s)
out=$("$JOBQ_STATSLOAD" flood "$SOCK" 20000 '{"op":"frobnicate"}') || fail "flood: $out"
secs=$(($(date +%s) - start + 1))
lines=$(($(grep -c 'event=request_error' "$LOG") - before))
echo "# 20000 bad requests in about $secs s: $lines request_error lines"
[ "$lines" -le $((20 * (secs + 1))) ] || fail "$lines request_error lines in $secs s (at most 20 a second)"
m=$(curl -s --max-time 10 "http://127.0.0.1:$port/metrics")
n=$(awk '$1 == "jobq_log_suppressed_total{event=\"request_error\"}" { print $2 }' <<<"$m")
[ -n "$n" ] || fail "no jobq_log_suppressed_total for request_error in /metrics"
expect_eq "lines written and counted" $((lines + n)) 20000
grep -q 'event=log_suppressed name=request_error count=[0-9]' "$LOG" || fail "no log_suppressed line"
if command -v promtool >/dev/null; then
    promtool check metrics <<<"$m" >"$T/promtool.out" 2>&1 || fail "promtool: $(cat "$T/promtool.out")"
fi
expect_eq "still serving" "$(raw '{"op":"ping"}' | jq -r .ok)" true
ok "a flood of 20000 bad requests wrote $lines log lines; $n counted in jobq_log_suppressed_total"

stop_jobqd
