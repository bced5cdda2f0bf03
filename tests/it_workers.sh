#!/usr/bin/env bash
# it_workers.sh: remote workers against a real jobqd: 4 `jobq work` processes drain N jobs
# (default 100,000) with none lost or run twice; ack and fail of many jobs in one request;
# a worker killed mid-job (or mid-run, with outcomes not yet sent) loses its leases and
# another finishes the jobs; a late ack with an old lease is fenced off; a worker over
# tls+tcp:// with auth_token; end-to-end jobs/s of no-op library workers.
# JOBQ_WORKERS_JOBS=N changes the size of the drain (the README's test budget is 300 s).
. "$(dirname "$0")/lib.sh"

N=${JOBQ_WORKERS_JOBS:-100000}
WBENCH=$(dirname "$JOBQ")/jobq-worker-bench
WORKER_PIDS=()

# Workers and handlers left behind by a failure are ended with the test.
stop_workers() {
    local p
    for p in "${WORKER_PIDS[@]}"; do
        kill -9 "$p" 2>/dev/null || true
    done
    if [ -f "$T/blocked.pid" ]; then
        kill -9 "$(cat "$T/blocked.pid")" 2>/dev/null || true
    fi
}
# (cleanup reads the exit status from $?: the if hands it on.)
trap 'rc_=$?; stop_workers; if (exit $rc_); then cleanup; else cleanup; fi' EXIT

SERVER_EXTRA="log_level = info"
write_config "[queue.a]
[queue.b]
[queue.p]
[queue.l]
lease = 2s
max_attempts = 5
backoff_base = 100ms
backoff_max = 200ms"
start_jobqd

# The daemon must speak the worker ops.
r=$(raw '{"op":"fetch","queue":"a","timeout":"100ms"}')
jq -e '.ok == true and .jobs == []' <<<"$r" >/dev/null || fail "fetch on an idle queue: $r"
ok "fetch on an idle queue answers after its timeout with no jobs"

# An ack or fail may carry the next fetch: one round trip per job. Its reply is the ack's or
# fail's with the fetch's "jobs"; a fetch part that names a bad queue refuses the whole
# request, and the lease stays valid.
for i in 1 2 3; do cli submit p "{\"n\":$i}" >/dev/null; done
r=$(raw '{"op":"fetch","queue":"p"}')
id1=$(jq -r '.jobs[0].id' <<<"$r")
lease1=$(jq -r '.jobs[0].lease' <<<"$r")
r=$(raw "{\"op\":\"ack\",\"id\":$id1,\"lease\":\"$lease1\",\"fetch\":{\"queue\":\"p\",\"timeout\":\"1s\"}}")
jq -e --argjson id "$id1" '.ok and .job.id == $id and .job.state == "succeeded" and
    (.jobs | length) == 1 and .jobs[0].id != $id and .jobs[0].payload.n == 2' <<<"$r" >/dev/null ||
    fail "ack with a fetch: $r"
id2=$(jq -r '.jobs[0].id' <<<"$r")
lease2=$(jq -r '.jobs[0].lease' <<<"$r")
r=$(raw "{\"op\":\"fail\",\"id\":$id2,\"lease\":\"$lease2\",\"retry\":false,\"error\":\"no\",\"fetch\":{\"queues\":[\"p\"],\"max\":5}}")
jq -e --argjson id "$id2" '.ok and .job.id == $id and .job.state == "dead" and
    (.jobs | length) == 1 and .jobs[0].payload.n == 3' <<<"$r" >/dev/null ||
    fail "fail with a fetch: $r"
