#!/usr/bin/env bash
# it_http_api.sh: the HTTP API of a real jobqd, with curl. Every op through POST /v1/ops, the
# statuses of the error codes, Bearer auth with auth_token and read_token (401, 403, 200),
# a held wait answered when its job ends, a held fetch whose HTTP client hung up claims
# nothing, keep-alive, a body over the limit refused unread (413), the job port answering
# while the HTTP side is busy, HTTPS, and the OpenAPI document validated by swagger-cli (npm, pinned
# by tests/openapi/package-lock.json, installed into the build directory) and served as kept.
. "$(dirname "$0")/lib.sh"
: "${JOBQ_SRC:?JOBQ_SRC must name the source tree}"
for tool in curl jq; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (make test-deps)"
done

# ---- the OpenAPI document, checked by a validator the project did not write ----
command -v npm >/dev/null || fail "npm is not installed (make test-deps installs nodejs and npm)"
BUILD_DIR=${JOBQ_BUILD:-$(cd "${JOBQ_ARTIFACTS:?}/.." && pwd)}
NODE_DIR="$BUILD_DIR/openapi-check" # npm ci puts node_modules here (a build dir)
LOCK="$JOBQ_SRC/tests/openapi/package-lock.json"
if ! [ -x "$NODE_DIR/node_modules/.bin/swagger-cli" ] || ! cmp -s "$LOCK" "$NODE_DIR/package-lock.json"; then
    rm -rf "$NODE_DIR"
    mkdir -p "$NODE_DIR"
    cp "$JOBQ_SRC/tests/openapi/package.json" "$LOCK" "$NODE_DIR/"
    (cd "$NODE_DIR" && timeout 600 npm ci --no-audit --no-fund --loglevel=error >npm.log 2>&1) ||
        fail "npm ci of tests/openapi failed: $(tail -n 5 "$NODE_DIR/npm.log")"
fi
"$NODE_DIR/node_modules/.bin/swagger-cli" validate "$JOBQ_SRC/docs/openapi.yaml" >"$T/validate.out" 2>&1 ||
    fail "docs/openapi.yaml does not validate: $(cat "$T/validate.out")"
# The validator must catch a broken document, or its "valid" means nothing.
sed 's|#/components/schemas/Job|#/components/schemas/NoSuchSchema|' "$JOBQ_SRC/docs/openapi.yaml" >"$T/broken.yaml"
! "$NODE_DIR/node_modules/.bin/swagger-cli" validate "$T/broken.yaml" >/dev/null 2>&1 ||
    fail "swagger-cli accepted a document with a dangling \$ref"
ok "docs/openapi.yaml is valid OpenAPI 3 (swagger-cli $(jq -r '.version' "$NODE_DIR/node_modules/@apidevtools/swagger-cli/package.json")), and a broken copy is not"

ADMIN=admin-token-0123456789abcdef
READER=reader-token-0123456789abcdef
mkdir -p "$T/backups"
[ -z "$RUN_USER" ] || chown "$RUN_USER" "$T/backups"
SERVER_EXTRA="http = 127.0.0.1:0
auth_token = $ADMIN
read_token = $READER
backup_dir = $T/backups
max_waits = 6
max_message = 1M
shutdown_grace = 10s" write_config "[queue.work]
[queue.idle]
[queue.run]
command = /bin/sh -c 'sleep 1; echo done'
[queue.slow]
command = /bin/sleep 3
[schedule.nightly]
cron = 30 2 * * *
queue = work"
start_jobqd
port=$(grep -o 'event=http_listen addr=127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*://')
HTTP="http://127.0.0.1:$port"
export JOBQ_TOKEN=$ADMIN

