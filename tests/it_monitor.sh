#!/usr/bin/env bash
# it_monitor.sh: the HTTP monitor endpoint: /metrics passes promtool while jobs run and its
# counters agree with the database after a run with failures; /healthz is 200, then 503 once
# the store's disk is full; the dashboard renders in headless Chromium with the numbers of
# /stats; jobq top draws the queues on a pseudo-terminal and quits on q (and on SIGTERM).
. "$(dirname "$0")/lib.sh"

for tool in curl promtool chromium script sqlite3 jq; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (Debian: curl, prometheus, chromium, bsdutils, sqlite3, jq)"
done

SMALL="$T/small"
monitor_cleanup() {
    local rc=$?
    trap - ERR
    set +e # a failed command here must not skip cleanup (which kills jobqd)
    if [ -n "${TOP_PID:-}" ] && kill -0 "$TOP_PID" 2>/dev/null; then
        kill $(pgrep -P "$TOP_PID") "$TOP_PID" 2>/dev/null
    fi
    if mountpoint -q "$SMALL" 2>/dev/null; then
        if [ -n "$JOBQD_PID" ] && kill -0 "$JOBQD_PID" 2>/dev/null; then
            kill -9 "$JOBQD_PID" 2>/dev/null || true
            wait "$JOBQD_PID" 2>/dev/null || true
        fi
        umount "$SMALL" 2>/dev/null || umount -l "$SMALL" || true
    fi
    (exit $rc)
    cleanup
}
trap monitor_cleanup EXIT

# flaky.sh: odd job ids always fail (dead after max_attempts = 2), even ones succeed.
cat >"$T/flaky.sh" <<'SH'
#!/bin/sh
[ $((JOBQ_JOB_ID % 2)) -eq 0 ] && exit 0
echo "flaky: downstream refused job $JOBQ_JOB_ID attempt $JOBQ_ATTEMPT" >&2
exit 1
SH
chmod +x "$T/flaky.sh"
QUEUES="[queue.fast]
command = /bin/true
concurrency = 8
[queue.flaky]
command = $T/flaky.sh
concurrency = 4
max_attempts = 2
backoff_base = 10ms
backoff_max = 20ms
breaker_failures = 1000000
[queue.idle]"
SERVER_EXTRA='http = 127.0.0.1:0' write_config "$QUEUES"
start_jobqd

# http_port: the port of the last start, from its event=http_listen line.
http_port() {
    local p
    p=$(grep -o 'event=http_listen addr=127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*://')
    [ -n "$p" ] || fail "no event=http_listen line in $LOG"
    echo "$p"
}
HTTP="http://127.0.0.1:$(http_port)"
get() { curl -sS --max-time 10 "$HTTP$1"; }
# metric TEXT NAME{LABELS}: the value of one sample of a /metrics text (empty if absent).
metric() { awk -v k="$2" '$1 == k { print $2; exit }' <<<"$1"; }

# batch_file FILE QUEUE N: a submit_batch request of N small jobs.
batch_file() {
    awk -v q="$2" -v n="$3" 'BEGIN {
        printf "{\"op\":\"submit_batch\",\"queue\":\"%s\",\"jobs\":[", q
        for (i = 1; i <= n; i++) printf "%s{\"payload\":{\"i\":%d}}", (i > 1 ? "," : ""), i
        printf "]}"
    }' >"$1"
}

# (a) /metrics passes promtool while jobs run.
ids=()
for q in fast fast flaky; do
    batch_file "$T/batch.json" "$q" 1000
    r=$(raw_file "$T/batch.json")
    expect_eq "submit_batch to $q" "$(jq -r .ok <<<"$r")" true
    ids+=("$(jq -c .ids <<<"$r")")
