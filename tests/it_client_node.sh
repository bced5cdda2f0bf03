#!/usr/bin/env bash
# it_client_node.sh: the Node client (clients/node/jobq.js) against a real jobqd over
# ipc:// and tcp://: every producer op, error codes, pipelining (a held wait and 300 requests
# in flight on one connection), a Worker of concurrency 4 draining 200 jobs with retries,
# heartbeats past a lease, a worker killed mid-job; then jobqd
# again with auth_token, where a wrong or missing token is unauthorized. The checks are in
# clients/node/test_jobq.js.
. "$(dirname "$0")/lib.sh"

command -v node >/dev/null || fail "node is not installed (Debian: nodejs)"
: "${JOBQ_SRC:?JOBQ_SRC must name the source tree}"
TESTJS="$JOBQ_SRC/clients/node/test_jobq.js"

PORT=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
export JOBQ_TCP_URL="tcp://127.0.0.1:$PORT"
# Remote-worker queues (no command) retry after 10..50 ms; lease: a lease of 2 s.
QUEUES="[queue.echo]
command = /bin/cat
[queue.work]
[queue.drain]
backoff_base = 10ms
backoff_max = 50ms
[queue.lease]
lease = 2s
backoff_base = 10ms
backoff_max = 50ms"
write_config "$QUEUES"
sed -i "s|^listen = .*|listen = $SOCK, $JOBQ_TCP_URL|" "$T/jobq.conf"
start_jobqd

t0=$(date +%s%3N)
timeout 300 node "$TESTJS" main || fail "test_jobq.js main failed"
ok "test_jobq.js main in $(($(date +%s%3N) - t0)) ms"

# A Client and a Worker across a restart of jobqd: the program says when to restart and is
# told when jobqd is back; then it must go on without help.
t0=$(date +%s%3N)
coproc RECONNECT { timeout 120 node "$TESTJS" reconnect; }
RC_PID=$RECONNECT_PID
CLEANUP_PIDS+=("$RC_PID")
exec {rc_out}<&"${RECONNECT[0]}" {rc_in}>&"${RECONNECT[1]}"
read -r -t 30 line <&"$rc_out" || fail "no word from test_jobq.js reconnect"
expect_eq "what test_jobq.js reconnect asks" "$line" "restart me"
stop_jobqd
start_jobqd
echo back >&"$rc_in"
while read -r -t 60 line <&"$rc_out"; do echo "$line"; done
wait "$RC_PID" || fail "test_jobq.js reconnect failed"
ok "test_jobq.js reconnect in $(($(date +%s%3N) - t0)) ms"
stop_jobqd

TOKEN=$(od -An -N12 -tx1 /dev/urandom | tr -d " \n") # at least 16 characters
SERVER_EXTRA="auth_token = $TOKEN" write_config "$QUEUES"
start_jobqd
t0=$(date +%s%3N)
JOBQ_TEST_TOKEN=$TOKEN timeout 60 node "$TESTJS" auth || fail "test_jobq.js auth failed"
ok "test_jobq.js auth in $(($(date +%s%3N) - t0)) ms"
stop_jobqd
