#!/usr/bin/env bash
# it_webhooks.sh: url queues POST each job to a scripted HTTP endpoint (jobq-hookd): 2xx is
# success with the body kept, 503 with Retry-After is retried no earlier than it says, 500
# is retried with backoff, 400 is dead at once, and a downstream that is down opens the
# circuit breaker.
. "$(dirname "$0")/lib.sh"
: "${JOBQ_HOOKD:?JOBQ_HOOKD must name the jobq-hookd test endpoint}"

# script LINES...: replaces the endpoint's script (a new file: it starts from line 1).
script() {
    printf '%s\n' "$@" >"$T/script.new"
    mv "$T/script.new" "$T/script"
}
script 200
mkfifo "$T/hookd.out"
"$JOBQ_HOOKD" "$T/script" "$T/hooks.log" >"$T/hookd.out" &
HOOKD_PID=$!
read -r _ port <"$T/hookd.out"
CLEANUP_PIDS+=("$HOOKD_PID")
# A port nothing listens on, for the downstream that is down: the first of port+1.. that
# refuses a connection.
down_port=$((port + 1))
while (exec 3<>"/dev/tcp/127.0.0.1/$down_port") 2>/dev/null; do
    down_port=$((down_port + 1))
done

write_config "[queue.hook]
url = http://127.0.0.1:$port/hook
concurrency = 2
timeout = 5s
max_attempts = 3
backoff_base = 100ms
backoff_max = 200ms
breaker_failures = 1000
[queue.down]
url = http://127.0.0.1:$down_port/hook
timeout = 2s
max_attempts = 100
backoff_base = 10ms
backoff_max = 10ms
breaker_failures = 2
breaker_cooldown = 1h"
start_jobqd

wait_job() { raw "{\"op\":\"wait\",\"id\":$1,\"timeout\":\"60s\"}" | jq -c '.jobs[0]'; }
job() { raw "{\"op\":\"get\",\"id\":$1}" | jq -c .job; }

# Success: the payload is POSTed with the headers; the body is the result.
id=$(raw '{"op":"submit","queue":"hook","payload":{"n":1}}' | jq .id)
j=$(wait_job "$id")
expect_eq "state" "$(jq -r .state <<<"$j")" succeeded
expect_eq "result" "$(jq -r .result <<<"$j")" "answer 200"
expect_eq "request line" "$(tail -n 1 "$T/hooks.log" | cut -d' ' -f2-7)" \
    "$id 1 hook application/json 200 {\"n\":1}"
ok "2xx: succeeded, body kept, Jobq-Job-Id/Attempt/Queue and Content-Type sent"

# 503 with Retry-After: 2 -> retried no earlier than 2 s later, then 200.
script "503 2" 200
: >"$T/hooks.log"
id=$(raw '{"op":"submit","queue":"hook","payload":2}' | jq .id)
j=$(wait_job "$id")
expect_eq "after Retry-After" "$(jq -r '"\(.state) \(.attempt)"' <<<"$j")" "succeeded 2"
t1=$(sed -n 1p "$T/hooks.log" | cut -d' ' -f1)
t2=$(sed -n 2p "$T/hooks.log" | cut -d' ' -f1)
[ $((t2 - t1)) -ge 2000 ] || fail "retried $((t2 - t1)) ms after a Retry-After of 2 s"
ok "503 + Retry-After 2: retried after $((t2 - t1)) ms"

# The Retry-After holds the whole queue: a job submitted after the 503 waits for it too.
script "503 2" 200
: >"$T/hooks.log"
a=$(raw '{"op":"submit","queue":"hook","payload":"a"}' | jq .id)
# Not the receiver's log: the 503 is in it before jobqd has read the answer, and a job
# submitted in between could take the queue's second slot. Its record comes after the hold.
poll_until "job $a got its 503" '[ "$(job "$a" | jq ".attempts | length")" -ge 1 ]'
b=$(raw '{"op":"submit","queue":"hook","payload":"b"}' | jq .id)
expect_eq "explain of a job behind the slow-down" \
    "$(raw "{\"op\":\"explain\",\"id\":$b}" | jq -r .reason)" slowed_down
