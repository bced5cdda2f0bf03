#!/usr/bin/env bash
# it_held.sh: a held request belongs to its connection. One connection pipelining 4,096
# waits (1 h timeout) takes every max_waits slot; when it closes, every slot is free at once
# and a new wait is accepted. A closed connection's held fetch claims nothing; a job claimed
# for a fetch whose connection closed before the reply goes back to ready without spending an
# attempt. max_waits_per_connection refuses one connection's extra waits, not another's; a
# request sent again with the same request id replaces the held one instead of doubling it.
. "$(dirname "$0")/lib.sh"
: "${JOBQ_HELD:?JOBQ_HELD must name the jobq-held binary}"
for tool in curl jq; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done

NWAITS=4096
SERVER_EXTRA="http = 127.0.0.1:0
max_waits = $NWAITS
max_waits_per_connection = $NWAITS" write_config '[queue.idle]
[queue.work]'
start_jobqd
port=$(grep -o 'event=http_listen addr=127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*://')
HTTP="http://127.0.0.1:$port"
held() { curl -s "$HTTP/metrics" | awk '$1 == "jobq_held_requests" {print $2}'; }
field() { jq -r "$1" <<<"$2"; }

# hold_open NAME N same|distinct JSON [READ]: jobq-held on its own connection, kept open until
# hold_close NAME (its standard input is a fifo held open by this shell).
hold_open() {
    local name=$1
    shift
    mkfifo "$T/$name.ctl"
    "$JOBQ_HELD" "$SOCK" "$@" <"$T/$name.ctl" >"$T/$name.out" &
    eval "HELD_PID_$name=$!"
    CLEANUP_PIDS+=("$!")
    exec {fd}>"$T/$name.ctl"
    eval "HELD_FD_$name=$fd"
}
hold_close() {
    local fd pid
    eval "fd=\$HELD_FD_$1 pid=\$HELD_PID_$1"
    exec {fd}>&-
    wait "$pid" || fail "jobq-held $1 failed"
}

# A job that never ends while the test runs: its queue has no worker.
idle=$(cli submit idle '{}')

# ---- 4,096 pipelined waits on one connection, then its close ----
hold_open many "$NWAITS" distinct "{\"op\":\"wait\",\"id\":$idle,\"timeout\":\"1h\"}"
poll_until "jobqd holds the $NWAITS waits" '[ "$(held)" = "$NWAITS" ]'
r=$(raw "{\"op\":\"wait\",\"id\":$idle,\"timeout\":\"1h\"}")
expect_eq "a wait from another connection while every slot is taken" "$(field .error.code "$r")" too_many_waits
# A wait takes its slot when it arrives and is held once its first read of the job is done
# (reads run in order on the writer's thread): a get answered after them means every one of
# the 4,096 is held by its connection, not still being read (a slow build reads slowly).
cli get "$idle" >/dev/null
t0=$(date +%s%N)
hold_close many
poll_until "the closed connection's waits are dropped" '[ "$(held)" = 0 ]'
freed_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
line=$(grep "event=holds_dropped .*requests=$NWAITS reason=connection_closed" "$LOG") ||
    fail "no holds_dropped line for the $NWAITS waits"
drop_us=$(sed 's/.* us=\([0-9]*\).*/\1/' <<<"$line")
r=$(raw "{\"op\":\"wait\",\"id\":$idle,\"timeout\":\"100ms\"}")
expect_eq "a new wait after the close" "$(field '.ok, .done' "$r" | tr '\n' ' ')" "true false "
ok "$NWAITS pipelined 1 h waits: dropped in ${drop_us} us on the loop, the metric at 0 ${freed_ms} ms after the close; a new wait is accepted"

# ---- a held wait is answered when its job is cancelled before it ran ----
id=$(cli submit idle '{"cancel":"me"}')
raw "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"1h\"}" >"$T/cancelwait.out" &
WAITER=$!
poll_until "the wait on job $id is held" '[ "$(held)" = 1 ]'
cli cancel "$id" >/dev/null
# Not answered at the cancel, the wait would be held for its hour and raw would give up.
wait "$WAITER" || fail "the wait on a job cancelled while ready was not answered"
r=$(cat "$T/cancelwait.out")
expect_eq "the wait's answer" "$(field '.done, .jobs[0].state' "$r" | tr '\n' ' ')" "true cancelled "
ok "a wait on a ready job is answered when the job is cancelled"

