#!/usr/bin/env bash
# it_client_python.sh: the Python client (clients/python/jobq.py) against a real jobqd over
# ipc:// and tcp://: every producer op, error codes, a held wait, a Worker of concurrency 4
# draining 200 jobs with retries, heartbeats past a lease, a worker killed mid-job; then jobqd
# again with auth_token, where a wrong or missing token is unauthorized. The checks are in
# clients/python/test_jobq.py.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/client_lib.sh"

command -v python3 >/dev/null || fail "python3 is not installed (Debian: python3)"
: "${JOBQ_SRC:?JOBQ_SRC must name the source tree}"
TESTPY="$JOBQ_SRC/clients/python/test_jobq.py"
# No __pycache__ in the source tree.
export PYTHONDONTWRITEBYTECODE=1

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export JOBQ_TCP_URL="tcp://127.0.0.1:$PORT"
client_tests test_jobq.py python3 "$TESTPY"