wait_job "$b" >/dev/null
wait_job "$a" >/dev/null
t503=$(sed -n 1p "$T/hooks.log" | cut -d' ' -f1)
tb=$(grep " $b 1 hook " "$T/hooks.log" | cut -d' ' -f1)
[ $((tb - t503)) -ge 2000 ] || fail "job $b was delivered $((tb - t503)) ms after the 503, within its Retry-After"
ok "503 + Retry-After holds the queue: the next job waited $((tb - t503)) ms"

# 500 -> backoff, then 200.
script 500 200
: >"$T/hooks.log"
id=$(raw '{"op":"submit","queue":"hook","payload":3}' | jq .id)
j=$(wait_job "$id")
expect_eq "after a 500" "$(jq -r '"\(.state) \(.attempt)"' <<<"$j")" "succeeded 2"
expect_eq "attempt kinds" "$(job "$id" | jq -c '[.attempts[].kind]')" '["http","success"]'
job "$id" | jq -r '.attempts[0].error' | grep -q '^HTTP 500' || fail "error of the 500"
ok "500: retried with backoff"

# 400 -> dead at once.
script 400
id=$(raw '{"op":"submit","queue":"hook","payload":4}' | jq .id)
j=$(wait_job "$id")
expect_eq "after a 400" "$(jq -r '"\(.state) \(.attempt)"' <<<"$j")" "dead 1"
ok "400: dead after one attempt"

# The downstream is down: connection errors are failures, 2 of them open the circuit.
id=$(raw '{"op":"submit","queue":"down","payload":5}' | jq .id)
poll_until "the breaker of queue down opens" '[ "$(raw "{\"op\":\"stats\"}" | jq -r .queues.down.breaker)" = open ]'
j=$(job "$id")
expect_eq "attempts before opening" "$(jq -r .attempt <<<"$j")" 2
expect_eq "kind" "$(jq -r '.attempts[0].kind' <<<"$j")" connect
raw "{\"op\":\"explain\",\"id\":$id}" | jq -r .explain | grep -q 'circuit of queue down is open' ||
    fail "explain does not say the circuit is open"
ok "downstream down: connection errors open the breaker after 2"
stop_jobqd
kill "$HOOKD_PID"
wait "$HOOKD_PID" || true

# ---- https with the receiver's certificate verified, deliveries signed ----
# A test CA, a receiver certificate it signed for 127.0.0.1, and another CA that did not.
pki() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -keyout "$T/ca.key" -out "$T/ca.pem" -subj /CN=jobq-test-ca &&
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -keyout "$T/other.key" -out "$T/other.pem" -subj /CN=jobq-other-ca &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout "$T/srv.key" -out "$T/srv.csr" -subj /CN=127.0.0.1 &&
        printf 'subjectAltName=DNS:127.0.0.1,IP:127.0.0.1\n' >"$T/srv.ext" &&
        openssl x509 -req -in "$T/srv.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
            -days 2 -out "$T/srv.pem" -extfile "$T/srv.ext" &&
        cat "$T/srv.pem" "$T/srv.key" >"$T/hookd.pem"
}
pki 2>"$T/pki.log" || { cat "$T/pki.log" >&2; fail "openssl could not make the test certificates"; }
SECRET=whsec-0123456789abcdef-test
script 200
: >"$T/hooks.log"
mkfifo "$T/hookd2.out"
JOBQ_HOOKD_SECRET=$SECRET JOBQ_HOOKD_PEM="$T/hookd.pem" JOBQ_HOOKD_TRACES="$T/traces" \
    "$JOBQ_HOOKD" "$T/script" "$T/hooks.log" >"$T/hookd2.out" &
HOOKD_PID=$!
CLEANUP_PIDS+=("$HOOKD_PID")
read -r _ port <"$T/hookd2.out"
# Two attempts of at most HOOK_TIMEOUT each: the test receiver (nng's HTTP server with TLS)
# has been seen to drop a connection before answering, and once to leave one unanswered (an
# attempt then ends at its timeout and the next one is made); a 401 is final whatever
# max_attempts says. Under valgrind a TLS handshake alone may take seconds: 30 s there.
HOOK_TIMEOUT=3s
[ "${JOBQ_VALGRIND:-}" != 1 ] || HOOK_TIMEOUT=30s
write_config "[queue.signed]
url = https://127.0.0.1:$port/hook
secret = $SECRET
ca = $T/ca.pem
max_attempts = 2
timeout = $HOOK_TIMEOUT
backoff_base = 10ms
[queue.unsigned]
url = https://127.0.0.1:$port/hook
ca = $T/ca.pem
max_attempts = 2
timeout = $HOOK_TIMEOUT
backoff_base = 10ms
[queue.badsecret]
url = https://127.0.0.1:$port/hook
secret = not-the-receivers-secret
ca = $T/ca.pem
max_attempts = 2
timeout = $HOOK_TIMEOUT
backoff_base = 10ms
[queue.wrongca]
url = https://127.0.0.1:$port/hook
secret = $SECRET
ca = $T/other.pem
max_attempts = 2
timeout = $HOOK_TIMEOUT
backoff_base = 10ms"
start_jobqd

