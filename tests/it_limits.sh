#!/usr/bin/env bash
# it_limits.sh: each limit has its own error code and a message that names it: max_message
# (too_large), max_payload (payload_too_large), max_batch (batch_too_large), max_waits
# (too_many_waits: held waits and long-poll fetches) and max_connections (too_many_connections,
# then the connection is closed). Nothing is dropped silently and the daemon goes on.
. "$(dirname "$0")/lib.sh"
for tool in curl jq nngcat; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done
SERVER_EXTRA='http = 127.0.0.1:0
max_message = 64k
max_payload = 1k
max_batch = 3
max_waits = 2
max_connections = 3' write_config '[queue.email]
[queue.remote]'
start_jobqd
port=$(grep -o 'event=http_listen addr=127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*://')
metric() { curl -s --max-time 5 "http://127.0.0.1:$port/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
code() { jq -r .error.code <<<"$1"; }
# expect_limit WHAT REPLY CODE WORD: the reply has CODE and its message names WORD.
expect_limit() {
    expect_eq "$1" "$(code "$2")" "$3"
    jq -r .error.message <<<"$2" | grep -q "$4" || fail "$1: the message does not name $4: $2"
}

{ printf '{"op":"submit","queue":"email","payload":"'; head -c 100000 /dev/zero | tr '\0' x; printf '"}'; } >"$T/big.json"
expect_limit "over max_message" "$(raw_file "$T/big.json")" too_large max_message
r=$(raw "{\"op\":\"submit\",\"queue\":\"email\",\"payload\":\"$(head -c 2000 /dev/zero | tr '\0' x)\"}")
expect_limit "over max_payload" "$r" payload_too_large max_payload
raw "{\"op\":\"submit\",\"queue\":\"email\",\"payload\":\"$(head -c 900 /dev/zero | tr '\0' x)\"}" | jq -e .ok >/dev/null ||
    fail "a payload under max_payload was refused"
expect_limit "over max_batch" "$(raw '{"op":"submit_batch","queue":"email","jobs":[{},{},{},{}]}')" batch_too_large max_batch
rc=0; cli submit email "\"$(head -c 2000 /dev/zero | tr '\0' x)\"" 2>"$T/err" || rc=$?
expect_eq "CLI exit status on payload_too_large" "$rc" 1
grep -q max_payload "$T/err" || fail "CLI message: $(cat "$T/err")"
ok "max_message, max_payload, max_batch: too_large, payload_too_large, batch_too_large"

# Two held waits (each on its own connection) reach max_waits = 2.
id=$(raw '{"op":"submit","queue":"email","payload":1}' | jq -r .id)
for i in 1 2; do
    timeout 60 nngcat --req --connect "$SOCK" --ascii --recv-timeout 40 \
        --data "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"30s\"}" >"$T/wait$i.out" 2>&1 &
    CLEANUP_PIDS+=($!)
done
poll_until "two waits are held" '[ "$(metric jobq_held_requests)" = 2 ]'
poll_until "only the two waiting clients are connected" '[ "$(metric jobq_connected_clients)" = 2 ]'
# settle: the connection of the previous request has gone (its close is seen a moment later).
settle() { poll_until "only the two waiting clients are connected" '[ "$(metric jobq_connected_clients)" = 2 ]'; }
expect_limit "a third wait" "$(raw "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"10s\"}")" too_many_waits max_waits
settle
expect_limit "a long-poll fetch" "$(raw '{"op":"fetch","queue":"remote","timeout":"10s"}')" too_many_waits max_waits
settle
expect_eq "a wait that does not hold (timeout 0)" \
    "$(raw "{\"op\":\"wait\",\"id\":$id,\"timeout\":0}" | jq -r .ok)" true
ok "max_waits: the third held request gets too_many_waits; polls still work"
settle

# A third connection that stays (a ping a second) reaches max_connections = 3.
timeout 60 nngcat --req --connect "$SOCK" --ascii --interval 1 --count 40 --data '{"op":"ping"}' >/dev/null 2>&1 &
PINGER=$!
CLEANUP_PIDS+=("$PINGER")
poll_until "three clients are connected" '[ "$(metric jobq_connected_clients)" = 3 ]'
expect_limit "a fourth connection" "$(raw '{"op":"ping"}')" too_many_connections max_connections
rc=0; cli ping 2>"$T/err" || rc=$?
[ "$rc" -ne 0 ] || fail "the CLI was served beyond max_connections"
grep -q max_connections "$T/err" || fail "CLI message beyond max_connections: $(cat "$T/err")"
[ "$(metric jobq_connections_refused_total)" -ge 2 ] || fail "refused connections are not counted"
ok "max_connections: a fourth connection is told too_many_connections"

kill "$PINGER" 2>/dev/null || true
wait "$PINGER" 2>/dev/null || true
poll_until "the pinger's connection is gone" '[ "$(metric jobq_connected_clients)" = 2 ]'
expect_eq "a new connection once one left" "$(raw '{"op":"ping"}' | jq -r .ok)" true
settle
raw "{\"op\":\"cancel\",\"id\":$id}" | jq -e .ok >/dev/null
for i in 1 2; do wait "${CLEANUP_PIDS[$((i - 1))]}" || true; done
for i in 1 2; do
    expect_eq "held wait $i answered when its job ended" "$(jq -r '.jobs[0].state' <"$T/wait$i.out")" cancelled
done
poll_until "no request is held" '[ "$(metric jobq_held_requests)" = 0 ]'
expect_eq "a wait is held again" "$(raw "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"1s\"}" | jq -r .ok)" true
ok "limits free up: a new connection is served, waits are held again"
stop_jobqd