done
checked=0 busy=0
while :; do
    m=$(get /metrics)
    promtool check metrics <<<"$m" >"$T/promtool.out" 2>&1 || {
        cat "$T/promtool.out" >&2
        fail "promtool check metrics failed on a scrape taken while jobs ran"
    }
    checked=$((checked + 1))
    running=$(metric "$m" 'jobq_jobs{queue="fast",state="running"}')
    ready=$(metric "$m" 'jobq_jobs{queue="fast",state="ready"}')
    [ -n "$running" ] && [ -n "$ready" ] || fail "jobq_jobs{queue=\"fast\"} is missing from /metrics"
    [ "$running" -gt 0 ] && busy=$((busy + 1))
    [ "$ready" -gt 0 ] || [ "$running" -gt 0 ] || break
done
[ "$busy" -gt 0 ] || fail "no scrape saw a running job (the run ended before the first scrape?)"
for want in jobq_jobs_submitted_total jobq_jobs_started_total jobq_jobs_completed_total \
    jobq_jobs_failed_total jobq_jobs_retried_total jobq_job_wait_seconds_bucket \
    jobq_job_run_seconds_bucket jobq_breaker_state jobq_breaker_transitions_total \
    jobq_queue_paused jobq_store_commit_seconds_bucket jobq_store_batch_ops_bucket \
    jobq_event_loop_lag_seconds_bucket jobq_connected_clients jobq_build_info \
    process_cpu_seconds_total process_resident_memory_bytes process_virtual_memory_bytes \
    process_open_fds process_max_fds process_start_time_seconds \
    jobq_queue_oldest_ready_seconds jobq_queue_oldest_overdue_seconds jobq_store_write_failing; do
    grep -q "^$want[{ ]" <<<"$m" || fail "/metrics has no $want"
done
ok "/metrics passes promtool check metrics on $checked scrapes, $busy of them with jobs running"

# The age of a queue's oldest waiting job: a ready job of queue idle (nothing runs it) ages.
old=$(raw '{"op":"submit","queue":"idle","payload":"old","priority":-5}' | jq .id)
raw '{"op":"submit","queue":"idle","payload":"new","priority":5}' >/dev/null
poll_until "the oldest ready job of queue idle is 2 s old in /metrics" \
    '[ "$(metric "$(get /metrics)" "jobq_queue_oldest_ready_seconds{queue=\"idle\"}")" -ge 2 ]'
age=$(raw '{"op":"stats","queues":["idle"],"series":true}' | jq .queues.idle.oldest_ready_s)
[ "$age" -ge 2 ] || fail "stats' oldest_ready_s of queue idle: $age"
raw "{\"op\":\"cancel\",\"id\":$old}" >/dev/null
# The alert rules and their tests, and the scrape config that loads them.
promtool check rules "$JOBQ_SRC/deploy/jobq-alerts.yml" >"$T/promtool.out" 2>&1 ||
    fail "promtool check rules: $(cat "$T/promtool.out")"
promtool test rules "$JOBQ_SRC/deploy/jobq-alerts.test.yml" >"$T/promtool.out" 2>&1 ||
    fail "promtool test rules: $(cat "$T/promtool.out")"
promtool check config "$JOBQ_SRC/deploy/prometheus.yml" >"$T/promtool.out" 2>&1 ||
    fail "promtool check config: $(cat "$T/promtool.out")"
ok "the oldest ready job's age ($age s, behind a higher priority) in /metrics and stats; the alert rules pass promtool's tests"