# ---- a held fetch whose connection closed claims nothing ----
hold_open fetch1 1 distinct '{"op":"fetch","queue":"work","timeout":"5m"}'
poll_until "the fetch is held" '[ "$(held)" = 1 ]'
hold_close fetch1
poll_until "the fetch is dropped" '[ "$(held)" = 0 ]'
id=$(cli submit work '{"n":1}')
r=$(raw "{\"op\":\"get\",\"id\":$id}")
expect_eq "the job after the fetching connection closed" "$(field '.job.state, .job.attempt' "$r" | tr '\n' ' ')" "ready 0 "
r=$(raw '{"op":"fetch","queue":"work","timeout":0}')
expect_eq "another worker fetches it at once" "$(field '.jobs[0].id, .jobs[0].attempt' "$r" | tr '\n' ' ')" "$id 1 "
lease=$(field '.jobs[0].lease' "$r")
r=$(raw "{\"op\":\"ack\",\"id\":$id,\"lease\":\"$lease\"}")
expect_eq "its ack" "$(field .job.state "$r")" succeeded
ok "a closed connection's held fetch claims nothing: the job stays ready, attempt 0, and goes to the next worker"

# ---- a job ready for a fetch whose connection closed before the reply ----
# The job is ready before the fetch comes. jobqd is stopped (SIGSTOP) while a client connects,
# sends the fetch and closes, so the fetch and the connection's end wait together in the
# socket when jobqd goes on. Whether jobqd finds the end before it claims (and claims
# nothing) or while the claim commits (and hands the job back), the job must never go to the
# closed connection: the next worker gets it at its first attempt (handed to the closed
# connection, it would come back only when its lease ended, its attempt spent).
id=$(cli submit work '{"n":2}')
kill -STOP "$JOBQD_PID"
JOBQ_HELD_EAGER=1 "$JOBQ_HELD" "$SOCK" 1 distinct '{"op":"fetch","queue":"work","timeout":"5m"}' \
    </dev/null >/dev/null || { kill -CONT "$JOBQD_PID"; fail "jobq-held failed"; }
kill -CONT "$JOBQD_PID"
got=
poll_until "the next worker fetches job $id" \
    'r=$(raw "{\"op\":\"fetch\",\"queue\":\"work\",\"timeout\":0}"); got=$(field ".jobs[0].id" "$r"); [ "$got" != null ]'
expect_eq "the job the next worker fetches" "$got" "$id"
expect_eq "its attempt" "$(field '.jobs[0].attempt' "$r")" 1
how="never claimed for it"
! grep -q "event=job_returned job=$id " "$LOG" || how="claimed for it, then handed back"
lease=$(field '.jobs[0].lease' "$r")
raw "{\"op\":\"ack\",\"id\":$id,\"lease\":\"$lease\"}" >/dev/null
ok "a job ready for a fetch whose connection closed before the reply goes to the next worker, no attempt spent ($how)"

# ---- an ack carrying a fetch, held, then its connection closes ----
id=$(cli submit work '{"n":3}')
r=$(raw '{"op":"fetch","queue":"work","timeout":0}')
expect_eq "fetched" "$(field '.jobs[0].id' "$r")" "$id"
lease=$(field '.jobs[0].lease' "$r")
hold_open ackfetch 1 distinct "{\"op\":\"ack\",\"id\":$id,\"lease\":\"$lease\",\"fetch\":{\"queue\":\"work\",\"timeout\":\"5m\"}}"
poll_until "the ack's fetch is held" '[ "$(held)" = 1 ]'
r=$(raw "{\"op\":\"get\",\"id\":$id}")
expect_eq "the acked job while its fetch is held" "$(field .job.state "$r")" succeeded
hold_close ackfetch
poll_until "the ack's fetch is dropped" '[ "$(held)" = 0 ]'
id=$(cli submit work '{"n":4}')
r=$(raw "{\"op\":\"get\",\"id\":$id}")
expect_eq "a job after the acking connection closed" "$(field '.job.state, .job.attempt' "$r" | tr '\n' ' ')" "ready 0 "
r=$(raw '{"op":"fetch","queue":"work","timeout":0}')
lease=$(field '.jobs[0].lease' "$r")
raw "{\"op\":\"ack\",\"id\":$id,\"lease\":\"$lease\"}" >/dev/null
ok "an ack carrying a fetch: the outcome is recorded; once its connection closes the fetch claims nothing"
stop_jobqd

