#!/usr/bin/env bash
# it_client_node.sh: the Node client (clients/node/jobq.js) against a real jobqd over
# ipc:// and tcp://: every producer op, error codes, pipelining (a held wait and 300 requests
# in flight on one connection), a Worker of concurrency 4 draining 200 jobs with retries,
# heartbeats past a lease, a worker killed mid-job; then jobqd
# again with auth_token, where a wrong or missing token is unauthorized. The checks are in
# clients/node/test_jobq.js.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/client_lib.sh"

command -v node >/dev/null || fail "node is not installed (Debian: nodejs)"
: "${JOBQ_SRC:?JOBQ_SRC must name the source tree}"
TESTJS="$JOBQ_SRC/clients/node/test_jobq.js"

PORT=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
export JOBQ_TCP_URL="tcp://127.0.0.1:$PORT"
client_tests test_jobq.js node "$TESTJS"
