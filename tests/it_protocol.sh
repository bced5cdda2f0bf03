#!/usr/bin/env bash
# it_protocol.sh: a hand-written JSON request through nngcat (no libjobq) gets the replies
# proto/PROTOCOL.md promises, and a submitted job reads back intact.
# nngcat, not jobq-raw: any stock nng client must be served.
RAW_CLIENT=nngcat
. "$(dirname "$0")/lib.sh"
# No command: a queue for remote workers, so submitted jobs stay where they are.
write_config '[queue.email]
max_attempts = 3
timeout = 5s
backoff_base = 1h
backoff_max = 2h'
start_jobqd

r=$(raw '{"op":"ping"}')
expect_eq "ping ok" "$(jq -r .ok <<<"$r")" true
expect_eq "ping version" "$(jq -r '.version | test("^[0-9]+\\.[0-9]+\\.[0-9]+$")' <<<"$r")" true
ok "ping"

r=$(raw '{"op":"submit","queue":"email","payload":{"to":"a@example.com","n":[1,2,3]},"priority":5}')
expect_eq "submit ok" "$(jq -r .ok <<<"$r")" true
id=$(jq -r .id <<<"$r")
expect_eq "submit state" "$(jq -r .state <<<"$r")" ready
expect_eq "submit duplicate" "$(jq -r .duplicate <<<"$r")" false

r=$(raw "{\"op\":\"get\",\"id\":$id}")
expect_eq "get ok" "$(jq -r .ok <<<"$r")" true
expect_eq "payload round trip" "$(jq -c .job.payload <<<"$r")" '{"to":"a@example.com","n":[1,2,3]}'
expect_eq "queue" "$(jq -r .job.queue <<<"$r")" email
expect_eq "priority" "$(jq -r .job.priority <<<"$r")" 5
expect_eq "max_attempts from the queue" "$(jq -r .job.max_attempts <<<"$r")" 3
expect_eq "timeout from the queue" "$(jq -r .job.timeout <<<"$r")" 5000
expect_eq "attempt" "$(jq -r .job.attempt <<<"$r")" 0
expect_eq "finished_at" "$(jq -r .job.finished_at <<<"$r")" null
ok "submit -> get round trip"

r=$(raw '{"op":"submit","queue":"email","payload":"later","delay":"1h","max_attempts":9,"timeout":"2s"}')
expect_eq "delayed state" "$(jq -r .state <<<"$r")" scheduled
lid=$(jq -r .id <<<"$r")
r=$(raw "{\"op\":\"get\",\"id\":$lid}")
expect_eq "per-job max_attempts" "$(jq -r .job.max_attempts <<<"$r")" 9
expect_eq "per-job timeout" "$(jq -r .job.timeout <<<"$r")" 2000
[ "$(jq -r '.job.run_at - .job.created_at' <<<"$r")" -ge 3599000 ] || fail "run_at is not 1h ahead"
ok "delay, max_attempts and timeout per job"

r=$(raw '{"op":"submit","queue":"email","payload":{"a":1},"key":"order-7"}')
kid=$(jq -r .id <<<"$r")
r=$(raw '{"op":"submit","queue":"email","payload":{"a":1},"key":"order-7"}')
expect_eq "same key, same payload: same id" "$(jq -r .id <<<"$r")" "$kid"
expect_eq "duplicate flag" "$(jq -r .duplicate <<<"$r")" true
r=$(raw '{"op":"submit","queue":"email","payload":{"a":2},"key":"order-7"}')
expect_eq "same key, other payload" "$(jq -r .error.code <<<"$r")" key_conflict
ok "idempotency keys"

r=$(raw '{"op":"stats"}')
expect_eq "stats ready" "$(jq -r .queues.email.ready <<<"$r")" 2
expect_eq "stats scheduled" "$(jq -r .queues.email.scheduled <<<"$r")" 1
expect_eq "stats paused" "$(jq -r .queues.email.paused <<<"$r")" false
expect_eq "stats breaker" "$(jq -r .queues.email.breaker <<<"$r")" closed
ok "stats"

r=$(raw '{"op":"list","queue":"email","limit":2}')
expect_eq "list page size" "$(jq '.jobs | length' <<<"$r")" 2
next=$(jq -r .next <<<"$r")
r=$(raw "{\"op\":\"list\",\"queue\":\"email\",\"limit\":2,\"after\":$next}")
expect_eq "list second page" "$(jq '.jobs | length' <<<"$r")" 1
expect_eq "list last page next" "$(jq -r .next <<<"$r")" null
r=$(raw '{"op":"list","state":"scheduled"}')
expect_eq "list by state" "$(jq -r '.jobs[0].id' <<<"$r")" "$lid"
ok "list with paging and filters"

r=$(raw "{\"op\":\"cancel\",\"id\":$lid}")
expect_eq "cancel" "$(jq -r .job.state <<<"$r")" cancelled
r=$(raw "{\"op\":\"cancel\",\"id\":$lid}")
expect_eq "cancel twice" "$(jq -r .error.code <<<"$r")" invalid_state
r=$(raw '{"op":"cancel","id":999999}')
expect_eq "cancel unknown" "$(jq -r .error.code <<<"$r")" not_found
r=$(raw '{"op":"stats"}')
expect_eq "stats after cancel" "$(jq -r '.queues.email | "\(.scheduled) \(.cancelled)"' <<<"$r")" "0 1"
ok "cancel"

# A wait that times out answers with the jobs as they are (and frees what it held: the
# sanitizer and valgrind runs of this test check that).
r=$(raw '{"op":"wait","ids":[1,2],"timeout":"100ms"}')
expect_eq "wait timed out" "$(jq -r .done <<<"$r")" false
expect_eq "wait reports each job" "$(jq '.jobs | length' <<<"$r")" 2
ok "wait with a timeout"