id3=$(jq -r '.jobs[0].id' <<<"$r")
lease3=$(jq -r '.jobs[0].lease' <<<"$r")
r=$(raw "{\"op\":\"ack\",\"id\":$id3,\"lease\":\"$lease3\",\"fetch\":{\"queue\":\"nope\"}}")
expect_eq "ack with a fetch of an unknown queue" "$(jq -r .error.code <<<"$r")" unknown_queue
r=$(raw "{\"op\":\"ack\",\"id\":$id3,\"lease\":\"$lease3\",\"fetch\":3}")
expect_eq "ack with a fetch that is not an object" "$(jq -r .error.code <<<"$r")" invalid_argument
r=$(raw "{\"op\":\"ack\",\"id\":$id3,\"lease\":\"$lease3\",\"fetch\":{\"queue\":\"p\",\"timeout\":\"100ms\"}}")
jq -e --argjson id "$id3" '.ok and .job.id == $id and .job.state == "succeeded" and .jobs == []' \
    <<<"$r" >/dev/null || fail "ack with a fetch that finds nothing: $r"
ok "ack and fail carry the next fetch; a bad fetch part refuses the request and keeps the lease"

# ack and fail of many jobs ("jobs"): one request, a result per job in order; a bad lease or
# a missing job fails alone, the others are recorded.
for i in 11 12 13 14; do cli submit p "{\"n\":$i}" >/dev/null; done
r=$(raw '{"op":"fetch","queue":"p","max":4,"timeout":"1s"}')
expect_eq "jobs fetched for the batch" "$(jq '.jobs | length' <<<"$r")" 4
jid() { jq -r ".jobs[$1].id" <<<"$r"; }
jlease() { jq -r ".jobs[$1].lease" <<<"$r"; }
ida=$(jid 0) la=$(jlease 0) idb=$(jid 1) lb=$(jlease 1) idc=$(jid 2) lc=$(jlease 2) idd=$(jid 3) ld=$(jlease 3)
r1=$(raw "{\"op\":\"ack\",\"id\":$ida,\"lease\":\"$la\"}")
expect_eq "single ack before the batch" "$(jq -r .job.state <<<"$r1")" succeeded
req=$(jq -nc --argjson a "$ida" --arg la "$la" --argjson b "$idb" --arg lb "$lb" \
    --argjson c "$idc" --arg lc "$lc" --argjson d "$idd" \
    '{op: "ack", jobs: [{id: $b, lease: $lb, result: "rb"}, {id: $a, lease: $la},
      {id: $d, lease: "0123456789abcdef0123456789abcdef"}, {id: 999999, lease: "x"},
      {id: $c, lease: $lc}]}')
r=$(raw "$req")
jq -e --argjson b "$idb" --argjson a "$ida" --argjson c "$idc" --argjson d "$idd" '.ok and
    (.results | length) == 5 and
    .results[0].id == $b and .results[0].ok and .results[0].state == "succeeded" and
    .results[1].id == $a and (.results[1].ok | not) and .results[1].error.code == "lease_expired" and
    .results[2].id == $d and .results[2].error.code == "lease_expired" and
    .results[3].id == 999999 and .results[3].error.code == "not_found" and
    .results[4].id == $c and .results[4].ok and .results[4].state == "succeeded"' \
    <<<"$r" >/dev/null || fail "ack of many jobs with mixed leases: $r"
expect_eq "result of a job acked in a batch" "$(cli --json get "$idb" | jq -r .job.result)" rb
expect_eq "state of the other job acked in the batch" "$(cli --json get "$idc" | jq -r .job.state)" succeeded
expect_eq "state of the job whose wrong lease was refused" "$(cli --json get "$idd" | jq -r .job.state)" running
r=$(raw "{\"op\":\"fail\",\"jobs\":[{\"id\":$idd,\"lease\":\"$ld\",\"error\":\"bad d\",\"retry\":false}]}")
jq -e '.ok and .results[0].ok and .results[0].state == "dead"' \
    <<<"$r" >/dev/null || fail "fail of many jobs: $r"
