#!/usr/bin/env bash
# it_http_hostile.sh: the HTTP side cannot take the job port down. With jobqd's descriptor
# limit at 256, 300 slow HTTP clients leave the job port answering ping; at most
# http_max_connections are held, and a prompt client takes the slot of the slowest one;
# an idle connection and a partial request are closed after http_timeout; the flood writes a handful of log lines;
# /metrics still validates afterwards. Descriptors: http_max_connections is clamped to what
# the job port leaves, and a limit that leaves nothing refuses to start, naming the line.
# backup writes only inside backup_dir; a bad path is invalid_argument.
. "$(dirname "$0")/lib.sh"
for tool in curl jq sqlite3; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (Debian: $tool)"
done

# jobqd under a hard and soft RLIMIT_NOFILE of 256 (a wrapper, so the test's own tools are not).
REAL_JOBQD=$JOBQD
JOBQD="$T/jobqd-256"
printf '#!/usr/bin/env bash\nulimit -n 256 || exit 1\nexec "%s" "$@"\n' "$REAL_JOBQD" >"$JOBQD"
chmod 0755 "$JOBQD"

mkdir -p "$T/backups" "$T/elsewhere"
SERVER_EXTRA="http = 127.0.0.1:0
log_level = info
max_connections = 100
http_timeout = 4s
http_max_connections = 64
backup_dir = $T/backups"
write_config
start_jobqd
grep -q 'event=fd_limit nofile=256 ' "$LOG" || fail "no fd_limit line with nofile=256: $(cat "$LOG")"
port=$(grep -o 'event=http_listen addr=127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*://')
[ -n "$port" ] || fail "no event=http_listen line in $LOG"
curl -fsS "http://127.0.0.1:$port/healthz" | grep -qx ok || fail "/healthz before the flood"

# (a) An idle connection and a partial request are closed after http_timeout (4 s), not
# before half of it. bash's /dev/tcp: the read ends when jobqd closes the socket.
closed_after() { # closed_after LABEL [TEXT]: opens, sends TEXT, prints ms until jobqd closes
    local t0 t1
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    [ -z "${2:-}" ] || printf '%b' "$2" >&3
    t0=$(date +%s%N)
    timeout 30 cat <&3 >/dev/null || fail "$1: still open after 30 s"
    t1=$(date +%s%N)
    exec 3<&-
    echo $(((t1 - t0) / 1000000))
}
idle_ms=$(closed_after "idle connection")
partial_ms=$(closed_after "partial request" 'GET /metrics HTTP/1.1\r\nHost: x\r\nX-Partial: a')
[ "$idle_ms" -ge 2000 ] || fail "idle connection closed after $idle_ms ms, before http_timeout"
[ "$partial_ms" -ge 2000 ] || fail "partial request closed after $partial_ms ms, before http_timeout"
ok "idle connection closed after $idle_ms ms, partial request after $partial_ms ms (http_timeout 4 s)"