r=$(raw '{"op":"pause","queue":"email"}')
expect_eq "pause" "$(jq -r .paused <<<"$r")" true
stop_jobqd
start_jobqd
r=$(raw '{"op":"stats"}')
expect_eq "paused survives a restart" "$(jq -r .queues.email.paused <<<"$r")" true
expect_eq "counts survive a restart" "$(jq -r .queues.email.ready <<<"$r")" 2
raw '{"op":"resume","queue":"email"}' >/dev/null
ok "pause and resume persist"

# promote: a scheduled job, then one waiting for its backoff, is ready at once; nothing else is.
r=$(raw '{"op":"submit","queue":"email","payload":"promote me","delay":"1h","priority":100}')
pid=$(jq -r .id <<<"$r")
before=$(raw '{"op":"stats"}')
r=$(raw "{\"op\":\"promote\",\"id\":$pid}")
expect_eq "promote a scheduled job" "$(jq -r '.ok, .job.state, .job.attempt' <<<"$r" | tr '\n' ' ')" \
    "true ready 0 "
after=$(raw '{"op":"stats"}')
expect_eq "counts follow a promote (ready +, scheduled -)" \
    "$(($(jq .queues.email.ready <<<"$after") - $(jq .queues.email.ready <<<"$before"))) $(($(jq .queues.email.scheduled <<<"$before") - $(jq .queues.email.scheduled <<<"$after")))" \
    "1 1"
r=$(raw "{\"op\":\"promote\",\"id\":$pid}")
expect_eq "promote a ready job" "$(jq -r .error.code <<<"$r")" invalid_state
r=$(raw '{"op":"promote","id":999999}')
expect_eq "promote a job that does not exist" "$(jq -r .error.code <<<"$r")" not_found
r=$(raw '{"op":"fetch","queues":["email"],"max":1,"timeout":0}')
expect_eq "the promoted job is fetched first (priority 100)" "$(jq -r '.jobs[0].id' <<<"$r")" "$pid"
lease=$(jq -r '.jobs[0].lease' <<<"$r")
r=$(raw "{\"op\":\"fail\",\"id\":$pid,\"lease\":\"$lease\",\"error\":\"later\",\"retry\":true}")
expect_eq "failed with a backoff of 1 h" "$(jq -r .job.state <<<"$r")" retrying
r=$(raw "{\"op\":\"promote\",\"id\":$pid}")
expect_eq "promote a retrying job: ready, its attempt kept" \
    "$(jq -r '.job.state, .job.attempt, .job.error' <<<"$r" | tr '\n' ' ')" "ready 1 later "
r=$(raw '{"op":"fetch","queues":["email"],"max":1,"timeout":0}')
expect_eq "and fetched again as attempt 2" "$(jq -r '.jobs[0].id, .jobs[0].attempt' <<<"$r" | tr '\n' ' ')" \
    "$pid 2 "
ok "promote: scheduled and retrying jobs run now; ready, unknown jobs refused"

# Trace context: kept with the job, shown by get, handed to a worker with the fetched job.
TP=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
r=$(raw "{\"op\":\"submit\",\"queue\":\"email\",\"payload\":1,\"priority\":200,\"traceparent\":\"$TP\",\"tracestate\":\"a=1,b=2\"}")
tid=$(jq -r .id <<<"$r")
r=$(raw "{\"op\":\"get\",\"id\":$tid}")
expect_eq "get shows the trace context" "$(jq -r '.job.traceparent + " " + .job.tracestate' <<<"$r")" \
    "$TP a=1,b=2"
r=$(raw '{"op":"fetch","queues":["email"],"max":1,"timeout":0}')
expect_eq "a fetched job carries it" \
    "$(jq -r '.jobs[0] | "\(.id) \(.traceparent) \(.tracestate)"' <<<"$r")" "$tid $TP a=1,b=2"
for bad in '"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"' \
    '"traceparent":"00-00000000000000000000000000000000-00f067aa0ba902b7-01"' \
    '"traceparent":"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"' \
    '"traceparent":"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"' \
    '"tracestate":"a=1"'; do
    r=$(raw "{\"op\":\"submit\",\"queue\":\"email\",\"payload\":1,$bad}")
    expect_eq "refused: $bad" "$(jq -r .error.code <<<"$r")" invalid_argument
done
ok "trace context: stored, shown by get, carried by fetch; malformed ones refused"

# A worker's fail with slow_down holds the queue: the next fetch gets nothing though jobs are
# ready, and explain says why.
r=$(raw '{"op":"fetch","queues":["email"],"max":1,"timeout":0}')
sid=$(jq -r '.jobs[0].id' <<<"$r")
lease=$(jq -r '.jobs[0].lease' <<<"$r")
r=$(raw "{\"op\":\"fail\",\"id\":$sid,\"lease\":\"$lease\",\"error\":\"429\",\"slow_down\":\"1h\"}")
expect_eq "fail with slow_down" "$(jq -r .ok <<<"$r")" true
expect_eq "ready jobs left" "$(($(raw '{"op":"stats"}' | jq .queues.email.ready) > 0))" 1
r=$(raw '{"op":"fetch","queues":["email"],"max":1,"timeout":0}')
expect_eq "a fetch while slowed down" "$(jq -c .jobs <<<"$r")" "[]"
rid=$(raw '{"op":"list","queue":"email","state":"ready","limit":1}' | jq -r '.jobs[0].id')
expect_eq "explain" "$(raw "{\"op\":\"explain\",\"id\":$rid}" | jq -r .reason)" slowed_down
ok "fail with slow_down holds the queue: fetches get nothing, explain says slowed_down"
stop_jobqd