expect_eq "state of the job failed in a batch" "$(cli --json get "$idd" | jq -r .job.state)" dead
expect_eq "error of the job failed in a batch" "$(cli --json get "$idd" | jq -r .job.error)" "bad d"
# With a fetch: the outcomes and the claim share a commit; the reply has results and jobs.
for i in 21 22; do cli submit p "{\"n\":$i}" >/dev/null; done
r=$(raw '{"op":"fetch","queue":"p","timeout":"1s"}')
ide=$(jid 0) le=$(jlease 0)
r=$(raw "{\"op\":\"ack\",\"jobs\":[{\"id\":$ide,\"lease\":\"$le\"},{\"id\":$ida,\"lease\":\"$la\"}],\"fetch\":{\"queue\":\"p\",\"max\":5,\"timeout\":\"1s\"}}")
jq -e --argjson e "$ide" '.ok and .results[0].id == $e and .results[0].ok and
    .results[1].error.code == "lease_expired" and (.jobs | length) == 1 and .jobs[0].payload.n == 22' \
    <<<"$r" >/dev/null || fail "ack of many jobs with a fetch: $r"
idf=$(jid 0) lf=$(jlease 0)
r=$(raw "{\"op\":\"fail\",\"jobs\":[{\"id\":$idf,\"lease\":\"$lf\",\"error\":\"later\"}],\"fetch\":{\"queue\":\"a\",\"timeout\":\"100ms\"}}")
jq -e '.ok and .results[0].ok and .results[0].state == "retrying" and .jobs == []' \
    <<<"$r" >/dev/null || fail "fail of many jobs with a fetch that finds nothing: $r"
# The request's shape is checked whole before anything is recorded.
big=$(jq -nc '{op: "ack", jobs: [range(1001) | {id: (. + 1), lease: "x"}]}')
expect_eq "ack of 1,001 jobs" "$(raw "$big" | jq -r .error.code)" too_large
expect_eq "ack with both id and jobs" \
    "$(raw "{\"op\":\"ack\",\"id\":$idf,\"lease\":\"$lf\",\"jobs\":[{\"id\":$idf,\"lease\":\"$lf\"}]}" | jq -r .error.code)" \
    invalid_argument
expect_eq "ack of a job without its lease" \
    "$(raw "{\"op\":\"ack\",\"jobs\":[{\"id\":$idf}]}" | jq -r .error.code)" invalid_argument
expect_eq "ack with an empty jobs" "$(raw '{"op":"ack","jobs":[]}' | jq -r .error.code)" invalid_argument
ok "ack and fail of many jobs: one result per job, a bad or missing lease fails alone, with or without a fetch"

# ---- (a) 4 workers, 2 queues, N jobs: every job runs exactly once ----
cat >"$T/record.sh" <<'SH'
#!/bin/sh
echo "$JOBQ_JOB_ID" >>"$OUT"
SH
chmod +x "$T/record.sh"
for i in 1 2 3 4; do
    # Two workers try a before b, two b before a.
    if [ $((i % 2)) = 1 ]; then qs="a b"; else qs="b a"; fi
    # shellcheck disable=SC2086
    OUT="$T/ids.$i" "$JOBQ" --url "$SOCK" work $qs --concurrency 8 -- "$T/record.sh" \
        2>"$T/worker.$i.log" &
    WORKER_PIDS+=($!)
done
seq 1 $((N / 2)) >"$T/payloads.a"
seq $((N / 2 + 1)) "$N" >"$T/payloads.b"
t0=$(date +%s%3N)
cli submit a --batch "$T/payloads.a" >"$T/submitted.a" &
pa=$!
cli submit b --batch "$T/payloads.b" >"$T/submitted.b" &
pb=$!
wait "$pa" || fail "submit --batch to a failed"
wait "$pb" || fail "submit --batch to b failed"
t_submit=$(($(date +%s%3N) - t0))
succeeded() { cli --json stats | jq '[.queues.a.succeeded, .queues.b.succeeded] | add'; }
deadline=$((SECONDS + 600))
while [ "$(succeeded)" -lt "$N" ]; do
    [ $SECONDS -lt $deadline ] || fail "after 600 s only $(succeeded) of $N jobs succeeded"
    for p in "${WORKER_PIDS[@]}"; do
        alive "$p" || fail "worker $p died: $(tail -n 3 "$T"/worker.*.log)"
    done
    sleep 0.2