# Every job ends (the wait op is the event); 1,000 ids per wait.
for list in "${ids[@]}"; do
    until [ "$(raw "{\"op\":\"wait\",\"ids\":$list,\"timeout\":\"8s\"}" | jq -r .done)" = true ]; do
        [ $SECONDS -lt 240 ] || fail "the jobs did not finish"
    done
done

# (b) the counters agree with the database.
m=$(get /metrics)
promtool check metrics <<<"$m" >/dev/null 2>&1 || fail "promtool check metrics failed after the run"
sql() { sqlite3 -batch -noheader "$T/jobq.db" "$1"; }
states=(scheduled ready running retrying succeeded dead cancelled)
for q in fast flaky idle; do
    for s in 0 1 2 3 4 5 6; do
        db=$(sql "SELECT count(*) FROM jobs WHERE queue = '$q' AND state = $s")
        expect_eq "jobq_jobs{queue=$q,state=${states[$s]}} vs the database" \
            "$(metric "$m" "jobq_jobs{queue=\"$q\",state=\"${states[$s]}\"}")" "$db"
    done
done
for q in fast flaky; do
    expect_eq "submitted_total{$q} vs jobs" "$(metric "$m" "jobq_jobs_submitted_total{queue=\"$q\"}")" \
        "$(sql "SELECT count(*) FROM jobs WHERE queue = '$q'")"
    expect_eq "started_total{$q} vs attempts" "$(metric "$m" "jobq_jobs_started_total{queue=\"$q\"}")" \
        "$(sql "SELECT count(*) FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.queue = '$q'")"
    expect_eq "failed_total{$q} vs failed attempts" \
        "$(metric "$m" "jobq_jobs_failed_total{queue=\"$q\"}")" \
        "$(sql "SELECT count(*) FROM attempts a JOIN jobs j ON j.id = a.job_id
                WHERE j.queue = '$q' AND a.kind <> 'success'")"
    expect_eq "retried_total{$q} vs failed attempts that were retried" \
        "$(metric "$m" "jobq_jobs_retried_total{queue=\"$q\"}")" \
        "$(sql "SELECT count(*) FROM attempts a JOIN jobs j ON j.id = a.job_id
                WHERE j.queue = '$q' AND a.kind <> 'success' AND a.attempt < j.max_attempts")"
    expect_eq "completed_total{$q,succeeded} vs attempts" \
        "$(metric "$m" "jobq_jobs_completed_total{queue=\"$q\",outcome=\"succeeded\"}")" \
        "$(sql "SELECT count(*) FROM attempts a JOIN jobs j ON j.id = a.job_id
                WHERE j.queue = '$q' AND a.kind = 'success'")"
    for o in succeeded:4 dead:5 cancelled:6; do
        expect_eq "completed_total{$q,${o%:*}} vs jobs" \
            "$(metric "$m" "jobq_jobs_completed_total{queue=\"$q\",outcome=\"${o%:*}\"}")" \
            "$(sql "SELECT count(*) FROM jobs WHERE queue = '$q' AND state = ${o#*:}")"
    done
    expect_eq "jobq_job_run_seconds_count{$q} vs attempts" \
        "$(metric "$m" "jobq_job_run_seconds_count{queue=\"$q\"}")" \
        "$(metric "$m" "jobq_jobs_started_total{queue=\"$q\"}")"
done
expect_eq "flaky jobs that died" "$(metric "$m" 'jobq_jobs_completed_total{queue="flaky",outcome="dead"}')" 500
expect_eq "failed flaky attempts" "$(metric "$m" 'jobq_jobs_failed_total{queue="flaky"}')" 1000
# /stats tells the same story as /metrics.
st=$(get /stats)
expect_eq "/stats ok" "$(jq -r .ok <<<"$st")" true
for q in fast flaky; do
    expect_eq "/stats totals.succeeded{$q}" "$(jq ".queues.$q.totals.succeeded" <<<"$st")" \
        "$(metric "$m" "jobq_jobs_completed_total{queue=\"$q\",outcome=\"succeeded\"}")"
    expect_eq "/stats totals.failed{$q}" "$(jq ".queues.$q.totals.failed" <<<"$st")" \
        "$(metric "$m" "jobq_jobs_failed_total{queue=\"$q\"}")"
    expect_eq "/stats series length{$q}" "$(jq ".queues.$q.series.succeeded | length" <<<"$st")" 300
    if [ "$(jq .uptime_s <<<"$st")" -lt 280 ]; then # the whole run lies in the 300 s window
        expect_eq "/stats series sum{$q}" "$(jq ".queues.$q.series.succeeded | add" <<<"$st")" \
            "$(jq ".queues.$q.totals.succeeded" <<<"$st")"
    fi
done
[ "$(jq '.recent_dead | length' <<<"$st")" -gt 0 ] || fail "/stats has no recent_dead"
jq -r '.recent_dead[0].error' <<<"$st" | grep -q '^exit status 1' ||
    fail "recent_dead[0].error: $(jq -c '.recent_dead[0]' <<<"$st")"
ok "/metrics counters and gauges agree with the database after 3,000 jobs and 1,000 failed attempts"

# (c, first half) /healthz answers 200 while the store works.
expect_eq "/healthz status" "$(curl -s -o "$T/health" -w '%{http_code}' "$HTTP/healthz")" 200
expect_eq "/healthz body" "$(tr -d '\n' <"$T/health")" ok
ok "/healthz is 200 ok"

# (d) the dashboard in headless Chromium. Some state to show: a paused queue with a backlog.
for i in 1 2 3; do cli submit idle "{\"n\":$i}" >/dev/null; done
cli pause idle >/dev/null
chrome() {
    local profile
    profile=$(mktemp -d "$T/chrome.XXXXXX")
    timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --hide-scrollbars --user-data-dir="$profile" --window-size=1366,900 \
        --virtual-time-budget=5000 "$@" 2>>"$T/chromium.log"
}
ART="${JOBQ_ARTIFACTS:-$T}"
mkdir -p "$ART"
chrome --screenshot="$T/dashboard.png" "$HTTP/" >/dev/null ||
    fail "chromium could not take a screenshot (see $T/chromium.log)"
[ "$(stat -c %s "$T/dashboard.png")" -gt 10000 ] || fail "the screenshot is (nearly) empty"
[ "$ART" -ef "$T" ] || cp "$T/dashboard.png" "$ART/dashboard.png"
echo "screenshot: $ART/dashboard.png"
chrome --dump-dom "$HTTP/" >"$T/dom.html" || fail "chromium --dump-dom failed"
st=$(get /stats)
grep -q '<body data-loaded="1"' "$T/dom.html" || fail "the page never rendered /stats"
grep -q 'data-error="0"' "$T/dom.html" || fail "the page shows an error banner"
grep -q 'jobqd 0.1.0\|jobqd [0-9]' "$T/dom.html" || fail "the page does not show the version"
# card QUEUE: the DOM of one queue card (from its data-queue to the next card).
card() { awk -v RS='<section ' -v q="data-queue=\"$1\"" 'index($0, q) { print }' "$T/dom.html"; }
for q in fast flaky idle; do
    c=$(card "$q")
    [ -n "$c" ] || fail "no card for queue $q on the dashboard"
    for s in "${states[@]}"; do
        v=$(grep -o "data-count=\"$s\" data-value=\"[0-9]*\"" <<<"$c" | sed 's/.*data-value="//; s/"//')
        expect_eq "dashboard $q $s" "$v" "$(jq ".queues.$q.$s" <<<"$st")"
    done
    grep -q 'data-oldest="" data-value="[0-9][0-9]*"' <<<"$c" ||
        fail "the card of queue $q does not show the age of its oldest ready job"
    expect_eq "dashboard $q breaker" "$(grep -o 'data-breaker="[a-z_]*"' <<<"$c" | sed 's/.*="//; s/"//')" \
        "$(jq -r ".queues.$q.breaker" <<<"$st")"
    expect_eq "dashboard $q paused" "$(grep -o 'data-paused="[a-z]*"' <<<"$c" | head -n 1 | sed 's/.*="//; s/"//')" \
        "$(jq -r ".queues.$q.paused" <<<"$st")"
done
grep -q 'data-job-id=' "$T/dom.html" || fail "the dead jobs table is empty"
grep -q 'flaky: downstream refused\|exit status 1' "$T/dom.html" || fail "no dead job's error on the page"
# Served from anywhere but jobqd, /stats fails: the page says so instead of showing nothing.
chrome --dump-dom "file://$JOBQ_SRC/daemon/assets/dashboard.html" >"$T/dom-error.html" || true
grep -q 'data-error="1"' "$T/dom-error.html" || fail "no error state when /stats fails"
grep -q 'Cannot load /stats' "$T/dom-error.html" || fail "no error banner when /stats fails"
ok "the dashboard shows every queue with the counts, breaker and paused flag of /stats"

# (e) jobq top on a pseudo-terminal: draws the queues, quits on q; restores on SIGTERM.
cli top >"$T/top.txt"
for q in fast flaky idle; do grep -q "^$q " "$T/top.txt" || fail "jobq top (no tty) lacks $q"; done
grep -q 'QUEUE.*READY.*RUNNING.*OLDEST.*SUCC/s.*FAIL/s.*BREAKER.*PAUSED' "$T/top.txt" || fail "jobq top header"
# top_pty OUT: runs jobq top under script(1) on a pty, its keyboard a fifo (fd 5).
top_pty() {
    rm -f "$T/keys"
    mkfifo "$T/keys"
    TERM=xterm SHELL=/bin/bash script -qefc "$JOBQ --url $SOCK top --interval 200ms" /dev/null <"$T/keys" >"$1" 2>&1 &
    TOP_PID=$!
    exec 5>"$T/keys"
    poll_until "jobq top drew the queues" \
        "grep -q 'fast' '$1' && grep -q 'flaky' '$1' && grep -q 'idle' '$1'"
}
top_pty "$T/top.pty"
printf q >&5
rc=0
timeout 20 tail --pid="$TOP_PID" -f /dev/null || fail "jobq top did not quit on q"
wait "$TOP_PID" || rc=$?
exec 5>&-
expect_eq "jobq top exit status after q" "$rc" 0
grep -q $'\e\[?1049h' "$T/top.pty" || fail "jobq top did not use the alternate screen"
grep -q $'\e\[?1049l' "$T/top.pty" || fail "jobq top did not leave the alternate screen"
ok "jobq top draws the queues on a terminal and quits on q"
top_pty "$T/top2.pty"
top=$(pgrep -P "$TOP_PID" -x jobq || true)
[ -n "$top" ] || fail "no jobq process under script"
kill -TERM "$top"
rc=0
timeout 20 tail --pid="$TOP_PID" -f /dev/null || fail "jobq top did not quit on SIGTERM"
wait "$TOP_PID" || rc=$?
exec 5>&-
expect_eq "jobq top exit status after SIGTERM" "$rc" 0
grep -q $'\e\[?25h\e\[?1049l' "$T/top2.pty" || fail "jobq top did not restore the terminal on SIGTERM"
ok "jobq top restores the terminal on SIGTERM"
stop_jobqd

# (c, second half) a full disk: submits fail with store_full and /healthz answers 503.
mkdir -p "$SMALL"
if ! mount -t tmpfs -o size=2m tmpfs "$SMALL" 2>"$T/mount.err"; then
    echo "ok - skipped: store_full and /healthz 503 (mount -t tmpfs not permitted: $(cat "$T/mount.err"))"
    exit 0
fi
SERVER_EXTRA='http = 127.0.0.1:0' write_config "$QUEUES"
sed -i "s|^database = .*|database = $SMALL/jobq.db|" "$T/jobq.conf"
start_jobqd
HTTP="http://127.0.0.1:$(http_port)"
expect_eq "/healthz before the disk fills" "$(curl -s -o /dev/null -w '%{http_code}' "$HTTP/healthz")" 200
awk 'BEGIN { printf "{\"op\":\"submit\",\"queue\":\"idle\",\"payload\":\""; for (i = 0; i < 3000; i++) printf "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz"; printf "\"}" }' >"$T/big.json"
code=
for i in $(seq 1 200); do
    code=$(raw_file "$T/big.json" | jq -r '.error.code // "ok"')
    [ "$code" = ok ] || break
done
expect_eq "submit on a full disk" "$code" store_full
hc=$(curl -s -o "$T/health" -w '%{http_code}' "$HTTP/healthz")
expect_eq "/healthz status on a full disk" "$hc" 503
[ -s "$T/health" ] && ! grep -qx ok "$T/health" || fail "/healthz 503 without a reason"
echo "/healthz said: $(head -c 200 "$T/health")"
ok "a full disk: submits get store_full and /healthz answers 503 with the reason"
stop_jobqd