# api JSON [TOKEN]: POSTs JSON to /v1/ops with Authorization: Bearer TOKEN (default the admin
# token; "-" for none); sets BODY and STATUS.
api() {
    local tok=${2:-$ADMIN} out
    local auth=()
    [ "$tok" = - ] || auth=(-H "Authorization: Bearer $tok")
    out=$(curl -s --max-time 60 -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' \
        "${auth[@]}" --data-binary "$1" "$HTTP/v1/ops")
    BODY=${out%$'\n'*}
    STATUS=${out##*$'\n'}
}
# expect_api WHAT STATUS [CODE]: the last answer had STATUS and (for an error) error.code CODE.
expect_api() {
    expect_eq "$1: status" "$STATUS" "$2"
    if [ -n "${3:-}" ]; then
        expect_eq "$1: error code" "$(jq -r '.error.code' <<<"$BODY")" "$3"
    else
        expect_eq "$1: ok" "$(jq -r '.ok' <<<"$BODY")" true
    fi
}
held() { curl -s -H "Authorization: Bearer $READER" "$HTTP/metrics" | awk '$1 == "jobq_held_requests" {print $2}'; }

# ---- every op ----
api '{"op":"ping"}'
expect_api ping 200
api '{"op":"submit","queue":"work","payload":{"n":1},"key":"k1"}'
expect_api submit 200
id1=$(jq -r .id <<<"$BODY")
api '{"op":"submit_batch","queue":"work","jobs":[{"payload":2},{"payload":3,"priority":5}]}'
expect_api submit_batch 200
expect_eq "submit_batch ids" "$(jq -r '.ids | length' <<<"$BODY")" 2
api "{\"op\":\"get\",\"id\":$id1}"
expect_api get 200
expect_eq "get: the job's payload" "$(jq -c .job.payload <<<"$BODY")" '{"n":1}'
api '{"op":"list","queue":"work","limit":2}'
expect_api list 200
expect_eq "list: jobs" "$(jq -r '.jobs | length' <<<"$BODY")" 2
api '{"op":"stats","queues":["work"]}'
expect_api stats 200
expect_eq "stats: ready jobs of work" "$(jq -r .queues.work.ready <<<"$BODY")" 3
api "{\"op\":\"explain\",\"id\":$id1}"
expect_api explain 200
expect_eq "explain: reason" "$(jq -r .reason <<<"$BODY")" no_consumer
api '{"op":"schedules"}'
expect_api schedules 200
expect_eq "schedules: name" "$(jq -r '.schedules[0].name' <<<"$BODY")" nightly
api '{"op":"pause","queue":"work"}'
expect_api pause 200
api '{"op":"resume","queue":"work"}'
expect_api resume 200
api '{"op":"fetch","queue":"work","max":2,"timeout":0}'
expect_api fetch 200
fid=$(jq -r '.jobs[0].id' <<<"$BODY")
flease=$(jq -r '.jobs[0].lease' <<<"$BODY")
gid=$(jq -r '.jobs[1].id' <<<"$BODY")
glease=$(jq -r '.jobs[1].lease' <<<"$BODY")
api "{\"op\":\"heartbeat\",\"id\":$fid,\"lease\":\"$flease\"}"
expect_api heartbeat 200
api "{\"op\":\"ack\",\"id\":$fid,\"lease\":\"$flease\",\"result\":\"sent\"}"
expect_api ack 200
expect_eq "ack: state" "$(jq -r .job.state <<<"$BODY")" succeeded
api "{\"op\":\"fail\",\"id\":$gid,\"lease\":\"$glease\",\"error\":\"nope\",\"retry\":false}"
expect_api fail 200
expect_eq "fail: state" "$(jq -r .job.state <<<"$BODY")" dead
api "{\"op\":\"retry\",\"id\":$gid}"
expect_api retry 200
expect_eq "retry: state" "$(jq -r .job.state <<<"$BODY")" ready
api '{"op":"submit","queue":"work","delay":"1h"}'
pid=$(jq -r .id <<<"$BODY")
api "{\"op\":\"promote\",\"id\":$pid}"
expect_api promote 200
expect_eq "promote: state" "$(jq -r .job.state <<<"$BODY")" ready
api "{\"op\":\"cancel\",\"id\":$pid}"
expect_api cancel 200
expect_eq "cancel: state" "$(jq -r .job.state <<<"$BODY")" cancelled
api "{\"op\":\"wait\",\"id\":$pid,\"timeout\":\"1s\"}"
expect_api "wait on an ended job" 200
expect_eq "wait: done" "$(jq -r .done <<<"$BODY")" true
api "{\"op\":\"backup\",\"path\":\"$T/backups/copy.db\"}"
expect_api backup 200
[ -s "$T/backups/copy.db" ] || fail "backup over HTTP wrote nothing"
ok "every op over POST /v1/ops: ping submit submit_batch get list stats explain schedules pause resume fetch heartbeat ack fail retry promote cancel wait backup"

# ---- errors and their statuses ----
api 'not json'
expect_api "a body that is not JSON" 400 malformed
api '{"op":"frobnicate"}'
expect_api "an unknown op" 400 unknown_op
api '{"op":"submit"}'
expect_api "a submit without a queue" 400 invalid_argument
api '{"op":"get","id":999999}'
expect_api "get of a job that does not exist" 404 not_found
api '{"op":"submit","queue":"nope"}'
expect_api "a queue that is not configured" 404 unknown_queue
api "{\"op\":\"cancel\",\"id\":$fid}"
expect_api "cancel of a finished job" 409 invalid_state
api "{\"op\":\"ack\",\"id\":$fid,\"lease\":\"$flease\"}"
expect_api "ack with an ended lease" 409 lease_expired
api '{"op":"submit","queue":"work","payload":{"n":2},"key":"k1"}'
expect_api "a key taken with another payload" 409 key_conflict
api '{"op":"ping"}' -
expect_api "no token" 401 unauthorized
hdr=$(curl -s -o /dev/null -D - -X POST -d '{"op":"ping"}' "$HTTP/v1/ops" | tr -d '\r')
grep -qi '^WWW-Authenticate: Bearer' <<<"$hdr" || fail "no Bearer challenge with the 401: $hdr"
api '{"op":"ping"}' wrong-token-0123456789abcdef
expect_api "a wrong token" 401 unauthorized
api '{"op":"submit","queue":"work"}' "$READER"
expect_api "submit with the read token" 403 forbidden
api "{\"op\":\"cancel\",\"id\":$id1}" "$READER"
expect_api "cancel with the read token" 403 forbidden
api "{\"op\":\"get\",\"id\":$id1}" "$READER"
expect_api "get with the read token" 200
api "{\"op\":\"get\",\"id\":$id1,\"token\":\"$ADMIN\"}" -
expect_api "the token in the body instead of the header" 200
api "{\"op\":\"submit\",\"queue\":\"work\",\"token\":\"$READER\"}" -
expect_api "submit with the read token in the body" 403 forbidden
r=$(raw "{\"op\":\"submit\",\"queue\":\"work\",\"token\":\"$READER\"}")
expect_eq "submit with the read token on the job port" "$(jq -r .error.code <<<"$r")" forbidden
r=$(raw "{\"op\":\"stats\",\"token\":\"$READER\"}")
expect_eq "stats with the read token on the job port" "$(jq -r .ok <<<"$r")" true
code=$(curl -s -o /dev/null -w '%{http_code}' "$HTTP/metrics")
expect_eq "/metrics without a token" "$code" 401
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $READER" "$HTTP/metrics")
expect_eq "/metrics with the read token" "$code" 200
code=$(curl -s -o /dev/null -w '%{http_code}' -u "viewer:$READER" "$HTTP/")
expect_eq "the dashboard with the read token as a browser's password" "$code" 200
hdr=$(curl -s -o /dev/null -D - "$HTTP/stats" | tr -d '\r')
grep -qi '^WWW-Authenticate: Basic' <<<"$hdr" || fail "/stats without a token: no Basic challenge for browsers: $hdr"
code=$(curl -s -o /dev/null -w '%{http_code}' "$HTTP/healthz")
expect_eq "/healthz without a token" "$code" 200
code=$(curl -s -o /dev/null -w '%{http_code}' "$HTTP/v1/ops")
expect_eq "GET /v1/ops" "$code" 405
curl -s "$HTTP/v1/openapi.yaml" >"$T/served.yaml"
cmp -s "$T/served.yaml" "$JOBQ_SRC/docs/openapi.yaml" || fail "GET /v1/openapi.yaml is not docs/openapi.yaml"
ok "errors: 400 malformed/unknown_op/invalid_argument, 404 not_found/unknown_queue, 409 invalid_state/lease_expired/key_conflict, 401 without or with a wrong token, 403 forbidden to the read token (HTTP and job port), 200 for its reads; /metrics, /stats and / need a token, /healthz and the OpenAPI document do not"

# ---- a held wait, answered when its job ends ----
api '{"op":"submit","queue":"run","payload":1}'
rid=$(jq -r .id <<<"$BODY")
t0=$(date +%s%N)
api "{\"op\":\"wait\",\"id\":$rid,\"timeout\":\"30s\"}" "$READER"
ms=$((($(date +%s%N) - t0) / 1000000))
expect_api "a held wait" 200
expect_eq "the wait's answer" "$(jq -r '.done, .jobs[0].state' <<<"$BODY" | tr '\n' ' ')" "true succeeded "
expect_eq "the job's result" "$(jq -c '.jobs[0].result' <<<"$BODY")" '"done\n"'
[ "$ms" -ge 300 ] || fail "the wait was answered in $ms ms: before its 1 s job could end"
ok "a wait held over HTTP (read token) is answered when its job ends (${ms} ms)"

# ---- too many held requests: 429 ----
api '{"op":"submit","queue":"slow"}'
sid=$(jq -r .id <<<"$BODY")
WAITERS=()
for i in 1 2 3 4 5 6; do
    curl -s --max-time 60 -X POST -H "Authorization: Bearer $ADMIN" \
        -d "{\"op\":\"wait\",\"id\":$sid,\"timeout\":\"30s\"}" "$HTTP/v1/ops" >"$T/waiter.$i" &
    WAITERS+=("$!")
done
poll_until "six waits are held" '[ "$(held)" = 6 ]'
api "{\"op\":\"wait\",\"id\":$sid,\"timeout\":\"30s\"}"
expect_api "a seventh wait over max_waits" 429 too_many_waits
hdr=$(curl -s -o /dev/null -D - -X POST -H "Authorization: Bearer $ADMIN" \
    -d "{\"op\":\"wait\",\"id\":$sid,\"timeout\":\"30s\"}" "$HTTP/v1/ops" | tr -d '\r')
grep -qi '^Retry-After: 1' <<<"$hdr" || fail "no Retry-After with the 429: $hdr"
# The job port still answers at once while the HTTP side holds them.
t0=$(date +%s%N)
cli ping >/dev/null
ping_ms=$((($(date +%s%N) - t0) / 1000000))
for p in "${WAITERS[@]}"; do
    wait "$p" || fail "a held wait's curl failed"
done
for i in 1 2 3 4 5 6; do
    expect_eq "held wait $i's answer" "$(jq -r '.done, .jobs[0].state' "$T/waiter.$i" | tr '\n' ' ')" "true succeeded "
done
ok "max_waits over HTTP: 429 too_many_waits with Retry-After; the six held waits are answered when the job ends; the job port answered a ping meanwhile in ${ping_ms} ms"

# ---- a held fetch whose HTTP client hangs up claims nothing ----
# Take what work holds so far, so that a fetch has nothing to take.
while :; do
    api '{"op":"fetch","queue":"work","max":100,"timeout":0}'
    [ "$(jq -r '.jobs | length' <<<"$BODY")" != 0 ] || break
    jq -c '.jobs[] | {id, lease}' <<<"$BODY" | while read -r j; do
        api "{\"op\":\"ack\",$(jq -r '"\"id\":\(.id),\"lease\":\"\(.lease)\""' <<<"$j")}"
    done
done
rc=0
curl -s --max-time 1 -X POST -H "Authorization: Bearer $ADMIN" \
    -d '{"op":"fetch","queue":"work","timeout":"5m"}' "$HTTP/v1/ops" >/dev/null || rc=$?
expect_eq "curl gave up on the held fetch" "$rc" 28
poll_until "the fetch is dropped" '[ "$(held)" = 0 ]'
grep -q 'event=holds_dropped conn=[0-9]* requests=1 reason=connection_closed' "$LOG" ||
    fail "no holds_dropped line for the HTTP connection"
id=$(cli submit work '{"n":10}')
api "{\"op\":\"get\",\"id\":$id}"
expect_eq "the job after the fetching client left" "$(jq -r '.job.state, .job.attempt' <<<"$BODY" | tr '\n' ' ')" "ready 0 "
api '{"op":"fetch","queue":"work","timeout":0}'
expect_eq "another worker fetches it at its first attempt" "$(jq -r '.jobs[0].id, .jobs[0].attempt' <<<"$BODY" | tr '\n' ' ')" "$id 1 "
api "{\"op\":\"ack\",\"id\":$id,\"lease\":\"$(jq -r '.jobs[0].lease' <<<"$BODY")\"}"
ok "a held fetch whose HTTP client hung up is dropped at once and claims nothing"

# The job is ready before the fetch comes; jobqd is stopped while the client connects, sends
# the fetch and hangs up, so the request and the hang-up wait together in the socket. The job
# must not go to the gone client: the next worker gets it at its first attempt.
id=$(cli submit work '{"n":11}')
kill -STOP "$JOBQD_PID"
curl -s --max-time 1 -X POST -H "Authorization: Bearer $ADMIN" \
    -d '{"op":"fetch","queue":"work","timeout":"5m"}' "$HTTP/v1/ops" >/dev/null || true
kill -CONT "$JOBQD_PID"
got=
poll_until "the next worker fetches job $id" \
    'api "{\"op\":\"fetch\",\"queue\":\"work\",\"timeout\":0}"; got=$(jq -r ".jobs[0].id" <<<"$BODY"); [ "$got" != null ]'
expect_eq "the job the next worker fetches" "$got" "$id"
expect_eq "its attempt" "$(jq -r '.jobs[0].attempt' <<<"$BODY")" 1
how="never claimed for it"
! grep -q "event=job_returned job=$id " "$LOG" || how="claimed for it, then handed back"
api "{\"op\":\"ack\",\"id\":$id,\"lease\":\"$(jq -r '.jobs[0].lease' <<<"$BODY")\"}"
ok "a fetch whose HTTP client hung up before jobqd read it: the job goes to the next worker, no attempt spent ($how)"

# ---- keep-alive: two requests on one connection ----
curl -sv -X POST -H "Authorization: Bearer $ADMIN" -d '{"op":"ping"}' "$HTTP/v1/ops" "$HTTP/v1/ops" \
    >"$T/ka.out" 2>"$T/ka.err"
expect_eq "two replies" "$(grep -o '"ok":true' "$T/ka.out" | wc -l)" 2
grep -q 'Re-using existing connection' "$T/ka.err" || fail "curl did not reuse the connection: $(cat "$T/ka.err")"
expect_eq "connections opened" "$(grep -c '^\* Connected to' "$T/ka.err")" 1
ok "keep-alive: two requests, two replies, one connection"

# ---- a body over the limit: 413 from its Content-Length, unread ----
head -c $((20 * 1024 * 1024)) /dev/zero >"$T/big.bin"
out=$(curl -s -w '\n%{http_code} %{size_upload}' -X POST -H "Authorization: Bearer $ADMIN" \
    --data-binary "@$T/big.bin" "$HTTP/v1/ops")
read -r STATUS up <<<"${out##*$'\n'}"
BODY=${out%$'\n'*}
expect_api "a 20 MiB body" 413 too_large
[ "$up" -lt $((1024 * 1024)) ] || fail "jobqd read $up bytes of a 20 MiB body before refusing it"
# Without an Authorization header the limit is max_unauthenticated_message (64 KiB): 401.
head -c $((200 * 1024)) /dev/zero >"$T/mid.bin"
out=$(curl -s -w '\n%{http_code}' -X POST --data-binary "@$T/mid.bin" "$HTTP/v1/ops")
expect_eq "a 200 KiB body without a token: status" "${out##*$'\n'}" 401
# Chunked (no Content-Length): read and discarded past the limit, then 413.
head -c $((2 * 1024 * 1024)) /dev/zero >"$T/two.bin"
out=$(curl -s -w '\n%{http_code}' -X POST -H "Authorization: Bearer $ADMIN" \
    -H 'Transfer-Encoding: chunked' --data-binary "@$T/two.bin" "$HTTP/v1/ops")
expect_eq "a 2 MiB chunked body: status" "${out##*$'\n'}" 413
api '{"op":"ping"}'
expect_api "a ping after the refusals" 200
ok "a body over max_message: 413 before $up of its 20 MiB were sent; 401 for 200 KiB without a token; a chunked one 413 after it was discarded"

# ---- the job port while the HTTP side is busy ----
# A client dribbling a request body, and 200 requests in a row, while the job port is pinged.
head -c 100000 /dev/zero | tr '\0' x >"$T/slow.bin"
curl -s --max-time 30 --limit-rate 20K -X POST -H "Authorization: Bearer $ADMIN" \
    --data-binary "@$T/slow.bin" "$HTTP/v1/ops" >/dev/null 2>&1 &
SLOW=$!
CLEANUP_PIDS+=("$SLOW")
(for _ in $(seq 1 200); do
    curl -s -X POST -H "Authorization: Bearer $ADMIN" -d '{"op":"stats","series":true}' "$HTTP/v1/ops" >/dev/null
done) &
BUSY=$!
CLEANUP_PIDS+=("$BUSY")
worst=0
for _ in $(seq 1 20); do
    t0=$(date +%s%N)
    cli ping >/dev/null || fail "the job port did not answer a ping while the HTTP side was busy"
    ms=$((($(date +%s%N) - t0) / 1000000))
    [ "$ms" -le "$worst" ] || worst=$ms
done
wait "$BUSY" || true
kill "$SLOW" 2>/dev/null || true
[ "$worst" -lt 2000 ] || fail "a ping on the job port took $worst ms while the HTTP side was busy"
ok "the job port answers pings (worst ${worst} ms) while HTTP clients dribble a body and send 200 requests"

# ---- draining: 503 shutting_down ----
api '{"op":"submit","queue":"slow"}'
slow=$(jq -r .id <<<"$BODY")
poll_until "the slow job runs" 'api "{\"op\":\"get\",\"id\":$slow}"; [ "$(jq -r .job.state <<<"$BODY")" = running ]'
kill -TERM "$JOBQD_PID"
poll_until "jobqd drains" 'grep -q "event=draining" "$LOG"'
api '{"op":"submit","queue":"work"}'
expect_api "a submit while jobqd drains" 503 shutting_down
rc=0
wait "$JOBQD_PID" || rc=$?
JOBQD_PID=
expect_eq "jobqd exit status after SIGTERM" "$rc" 0
ok "while jobqd drains, a submit over HTTP is 503 shutting_down; it exits 0"

# ---- HTTPS: http_tls_cert and http_tls_key ----
command -v openssl >/dev/null || fail "openssl is not installed (make test-deps)"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/http.key" -out "$T/http.pem" -days 2 \
    -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
sed -i "s|^http = .*|http = 127.0.0.1:0\nhttp_tls_cert = $T/http.pem\nhttp_tls_key = $T/http.key|" "$T/jobq.conf"
start_jobqd
port=$(grep -o 'event=http_listen addr=127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*://')
HTTP="https://127.0.0.1:$port"
api() {
    local tok=${2:-$ADMIN} out
    out=$(curl -s --max-time 60 --cacert "$T/http.pem" -w '\n%{http_code}' -X POST \
        -H "Authorization: Bearer $tok" --data-binary "$1" "$HTTP/v1/ops")
    BODY=${out%$'\n'*}
    STATUS=${out##*$'\n'}
}
api '{"op":"ping"}'
expect_api "ping over HTTPS" 200
api '{"op":"submit","queue":"work"}' "$READER"
expect_api "submit over HTTPS with the read token" 403 forbidden
rc=0
curl -s --max-time 1 --cacert "$T/http.pem" -X POST -H "Authorization: Bearer $ADMIN" \
    -d '{"op":"fetch","queue":"idle","timeout":"5m"}' "$HTTP/v1/ops" >/dev/null || rc=$?
expect_eq "curl gave up on the held fetch over HTTPS" "$rc" 28
poll_until "the HTTPS fetch is dropped" \
    '[ "$(curl -s --cacert "$T/http.pem" -H "Authorization: Bearer $READER" "$HTTP/metrics" | awk '"'"'$1 == "jobq_held_requests" {print $2}'"'"')" = 0 ]'
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz") || true
[ "$code" != 200 ] || fail "plain HTTP was answered on the HTTPS listener"
stop_jobqd
ok "HTTPS with http_tls_cert/http_tls_key: ops, 403 for the read token, a held fetch dropped when its client hangs up; plain HTTP is not served there"

# ---- exposure: beyond loopback only with a token ----
sed -i -e 's/^http = .*/http = 0.0.0.0:0/' -e '/^auth_token = /d' -e '/^read_token = /d' "$T/jobq.conf"
rc=0
out=$("$JOBQD" -c "$T/jobq.conf" --check-config 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "http = 0.0.0.0:0 without a token was accepted"
grep -q 'set auth_token\|Set auth_token' <<<"$out" || fail "the refusal does not say to set auth_token: $out"
grep -q '127.0.0.1' <<<"$out" || fail "the refusal does not mention listening on 127.0.0.1: $out"
ok "http on 0.0.0.0 without a token is a config error: $out"
