#!/usr/bin/env bash
# it_conformance.sh: what proto/PROTOCOL.md says about edge cases, checked with raw JSON
# against a real jobqd: list paging ends on an exactly full last page; ack, fail and
# heartbeat tell a missing job (not_found) from an ended lease (lease_expired); a heartbeat
# after a cancel carries lease_expires_at; explain's reasons for waiting and paused remote
# jobs; replies to pipelined requests leave as they are ready; "after" over 1,000 ids is
# too_large; the attempt kinds error, lease, shutdown (clean stop) and crash (kill -9); the
# token field.
. "$(dirname "$0")/lib.sh"

SERVER_EXTRA='shutdown_grace = 1s'
# No command: remote workers' queue, so jobs stay where they are until fetched.
write_config '[queue.w]
lease = 2s
backoff_base = 1ms
backoff_max = 1ms'
start_jobqd

submit() { raw "{\"op\":\"submit\",\"queue\":\"w\",\"payload\":$1}" | jq -r .id; }
# fetch1: fetches one job of w at once; prints "ID LEASE ATTEMPT".
fetch1() {
    raw '{"op":"fetch","queue":"w","timeout":0}' | jq -r '.jobs[0] | "\(.id) \(.lease) \(.attempt)"'
}
code() { jq -r .error.code <<<"$1"; }

# ---- list: no empty page after an exactly full last one ----
ids=()
for i in 1 2 3 4; do ids+=("$(submit $i)"); done
r=$(raw '{"op":"list","queue":"w","limit":2}')
expect_eq "first page next" "$(jq -r .next <<<"$r")" "${ids[1]}"
r=$(raw "{\"op\":\"list\",\"queue\":\"w\",\"limit\":2,\"after\":${ids[1]}}")
expect_eq "exactly full last page" "$(jq -c '[.jobs[].id]' <<<"$r")" "[${ids[2]},${ids[3]}]"
expect_eq "exactly full last page: next" "$(jq -r .next <<<"$r")" null
r=$(raw '{"op":"list","queue":"w","limit":4}')
expect_eq "one exactly full page: next" "$(jq -r .next <<<"$r")" null
r=$(raw '{"op":"list","queue":"w","limit":3}')
expect_eq "a page with more after it: next" "$(jq -r .next <<<"$r")" "${ids[2]}"
ok "list: next is null on the last page, even an exactly full one"

# ---- ack, fail, heartbeat: not_found for no such job, lease_expired for an ended lease ----
for op in ack fail heartbeat; do
    r=$(raw "{\"op\":\"$op\",\"id\":987654321,\"lease\":\"00000000000000000000000000000000\"}")
    expect_eq "$op of a job that does not exist" "$(code "$r")" not_found
    r=$(raw "{\"op\":\"$op\",\"id\":${ids[0]},\"lease\":\"00000000000000000000000000000000\"}")
    expect_eq "$op of a job no lease holds" "$(code "$r")" lease_expired
done
read -r fid flease _ < <(fetch1)
r=$(raw "{\"op\":\"ack\",\"id\":$fid,\"lease\":\"ffffffffffffffffffffffffffffffff\"}")
expect_eq "ack with another lease" "$(code "$r")" lease_expired
r=$(raw "{\"op\":\"fail\",\"id\":$fid,\"lease\":\"$flease\",\"error\":\"smtp 421\"}")
expect_eq "fail with the lease" "$(jq -r .job.state <<<"$r")" retrying
r=$(raw "{\"op\":\"ack\",\"id\":$fid,\"lease\":\"$flease\"}")
expect_eq "ack after the fail" "$(code "$r")" lease_expired
r=$(raw "{\"op\":\"get\",\"id\":$fid}")
expect_eq "a worker's fail is kind error" "$(jq -r '.job.attempts[-1].kind' <<<"$r")" error
ok "ack, fail, heartbeat: not_found for a missing job, lease_expired for an ended lease"

# ---- a heartbeat after a cancel ----
poll_until "the failed job is ready again" \
    "[ \"\$(raw '{\"op\":\"get\",\"id\":$fid}' | jq -r .job.state)\" = ready ]"
read -r hid hlease _ < <(fetch1)
r=$(raw "{\"op\":\"heartbeat\",\"id\":$hid,\"lease\":\"$hlease\"}")
expect_eq "heartbeat reply" "$(jq -c '[.cancel, (.lease_expires_at | type)]' <<<"$r")" '[false,"number"]'
r=$(raw "{\"op\":\"cancel\",\"id\":$hid}")
expect_eq "cancel of a leased job" "$(jq -r .job.state <<<"$r")" cancelled
before=$(($(date +%s%3N)))
r=$(raw "{\"op\":\"heartbeat\",\"id\":$hid,\"lease\":\"$hlease\"}")
expect_eq "heartbeat after the cancel" "$(jq -c '[.ok, .cancel, (.lease_expires_at | type)]' <<<"$r")" \
    '[true,true,"number"]'
[ "$(jq -r .lease_expires_at <<<"$r")" -ge "$before" ] || fail "lease_expires_at in the past: $r"
[ "$(jq -r .lease_expires_at <<<"$r")" -le "$(($(date +%s%3N)))" ] ||
    fail "lease_expires_at of a revoked lease is in the future: $r"