done
t_all=$(($(date +%s%3N) - t0))
for p in "${WORKER_PIDS[@]}"; do
    kill -TERM "$p"
done
for p in "${WORKER_PIDS[@]}"; do
    rc=0
    wait "$p" || rc=$?
    expect_eq "jobq work exit status after SIGTERM" "$rc" 0
done
WORKER_PIDS=()
grep -q "^submitted $((N / 2)) jobs to queue \"a\"" "$T/submitted.a" || fail "submit: $(cat "$T/submitted.a")"
grep -q "^submitted $((N - N / 2)) jobs to queue \"b\"" "$T/submitted.b" || fail "submit: $(cat "$T/submitted.b")"
cat "$T"/ids.* | sort -n >"$T/ran"
expect_eq "jobs run (lines across the 4 files)" "$(wc -l <"$T/ran")" "$N"
expect_eq "jobs run twice" "$(uniq -d "$T/ran" | wc -l)" 0
seq 10 $((N + 9)) >"$T/want" # a fresh database: after the 9 jobs of p come the N of a and b
cmp -s "$T/want" "$T/ran" || fail "the ids run are not the ids submitted"
s=$(cli --json stats)
expect_eq "succeeded in stats" "$(jq '[.queues.a.succeeded, .queues.b.succeeded] | add' <<<"$s")" "$N"
expect_eq "dead or retrying in stats" \
    "$(jq '[.queues.a.dead, .queues.b.dead, .queues.a.retrying, .queues.b.retrying] | add' <<<"$s")" 0
per_worker=$(for i in 1 2 3 4; do wc -l <"$T/ids.$i"; done | tr '\n' ' ')
grep -q "queue a: succeeded in" "$T/worker.1.log" || fail "no per-job line in the worker's log"
ok "4 jobq work x 8 drained $N jobs on 2 queues, each exactly once (per worker: $per_worker)"
echo "# drain: submit ${t_submit} ms, all done ${t_all} ms, $((N * 1000 / (t_all > 0 ? t_all : 1))) jobs/s with a process per job"

# ---- (b) a worker killed mid-job: the lease expires and another worker finishes it ----
mkfifo "$T/gate"
# The handler becomes the reader of the fifo (exec): killing the pid it notes ends it, where a
# child cat would outlive the test.
cat >"$T/block.sh" <<SH
#!/bin/sh
echo \$\$ >"$T/blocked.pid"
exec cat "$T/gate" >/dev/null
SH
cat >"$T/ok.sh" <<'SH'
#!/bin/sh
cat >/dev/null
echo "done by $WHO"
SH
chmod +x "$T/block.sh" "$T/ok.sh"
id=$(cli submit l '{"step":"b"}')
WHO=w1 "$JOBQ" --url "$SOCK" work l -- "$T/block.sh" 2>"$T/w1.log" &
w1=$!
WORKER_PIDS+=("$w1")
poll_until "the handler of worker 1 started" '[ -s "$T/blocked.pid" ]'
expect_eq "state while worker 1 runs it" "$(cli --json get "$id" | jq -r .job.state)" running
exec 3>&2 2>/dev/null # no "Killed" notice from bash
kill -9 "$w1"
wait "$w1" || true
exec 2>&3 3>&-
t_kill=$(date +%s%3N)
WHO=w2 "$JOBQ" --url "$SOCK" work l -- "$T/ok.sh" 2>"$T/w2.log" &
WORKER_PIDS+=($!)
r=$(raw "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"30s\"}")
expect_eq "job after worker 1 was killed" "$(jq -r '.jobs[0].state' <<<"$r")" succeeded
expect_eq "its result" "$(jq -r '.jobs[0].result' <<<"$r")" "done by w2"
kinds=$(cli --json get "$id" | jq -c '[.job.attempts[].kind]')
expect_eq "attempt kinds" "$kinds" '["lease","success"]'
ok "kill -9 of a worker mid-job: retaken $(($(date +%s%3N) - t_kill)) ms later and finished by another worker (attempts $kinds)"
kill -9 "$(cat "$T/blocked.pid")" 2>/dev/null || true
kill -TERM "${WORKER_PIDS[-1]}"
wait "${WORKER_PIDS[-1]}" || fail "worker 2 did not exit 0 after SIGTERM"
WORKER_PIDS=()