# (b) 300 clients each dribbling a header byte a second for 10 s.
lines_before=$(wc -l <"$LOG")
fds_before=$(ls "/proc/$JOBQD_PID/fd" | wc -l)
"$JOBQ_HOSTILE" slowloris 127.0.0.1 "$port" 300 10 >"$T/slow.out" &
SLOW=$!
CLEANUP_PIDS+=("$SLOW")
poll_until "the cap is reached" "grep -q 'event=http_evicted' '$LOG'"
# Slow clients fill every slot: a client that sends its request at once takes the slot of
# the one that waited longest for its request, and is served.
code=$(curl -s -o "$T/health.txt" -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/healthz" || true)
expect_eq "/healthz while slow clients fill http_max_connections" "$code" 200
# The cap holds: jobqd holds at most 64 more descriptors than before the flood.
held=$(($(ls "/proc/$JOBQD_PID/fd" | wc -l) - fds_before))
[ "$held" -le 64 ] || fail "jobqd holds $held more descriptors, over http_max_connections (64)"
# The job port answers, over new connections, while the flood lasts.
worst=0
for i in $(seq 1 20); do
    t0=$(date +%s%N)
    r=$("$JOBQ_RAW" "$SOCK" 5 --data '{"op":"ping"}') || fail "ping $i during the HTTP flood got no reply"
    t1=$(date +%s%N)
    [ "$(jq -r .ok <<<"$r")" = true ] || fail "ping $i: $r"
    ms=$(((t1 - t0) / 1000000))
    [ "$ms" -le "$worst" ] || worst=$ms
done
ok "20 pings answered during the flood of 300 slow HTTP clients (slowest $worst ms, jobq-raw's start included)"
wait "$SLOW" || fail "jobq-hostile slowloris: $(cat "$T/slow.out")"
cat "$T/slow.out"
closed=$(sed -n 's/.* \([0-9]*\) closed by the server.*/\1/p' "$T/slow.out")
expect_eq "slow clients closed by jobqd (evicted or past http_timeout)" "$closed" 300
alive "$JOBQD_PID" || fail "jobqd died"
lines=$(($(wc -l <"$LOG") - lines_before))
[ "$lines" -lt 100 ] || fail "the flood wrote $lines log lines: $(tail -n 20 "$LOG")"
ok "300 slow HTTP clients: at most 64 held at once ($held more descriptors when counted), each cut off (evicted or past http_timeout); $lines log lines"

# (c) /metrics is served again and still validates.
curl -fsS "http://127.0.0.1:$port/metrics" >"$T/metrics.txt" || fail "/metrics after the flood"
curl -fsS -D "$T/headers.txt" -o /dev/null "http://127.0.0.1:$port/metrics"
grep -qi '^Cache-Control: no-store' "$T/headers.txt" || fail "headers: $(cat "$T/headers.txt")"
grep -qi '^Content-Type: text/plain; version=0.0.4' "$T/headers.txt" || fail "headers: $(cat "$T/headers.txt")"
if command -v promtool >/dev/null; then
    promtool check metrics <"$T/metrics.txt" >"$T/promtool.out" 2>&1 || fail "promtool: $(cat "$T/promtool.out")"
fi
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/metrics")
expect_eq "POST /metrics" "$code" 405
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/nothing")
expect_eq "GET /nothing" "$code" 404
ok "/metrics served and valid after the flood; 405 and 404 where due"

# (d) backup: only new files inside backup_dir; every argument problem is invalid_argument.
backup() { "$JOBQ_RAW" "$SOCK" 30 --data "{\"op\":\"backup\",\"path\":\"$1\"}"; }
r=$(backup "$T/backups/a.db")
expect_eq "backup inside backup_dir" "$(jq -r .ok <<<"$r")" true
expect_eq "integrity of the copy" "$(sqlite3 "$T/backups/a.db" 'PRAGMA integrity_check')" ok
for bad in "$T/backups/a.db:already exists" "$T/elsewhere/b.db:outside backup_dir" \
    "$T/backups/missing/c.db:does not exist" "$T/backups/../d.db:component" \
    "$T/jobq.db:outside backup_dir"; do
    r=$(backup "${bad%%:*}")
    expect_eq "backup to ${bad%%:*}" "$(jq -r .error.code <<<"$r")" invalid_argument
    jq -r .error.message <<<"$r" | grep -q "${bad#*:}" || fail "message for ${bad%%:*}: $r"
done
[ ! -e "$T/elsewhere/b.db" ] && [ ! -e "$T/d.db" ] || fail "a refused backup wrote a file"
ok "backup: written inside backup_dir; existing file, outside, missing folder, .. refused as invalid_argument"
stop_jobqd

# (e) Descriptors: more HTTP connections than the limit leaves are clamped, with a line;
# a limit that leaves none refuses to start and names the line.
SERVER_EXTRA="http = 127.0.0.1:0
log_level = info
max_connections = 100
http_max_connections = 500"
write_config
start_jobqd
grep -q 'event=http_connections_clamped configured=500 allowed=' "$LOG" || fail "no clamp line: $(cat "$LOG")"
stop_jobqd
SERVER_EXTRA="http = 127.0.0.1:0
max_connections = 250
http_max_connections = 10"
write_config
line=$(grep -n '^http_max_connections' "$T/jobq.conf" | cut -d: -f1)
rc=0
"$JOBQD" -c "$T/jobq.conf" 2>"$T/refused.err" || rc=$?
expect_eq "exit status with no descriptor left for HTTP" "$rc" 1
grep -q "jobq.conf:$line: http_max_connections = 10: no file descriptor is left for HTTP" "$T/refused.err" ||
    fail "refusal: $(cat "$T/refused.err")"
ok "descriptors: http_max_connections clamped to what the job port leaves; none left refuses to start"