id=$(raw '{"op":"submit","queue":"signed","payload":{"order":7}}' | jq .id)
j=$(wait_job "$id")
expect_eq "a signed delivery over https" "$(jq -r '"\(.state) \(.result // .error)"' <<<"$j")" \
    "succeeded answer 200"
expect_eq "the receiver verified it" "$(tail -n 1 "$T/hooks.log" | cut -d' ' -f2,6-)" \
    "$id 200 {\"order\":7}"
for q in unsigned badsecret; do
    id=$(raw "{\"op\":\"submit\",\"queue\":\"$q\",\"payload\":1}" | jq .id)
    j=$(wait_job "$id")
    expect_eq "queue $q: refused by the receiver" "$(jq -r '"\(.state) \(.error)"' <<<"$j")" \
        "dead HTTP 401 Unauthorized: answer 401"
done
id=$(raw '{"op":"submit","queue":"wrongca","payload":1}' | jq .id)
j=$(wait_job "$id")
expect_eq "a receiver the ca does not vouch for" "$(jq -r .state <<<"$j")" dead
jq -r .error <<<"$j" | grep -q "^cannot deliver to https://" ||
    fail "the error of an unverified receiver: $(jq -r .error <<<"$j")"
ok "https: verified receiver, signed deliveries accepted; unsigned, wrongly signed and unverified refused"

TP=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
id=$(raw "{\"op\":\"submit\",\"queue\":\"signed\",\"payload\":2,\"traceparent\":\"$TP\",\"tracestate\":\"v=1\"}" | jq .id)
wait_job "$id" >/dev/null
expect_eq "the delivery's trace headers" "$(grep "^$id " "$T/traces")" "$id $TP v=1"
ok "a delivery carries the job's traceparent and tracestate headers"

# The receiver's checks themselves, with signatures computed by openssl: a fresh one passes,
# a tampered body and a replayed (10 minutes old) timestamp do not.
post() { # post TIMESTAMP SIGNED_BODY SENT_BODY: the HTTP status
    local mac
    mac=$(printf '%s.%s' "$1" "$2" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.*= //')
    curl -s -o /dev/null -w '%{http_code}' --cacert "$T/ca.pem" \
        -H "Jobq-Signature: t=$1,v1=$mac" --data-binary "$3" "https://127.0.0.1:$port/hook"
}
now=$(date +%s)
expect_eq "a fresh signature from openssl" "$(post "$now" '{"a":1}' '{"a":1}')" 200
expect_eq "a tampered body" "$(post "$now" '{"a":1}' '{"a":2}')" 401
expect_eq "a replayed timestamp" "$(post $((now - 600)) '{"a":1}' '{"a":1}')" 401
ok "signature: jobqd's HMAC matches openssl's; tampering and replays are refused"
stop_jobqd

# A ca file that is not a PEM bundle: jobqd refuses to start, naming the queue and the file.
printf 'not a certificate\n' >"$T/bad-ca.pem"
write_config "[queue.badca]
url = https://127.0.0.1:$port/hook
ca = $T/bad-ca.pem"
rc=0
timeout 30 "$JOBQD" -c "$T/jobq.conf" 2>"$T/refused.err" || rc=$?
expect_eq "exit status with an unusable ca" "$rc" 1
grep -q "\[queue.badca\] cannot verify https receivers with ca = $T/bad-ca.pem" "$T/refused.err" ||
    fail "refusal: $(cat "$T/refused.err")"
ok "an unusable ca file refuses the start, before any delivery"
kill "$HOOKD_PID"
wait "$HOOKD_PID" || true