# ---- (b2) kill -9 of a worker in the middle of a run: outcomes it had not sent yet and jobs
# it held come back after their lease; every job ends succeeded ----
cat >"$T/append.sh" <<'SH'
#!/bin/sh
echo "$JOBQ_JOB_ID" >>"$OUT"
SH
chmod +x "$T/append.sh"
seq 1 300 >"$T/payloads.l"
cli submit l --batch "$T/payloads.l" >/dev/null
OUT="$T/ran.l" "$JOBQ" --url "$SOCK" work l --concurrency 4 -- "$T/append.sh" 2>"$T/wk1.log" &
wk1=$!
WORKER_PIDS+=("$wk1")
poll_until "worker 1 ran 100 jobs" '[ "$(wc -l <"$T/ran.l" 2>/dev/null || echo 0)" -ge 100 ]'
exec 3>&2 2>/dev/null
kill -9 "$wk1"
wait "$wk1" || true
exec 2>&3 3>&-
OUT="$T/ran.l" "$JOBQ" --url "$SOCK" work l --concurrency 4 -- "$T/append.sh" 2>"$T/wk2.log" &
WORKER_PIDS+=($!)
poll_until "all 300 jobs of l succeeded" \
    '[ "$(cli --json stats | jq ".queues.l.succeeded")" -ge 301 ]'
kill -TERM "${WORKER_PIDS[-1]}"
wait "${WORKER_PIDS[-1]}" || fail "worker 2 did not exit 0 after SIGTERM"
WORKER_PIDS=()
s=$(cli --json stats)
expect_eq "l: succeeded (the job of (b) included)" "$(jq .queues.l.succeeded <<<"$s")" 301
expect_eq "l: dead, retrying, ready or running" \
    "$(jq '.queues.l | .dead + .retrying + .ready + .running' <<<"$s")" 0
missing=$(sort -un "$T/ran.l" | wc -l)
expect_eq "distinct jobs of l that ran" "$missing" 300
ok "kill -9 of a worker mid-run (concurrency 4): no job lost, $(($(wc -l <"$T/ran.l") - 300)) ran again after their lease"

# ---- (c) a late ack with the old lease is refused once the job was retaken ----
id=$(cli submit l '{"step":"c"}')
r=$(raw '{"op":"fetch","queue":"l","timeout":"5s"}')
expect_eq "fetched job" "$(jq -r '.jobs[0].id' <<<"$r")" "$id"
old=$(jq -r '.jobs[0].lease' <<<"$r")
# No heartbeat: after the 2 s lease the job goes back (retrying, then ready) and is retaken.
new=
deadline=$((SECONDS + 30))
while [ -z "$new" ]; do
    [ $SECONDS -lt $deadline ] || fail "the job was not handed out again after its lease"
    r=$(raw '{"op":"fetch","queue":"l","timeout":"1s"}')
    new=$(jq -r '.jobs[0].lease // empty' <<<"$r")
done
[ "$new" != "$old" ] || fail "the retaken job has the same lease token"
r=$(raw "{\"op\":\"ack\",\"id\":$id,\"lease\":\"$old\",\"result\":\"late\"}")
expect_eq "late ack with the old lease" "$(jq -r '.error.code' <<<"$r")" lease_expired
r=$(raw "{\"op\":\"heartbeat\",\"id\":$id,\"lease\":\"$old\"}")
expect_eq "heartbeat with the old lease" "$(jq -r '.error.code' <<<"$r")" lease_expired
r=$(raw "{\"op\":\"ack\",\"id\":$id,\"lease\":\"$new\",\"result\":\"on time\"}")
expect_eq "ack with the new lease" "$(jq -r '.job.state' <<<"$r")" succeeded
expect_eq "result kept" "$(cli --json get "$id" | jq -r .job.result)" "on time"
ok "an ack quoting an expired lease is refused with lease_expired; the current holder's counts"