# ---- max_waits_per_connection; a request sent again ----
WS_PORT=$((20000 + RANDOM % 20000))
SERVER_EXTRA="http = 127.0.0.1:0
max_waits_per_connection = 3" write_config '[queue.idle]
[queue.work]'
sed -i "s|^listen = .*|listen = $SOCK, ws://127.0.0.1:$WS_PORT/jobq|" "$T/jobq.conf"
start_jobqd
port=$(grep -o 'event=http_listen addr=127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*://')
HTTP="http://127.0.0.1:$port"

# Through nng (ws://): the connection is nng's pipe, its close nng's pipe event.
nngcat --req --connect "ws://127.0.0.1:$WS_PORT/jobq" --ascii --recv-timeout 300 \
    --data "{\"op\":\"wait\",\"id\":$idle,\"timeout\":\"1h\"}" >/dev/null 2>&1 &
NNGCAT=$!
CLEANUP_PIDS+=("$NNGCAT")
poll_until "the ws:// wait is held" '[ "$(held)" = 1 ]'
kill "$NNGCAT"
wait "$NNGCAT" 2>/dev/null || true
poll_until "the ws:// wait is dropped with its connection" '[ "$(held)" = 0 ]'
ok "a wait held through nng (ws://) is dropped when its connection closes"

hold_open cap 4 distinct "{\"op\":\"wait\",\"id\":$idle,\"timeout\":\"1h\"}" 1
poll_until "the refusal is read" "grep -q '^sent' '$T/cap.out'"
r=$(head -n 1 "$T/cap.out")
expect_eq "the 4th wait on one connection" "$(field .error.code "$r")" too_many_waits
grep -q 'max_waits_per_connection' <<<"$(field .error.message "$r")" ||
    fail "the refusal does not name max_waits_per_connection: $r"
expect_eq "held" "$(held)" 3
r=$(raw "{\"op\":\"wait\",\"id\":$idle,\"timeout\":\"100ms\"}")
expect_eq "a wait on another connection" "$(field .ok "$r")" true
hold_close cap
poll_until "the capped connection's waits are dropped" '[ "$(held)" = 0 ]'
ok "max_waits_per_connection: one connection's 4th wait is refused, naming the key; another connection still waits"

# Two copies of one request (same request id), as a REQ socket sends it again after its
# resend time: held once. Then its job ends and the one wait left is answered.
id=$(cli submit work '{"n":3}')
hold_open resend 2 same "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"1h\"}" 1
poll_until "the copy replaced the first" "grep -q 'event=hold_replaced' '$LOG'"
expect_eq "held after a request sent twice" "$(held)" 1
r=$(raw '{"op":"fetch","queue":"work","timeout":0}')
lease=$(field '.jobs[0].lease' "$r")
r=$(raw "{\"op\":\"ack\",\"id\":$id,\"lease\":\"$lease\"}")
expect_eq "ack of the waited job" "$(field .job.state "$r")" succeeded
poll_until "the wait is answered" "grep -q '^sent' '$T/resend.out'"
r=$(head -n 1 "$T/resend.out")
expect_eq "the reply to the wait" "$(field '.done, .jobs[0].state' "$r" | tr '\n' ' ')" "true succeeded "
expect_eq "held after the reply" "$(held)" 0
hold_close resend
ok "a request sent again on its connection replaces the held one (held once, answered once)"
stop_jobqd
