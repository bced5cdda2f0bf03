#!/usr/bin/env bash
# it_dashboard.sh: the dashboard you can act from, in headless Chromium with real clicks:
# tests/dashboard/drive.js (puppeteer-core, pinned by tests/dashboard/package-lock.json and
# installed with npm ci into the build directory) drives Debian's chromium against a real
# jobqd with auth_token and read_token: the job list's filters and paging, search by id and
# key, a job page, retry, run now, cancel, a bulk cancel by filter with its preview (when
# jobqd has the mutate op), the counts beside `jobq stats`, the read token without actions.
. "$(dirname "$0")/lib.sh"
: "${JOBQ_SRC:?JOBQ_SRC must name the source tree}"
for tool in curl jq chromium node npm; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (make test-deps installs chromium, nodejs and npm)"
done

# ---- puppeteer-core, as the lock file pins it ----
BUILD_DIR=${JOBQ_BUILD:-$(cd "${JOBQ_ARTIFACTS:?}/.." && pwd)}
NODE_DIR="$BUILD_DIR/dashboard-test" # npm ci puts node_modules here (a build dir)
LOCK="$JOBQ_SRC/tests/dashboard/package-lock.json"
if ! [ -f "$NODE_DIR/node_modules/puppeteer-core/package.json" ] || ! cmp -s "$LOCK" "$NODE_DIR/package-lock.json"; then
    rm -rf "$NODE_DIR"
    mkdir -p "$NODE_DIR"
    cp "$JOBQ_SRC/tests/dashboard/package.json" "$LOCK" "$NODE_DIR/"
    (cd "$NODE_DIR" && timeout 600 npm ci --no-audit --no-fund --loglevel=error >npm.log 2>&1) ||
        fail "npm ci of tests/dashboard failed: $(tail -n 5 "$NODE_DIR/npm.log")"
fi

# ---- jobqd: a queue whose odd jobs fail their first attempt, and one nothing runs ----
ADMIN=admin-token-0123456789abcdef
READER=reader-token-0123456789abcdef
mkdir -p "$T/marks"
cat >"$T/work.sh" <<SH
#!/bin/sh
# Jobs whose payload says "fail" fail their first attempt (dead at once: max_attempts = 1);
# retried, they succeed.
payload=\$(cat)
if [ "\${payload#*'"fail":true'}" != "\$payload" ] && ! [ -e "$T/marks/\$JOBQ_JOB_ID" ]; then
    : >"$T/marks/\$JOBQ_JOB_ID"
    echo "downstream refused job \$JOBQ_JOB_ID" >&2
    exit 1
fi
[ -z "\${JOBQ_CONTROL_FD:-}" ] || echo "log order done on attempt \$JOBQ_ATTEMPT" >&"\$JOBQ_CONTROL_FD"
echo "done \$JOBQ_JOB_ID"
SH
chmod +x "$T/work.sh"
SERVER_EXTRA="http = 127.0.0.1:0
auth_token = $ADMIN
read_token = $READER" write_config "[queue.work]
command = $T/work.sh
concurrency = 4
max_attempts = 1
breaker_failures = 1000000
[queue.idle]"
start_jobqd
port=$(grep -o 'event=http_listen addr=127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*://')
[ -n "$port" ] || fail "no event=http_listen line in $LOG"
HTTP="http://127.0.0.1:$port"
api() {
    curl -sS --max-time 60 -X POST -H "Authorization: Bearer $ADMIN" --data-binary "$1" "$HTTP/v1/ops"
}

# 60 jobs of work with keys order-N (the odd ones end dead), a scheduled one, and jobs of idle
# to cancel one by one (keep-N) and in bulk (bulk-N).
batch=$(jq -nc '{op: "submit_batch", queue: "work",
    jobs: [range(1; 61) | {payload: {order: ., fail: (. % 2 == 1)}, key: "order-\(.)"}]}')
work=$(api "$batch" | jq -c .ids)
[ "$(jq length <<<"$work")" = 60 ] || fail "submit_batch to work: $work"
expect_eq "the work jobs ended" "$(api "{\"op\":\"wait\",\"ids\":$work,\"timeout\":\"60s\"}" | jq -r .done)" true
dead=$(api '{"op":"list","queue":"work","state":"dead","limit":1000}' | jq -c '[.jobs[].id]')
expect_eq "dead jobs of work" "$(jq length <<<"$dead")" 30
one=$(jq '.[3]' <<<"$dead")
payload=$(api "{\"op\":\"get\",\"id\":$one}" | jq -c .job.payload)
scheduled=$(api '{"op":"submit","queue":"work","payload":{"order":"later"},"key":"later-1","delay":"1h"}' | jq .id)
keep=$(api '{"op":"submit_batch","queue":"idle","jobs":[{"key":"keep-1"},{"key":"keep-2"},{"key":"keep-3"}]}' | jq -c .ids)
bulk=$(api '{"op":"submit_batch","queue":"idle","jobs":[{"key":"bulk-1"},{"key":"bulk-2"},{"key":"bulk-3"},{"key":"bulk-4"},{"key":"bulk-5"},{"key":"bulk-6"}]}' | jq -c .ids)
jq -n --argjson work "$work" --argjson dead "$one" --argjson payload "$payload" \
    --argjson scheduled "$scheduled" --argjson keep "$keep" --argjson bulk "$bulk" \
    '{work: $work, dead: $dead, deadPayload: $payload, scheduled: $scheduled, keep: $keep, bulk: $bulk}' >"$T/seed.json"
ok "jobqd with 60 jobs of work (30 dead), a scheduled one and 9 ready jobs of idle"

# ---- the browser ----
# A tree whose op table has mutate must show the bulk actions: the page's probe may not
# mistake this jobqd for an older one (drive.js takes the "needs a newer jobqd" path only
# for a jobqd built without it).
EXPECT_MUTATE=0
! grep -q 'X(MUTATE, mutate' "$JOBQ_SRC/proto/ops.h" || EXPECT_MUTATE=1
ART="${JOBQ_ARTIFACTS:-$T}"
mkdir -p "$ART"
t0=$SECONDS
rc=0
JOBQ_HTTP="$HTTP" JOBQ_ADMIN="$ADMIN" JOBQ_READER="$READER" JOBQ_SEED="$T/seed.json" \
    JOBQ_CLI="$(jq -nc --arg j "$JOBQ" --arg u "$SOCK" --arg t "$ADMIN" '[$j, "--url", $u, "--token", $t, "--json"]')" \
    JOBQ_EXPECT_MUTATE=$EXPECT_MUTATE CHROMIUM="$(command -v chromium)" JOBQ_SHOTS="$ART" JOBQ_DOCS_SHOT="${JOBQ_DOCS_SHOT:-}" \
    NODE_PATH="$NODE_DIR/node_modules" \
    timeout 300 node "$JOBQ_SRC/tests/dashboard/drive.js" >"$T/drive.out" 2>&1 || rc=$?
cat "$T/drive.out"
[ "$rc" = 0 ] || fail "drive.js exited $rc"
echo "screenshots:" "$ART"/dashboard-*.png
if grep -q '^SKIP-BULK' "$T/drive.out"; then
    ok "the browser part passed in $((SECONDS - t0)) s; bulk actions need a newer jobqd (no mutate op here)"
else
    ok "the browser part passed in $((SECONDS - t0)) s, bulk actions included"
fi
stop_jobqd
