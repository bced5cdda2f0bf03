#!/usr/bin/env bash
# it_bad_input.sh: every kind of bad request gets its stable error code and a log line, and
# another client keeps being served the whole time.
. "$(dirname "$0")/lib.sh"
# max_message is small so the test stays small; no command, so jobs stay ready.
SERVER_EXTRA='max_message = 64k' write_config '[queue.email]'
start_jobqd

# A second client submits all along; it must never see a failure.
(
    for i in $(seq 1 200); do
        r=$(raw "{\"op\":\"submit\",\"queue\":\"email\",\"payload\":$i}") || exit 1
        [ "$(jq -r .ok <<<"$r")" = true ] || { echo "other client failed: $r" >&2; exit 1; }
    done
) &
other=$!

code() { jq -r .error.code <<<"$1"; }

expect_eq "malformed JSON" "$(code "$(raw '{"op": "submit", "queue": ')")" malformed
expect_eq "not an object" "$(code "$(raw '[1,2,3]')")" malformed
expect_eq "binary garbage" "$(code "$(raw $'\x01\x02\xff\xfe')")" malformed
expect_eq "unknown op" "$(code "$(raw '{"op":"frobnicate"}')")" unknown_op
expect_eq "missing op" "$(code "$(raw '{"queue":"email"}')")" unknown_op
expect_eq "missing queue" "$(code "$(raw '{"op":"submit","payload":1}')")" invalid_argument
expect_eq "mistyped priority" "$(code "$(raw '{"op":"submit","queue":"email","priority":"high"}')")" invalid_argument
expect_eq "mistyped id" "$(code "$(raw '{"op":"get","id":"7"}')")" invalid_argument
expect_eq "bad duration" "$(code "$(raw '{"op":"submit","queue":"email","delay":"soon"}')")" invalid_argument
expect_eq "bad state filter" "$(code "$(raw '{"op":"list","state":"sleeping"}')")" invalid_argument
expect_eq "bad queue name" "$(code "$(raw '{"op":"submit","queue":"a b"}')")" invalid_argument
expect_eq "unknown queue" "$(code "$(raw '{"op":"submit","queue":"emial","payload":1}')")" unknown_queue
msg=$(raw '{"op":"submit","queue":"emial"}' | jq -r .error.message)
case "$msg" in *'[queue.emial]'*) ;; *) fail "unknown_queue message does not say what to do: $msg" ;; esac
ok "malformed, unknown op, missing and mistyped fields, unknown queue"

# Valid JSON that jobq cannot hold: an argument problem naming the field, or a stated limit.
msg() { jq -r '.error.code + ": " + .error.message' <<<"$1"; }
expect_msg() { # expect_msg WHAT REQUEST CODE TEXT: the reply's code, and TEXT in its message
    local m
    m=$(msg "$(raw "$2")")
    case "$m" in "$3: "*"$4"*) ;; *) fail "$1: got \"$m\", want $3 naming $4" ;; esac
}
expect_msg "integer beyond int64" '{"op":"submit","queue":"email","priority":99999999999999999999}' \
    invalid_argument '"priority"'
expect_msg "real beyond a double" '{"op":"submit","queue":"email","payload":{"n":1e400}}' \
    invalid_argument '"payload.n"'
expect_msg "NUL in a payload" '{"op":"submit","queue":"email","payload":"a\u0000b"}' \
    invalid_argument '"payload" holds a string with \u0000'
case "$(msg "$(raw '{"op":"submit","queue":"email","payload":"a\u0000b"}')")" in
*JSON_*) fail "the NUL message names a jansson flag" ;;
esac
deep=$(printf '[%.0s' $(seq 1 5000))
expect_msg "deeply nested" "{\"op\":\"submit\",\"queue\":\"email\",\"payload\":$deep}" \
    too_large "more than 2048 levels deep"
expect_msg "run_at far away" '{"op":"submit","queue":"email","run_at":9223372036854775807}' \
    invalid_argument '"run_at" is more than one year from now'
expect_msg "run_at negative" '{"op":"submit","queue":"email","run_at":-1}' invalid_argument '"run_at"'
far=$(($(date +%s) * 1000 + 400 * 86400 * 1000))
expect_msg "run_at in 400 days" "{\"op\":\"submit\",\"queue\":\"email\",\"run_at\":$far}" \
    invalid_argument '"run_at"'
near=$(($(date +%s) * 1000 + 300 * 86400 * 1000))
r=$(raw "{\"op\":\"submit\",\"queue\":\"email\",\"run_at\":$near}")
expect_eq "run_at in 300 days" "$(jq -r .state <<<"$r")" scheduled
r=$(raw '{"op":"submit","queue":"email","run_at":0}')
expect_eq "run_at 0 (the past)" "$(jq -r .state <<<"$r")" ready
raw "{\"op\":\"cancel\",\"id\":$(jq -r .id <<<"$r")}" >/dev/null # leaves 200 ready below
ok "numbers out of range, NUL, nesting and run_at are refused with their field named"

# Over max_message (64 KiB): a too_large reply, from the length prefix (the body is not kept).
big="$T/big.json"
{ printf '{"op":"submit","queue":"email","payload":"'; head -c 100000 /dev/zero | tr '\0' x; printf '"}'; } >"$big"
expect_eq "oversized" "$(code "$(raw_file "$big")")" too_large
# Far over: the same reply; the daemon goes on.
huge="$T/huge.json"
{ printf '{"op":"submit","queue":"email","payload":"'; head -c 1000000 /dev/zero | tr '\0' x; printf '"}'; } >"$huge"
expect_eq "far oversized" "$(code "$(raw_file "$huge")")" too_large
ok "oversized messages"

grep -q 'event=request_error code=unknown_queue' "$LOG" || fail "errors are not logged"
wait "$other" || fail "the other client was not served throughout"
expect_eq "still serving" "$(raw '{"op":"ping"}' | jq -r .ok)" true
expect_eq "other client's jobs all stored" "$(raw '{"op":"stats"}' | jq -r .queues.email.ready)" 200
ok "other clients served throughout"
stop_jobqd