r=$(raw "{\"op\":\"heartbeat\",\"id\":$hid,\"lease\":\"$hlease\"}")
expect_eq "a second heartbeat" "$(code "$r")" lease_expired
ok "a heartbeat after a cancel: cancel true, lease_expires_at now, then lease_expired"

# ---- explain: waiting, and a paused remote queue is paused ----
child=$(raw "{\"op\":\"submit\",\"queue\":\"w\",\"after\":[${ids[3]}]}" | jq -r .id)
r=$(raw "{\"op\":\"explain\",\"id\":$child}")
expect_eq "explain of a job with after" "$(jq -r '"\(.state) \(.reason)"' <<<"$r")" "waiting waiting"
r=$(raw "{\"op\":\"explain\",\"id\":${ids[3]}}")
expect_eq "explain of a ready remote job" "$(jq -r .reason <<<"$r")" no_consumer
raw '{"op":"pause","queue":"w"}' >/dev/null
r=$(raw "{\"op\":\"explain\",\"id\":${ids[3]}}")
expect_eq "explain of a ready job of a paused remote queue" "$(jq -r .reason <<<"$r")" paused
raw '{"op":"resume","queue":"w"}' >/dev/null
ok "explain: waiting; paused wins over no_consumer"

# ---- pipelined requests on one connection: replies come as they are ready ----
# A wait held for 1 s, then a ping on the same connection: the ping's reply comes first, and
# the REQ contexts match each reply to its request by the SP request id.
out=$("$JOBQ_RAW" "$SOCK" "$RAW_WAIT" --pipeline \
    "{\"op\":\"wait\",\"id\":$child,\"timeout\":\"1s\"}" '{"op":"ping"}')
expect_eq "replies in the order they were ready" "$(cut -d' ' -f1 <<<"$out" | tr '\n' ' ')" "1 0 "
expect_eq "the ping's reply" "$(sed -n 1p <<<"$out" | cut -d' ' -f2- | jq -r '.version | type')" string
expect_eq "the wait's reply" "$(sed -n 2p <<<"$out" | cut -d' ' -f2- | jq -c '[.done, .jobs[0].id]')" \
    "[false,$child]"
ok "pipelined replies come back out of order, matched by request id"

# ---- after over 1,000 ids ----
after=$(seq -s, 1 1001)
r=$(raw "{\"op\":\"submit\",\"queue\":\"w\",\"after\":[$after]}")
expect_eq "after with 1,001 ids" "$(code "$r")" too_large
ok "after over 1,000 ids is too_large"

# ---- lease expiry (kind lease), clean stop (kind shutdown), kill -9 (kind crash) ----
read -r lid _ _ < <(fetch1)
poll_until "the unrenewed lease of job $lid expired" \
    "[ \"\$(raw '{\"op\":\"get\",\"id\":$lid}' | jq -r '.job.attempts[-1].kind')\" = lease ]"
read -r sid _ sattempt < <(fetch1)
stop_jobqd # the lease outlives shutdown_grace: the job goes back, its attempt given back
start_jobqd
r=$(raw "{\"op\":\"get\",\"id\":$sid}")
expect_eq "a lease ended by a clean stop" \
    "$(jq -r '"\(.job.state) \(.job.attempt) \(.job.attempts[-1].kind)"' <<<"$r")" "ready $((sattempt - 1)) shutdown"
read -r cid _ cattempt < <(fetch1)
kill9_jobqd
start_jobqd
r=$(raw "{\"op\":\"get\",\"id\":$cid}")
expect_eq "a lease ended by kill -9" \
    "$(jq -r '"\(.job.state) \(.job.attempt) \(.job.attempts[-1].kind)"' <<<"$r")" "ready $cattempt crash"
ok "attempt kinds: lease, shutdown (clean stop, attempt given back), crash (kill -9, counted)"
stop_jobqd

# ---- the token field ----
TOKEN=0123456789abcdef-conformance
SERVER_EXTRA="shutdown_grace = 1s
auth_token = $TOKEN"
write_config '[queue.w]'
start_jobqd
r=$(raw '{"op":"ping"}')
expect_eq "no token" "$(code "$r")" unauthorized
r=$(raw '{"op":"ping","token":"0123456789abcdef-wrong"}')
expect_eq "wrong token" "$(code "$r")" unauthorized
r=$(raw '{"op":"ping","token":42}')
expect_eq "a token that is not a string" "$(code "$r")" unauthorized
r=$(raw '{"op":"no_such_op","token":"nope"}')
expect_eq "the token is checked before the op" "$(code "$r")" unauthorized
r=$(raw "{\"op\":\"ping\",\"token\":\"$TOKEN\"}")
expect_eq "right token" "$(jq -r .ok <<<"$r")" true
r=$(raw "{\"token\":\"$TOKEN\",\"op\":\"submit\",\"queue\":\"w\",\"payload\":1}")
expect_eq "right token, anywhere in the object" "$(jq -r .ok <<<"$r")" true
ok "token: missing, wrong or not a string is unauthorized"
stop_jobqd