# ---- end-to-end jobs/s of no-op library workers ----
if [ -x "$WBENCH" ]; then
    line=$("$WBENCH" --url "$SOCK" --queue a --queue b --jobs "$N" --workers 4 --concurrency 8 \
        --producers 2) || fail "jobq-worker-bench failed"
    # jobq_worker_run returns only once its completers sent every outcome: all are recorded.
    expect_eq "jobs of a and b succeeded once the library workers returned" "$(succeeded)" $((2 * N))
    expect_eq "handler calls of the library workers" "$(sed -n 's/.* handled=\([0-9]*\).*/\1/p' <<<"$line")" "$N"
    ok "no-op jobq_worker_run workers: $line"
else
    echo "# $WBENCH not built: no library throughput figure"
fi
stop_jobqd

# ---- (d) tls+tcp:// with auth_token ----
cd "$T"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
    -subj "/CN=jobq test CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,DNS:127.0.0.1,IP:127.0.0.1\n' >srv.ext
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 \
    -extfile srv.ext 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 \
    -subj "/CN=another CA" 2>/dev/null
cd - >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TLS="tls+tcp://127.0.0.1:$PORT"
cat >"$T/jobq.conf" <<EOF
[server]
listen = $SOCK, $TLS
database = $T/jobq.db
http =
log_level = info
auth_token = s3cret-token-0123456789
tls_cert = $T/srv.pem
tls_key = $T/srv.key
$(user_line)
[queue.t]
EOF
start_jobqd
r=$(raw '{"op":"ping"}')
expect_eq "ping without the token" "$(jq -r '.error.code' <<<"$r")" unauthorized
r=$(raw '{"op":"fetch","queue":"t","timeout":"100ms","token":"wrong"}')
expect_eq "fetch with a wrong token" "$(jq -r '.error.code' <<<"$r")" unauthorized
rc=0
out=$("$JOBQ" --url "$TLS" --tls-ca "$T/ca.pem" ping 2>&1) || rc=$?
expect_eq "jobq ping over TLS without the token: exit status" "$rc" 1
grep -qi "token\|unauthori" <<<"$out" || fail "no word of the token in: $out"
rc=0
out=$("$JOBQ" --url "$TLS" --token s3cret-token-0123456789 ping 2>&1) || rc=$?
expect_eq "TLS URL without a CA: exit status" "$rc" 2
rc=0
out=$("$JOBQ" --url "$TLS" --tls-ca "$T/other.pem" --token s3cret-token-0123456789 ping 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "a daemon certificate signed by another CA was accepted"
rc=0
"$JOBQ" --url "$TLS" --tls-ca "$T/ca.pem" work t -- "$T/ok.sh" 2>"$T/w-notoken.log" || rc=$?
expect_eq "jobq work without the token: exit status" "$rc" 1
export JOBQ_TOKEN=s3cret-token-0123456789 JOBQ_TLS_CA="$T/ca.pem"
WHO=tls "$JOBQ" --url "$TLS" work t -- "$T/ok.sh" 2>"$T/w-tls.log" &
WORKER_PIDS+=($!)
id=$("$JOBQ" --url "$TLS" submit t '{"over":"tls"}')
r=$("$JOBQ" --url "$TLS" --json wait "$id" --timeout 30s)
expect_eq "job done by the TLS worker" "$(jq -r '.jobs[0].result' <<<"$r")" "done by tls"
kill -TERM "${WORKER_PIDS[-1]}"
wait "${WORKER_PIDS[-1]}" || fail "the TLS worker did not exit 0 after SIGTERM"
WORKER_PIDS=()
unset JOBQ_TOKEN JOBQ_TLS_CA
ok "a worker over tls+tcp:// with the token runs jobs; no token, a wrong token or a wrong CA is refused"
stop_jobqd
