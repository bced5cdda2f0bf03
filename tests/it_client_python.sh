#!/usr/bin/env bash
# it_client_python.sh: the Python client (clients/python/jobq.py) against a real jobqd over
# ipc:// and tcp://: every producer op, error codes, a held wait, a Worker of concurrency 4
# draining 200 jobs with retries, heartbeats past a lease, a worker killed mid-job; then jobqd
# again with auth_token, where a wrong or missing token is unauthorized. The checks are in
# clients/python/test_jobq.py.
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null || fail "python3 is not installed (Debian: python3)"
: "${JOBQ_SRC:?JOBQ_SRC must name the source tree}"
TESTPY="$JOBQ_SRC/clients/python/test_jobq.py"
# No __pycache__ in the source tree.
export PYTHONDONTWRITEBYTECODE=1

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
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
timeout 300 python3 "$TESTPY" main || fail "test_jobq.py main failed"
ok "test_jobq.py main in $(($(date +%s%3N) - t0)) ms"

# A Client and a Worker across a restart of jobqd: the program says when to restart and is
# told when jobqd is back; then it must go on without help.
t0=$(date +%s%3N)
coproc RECONNECT { timeout 120 python3 "$TESTPY" reconnect; }
RC_PID=$RECONNECT_PID
CLEANUP_PIDS+=("$RC_PID")
exec {rc_out}<&"${RECONNECT[0]}" {rc_in}>&"${RECONNECT[1]}"
read -r -t 30 line <&"$rc_out" || fail "no word from test_jobq.py reconnect"
expect_eq "what test_jobq.py reconnect asks" "$line" "restart me"
stop_jobqd
start_jobqd
echo back >&"$rc_in"
while read -r -t 60 line <&"$rc_out"; do echo "$line"; done
wait "$RC_PID" || fail "test_jobq.py reconnect failed"
ok "test_jobq.py reconnect in $(($(date +%s%3N) - t0)) ms"
stop_jobqd

TOKEN=$(od -An -N12 -tx1 /dev/urandom | tr -d " \n") # at least 16 characters
SERVER_EXTRA="auth_token = $TOKEN" write_config "$QUEUES"
start_jobqd
t0=$(date +%s%3N)
JOBQ_TEST_TOKEN=$TOKEN timeout 60 python3 "$TESTPY" auth || fail "test_jobq.py auth failed"
ok "test_jobq.py auth in $(($(date +%s%3N) - t0)) ms"
stop_jobqd
