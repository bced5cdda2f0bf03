#!/usr/bin/env bash
# it_disk_full.sh: the database on a small tmpfs that fills up. Submits get store_full; get,
# list and stats go on; jobs that finish while the disk is full have their outcome recorded
# once space returns; jobqd recovers by itself when a filler file is deleted (no restart);
# no acknowledged job is lost. Needs mount(2) (root): exits 77 (skipped) without it.
. "$(dirname "$0")/lib.sh"

SMALL="$T/small"
disk_cleanup() {
    local rc=$?
    trap - ERR
    set +e
    if mountpoint -q "$SMALL" 2>/dev/null; then
        if [ -n "$JOBQD_PID" ] && kill -0 "$JOBQD_PID" 2>/dev/null; then
            kill -9 "$JOBQD_PID" 2>/dev/null
            wait "$JOBQD_PID" 2>/dev/null
        fi
        umount "$SMALL" 2>/dev/null || umount -l "$SMALL"
    fi
    (exit $rc)
    cleanup
}
trap disk_cleanup EXIT

mkdir -p "$SMALL"
if ! mount -t tmpfs -o size=4m tmpfs "$SMALL" 2>"$T/mount.err"; then
    echo "skipped: mount -t tmpfs is not permitted here: $(cat "$T/mount.err")"
    exit 77
fi
for tool in curl jq sqlite3; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done

# gate.sh: a handler that runs until the test opens the gate, so jobs are running while the
# disk fills; it prints its job id as the result.
cat >"$T/gate.sh" <<SH
#!/bin/sh
while [ ! -e "$T/gate" ]; do sleep 0.05; done
echo "done \$JOBQ_JOB_ID"
SH
chmod +x "$T/gate.sh"
SERVER_EXTRA='http = 127.0.0.1:0' write_config "[queue.work]
command = $T/gate.sh
concurrency = 2
timeout = 5m
[queue.idle]
[queue.remote]"
sed -i "s|^database = .*|database = $SMALL/jobq.db|" "$T/jobq.conf"
start_jobqd
port=$(grep -o 'event=http_listen addr=127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*://')
HTTP="http://127.0.0.1:$port"
health() { curl -s -o /dev/null --max-time 10 -w '%{http_code}' "$HTTP/healthz"; }
stat_of() { raw '{"op":"stats"}' | jq -r ".queues.$1.$2"; }

ACKED="$T/acked" # every id jobqd acknowledged, one a line
: >"$ACKED"
# submit_file FILE: sends FILE; prints the error code, or "ok" after noting the id.
submit_file() {
    local r
    r=$(raw_file "$1")
    if [ "$(jq -r .ok <<<"$r")" = true ]; then
        jq -r .id <<<"$r" >>"$ACKED"
        echo ok
    else
        jq -r '.error.code // "no_reply"' <<<"$r"
    fi
}

# Two jobs run (held at the gate) while the disk fills.
for i in 1 2; do
    raw "{\"op\":\"submit\",\"queue\":\"work\",\"payload\":$i}" | jq -r .id >>"$ACKED"
done
poll_until "both work jobs run" '[ "$(stat_of work running)" = 2 ]'
for i in $(seq 1 50); do
    raw "{\"op\":\"submit\",\"queue\":\"idle\",\"payload\":$i}" | jq -r .id >>"$ACKED"
done
expect_eq "/healthz with room on the disk" "$(health)" 200
# A remote worker holds a job while the disk fills.
rid=$(raw '{"op":"submit","queue":"remote","payload":"r"}' | jq -r .id)
echo "$rid" >>"$ACKED"
rlease=$(raw '{"op":"fetch","queue":"remote","timeout":"1s"}' | jq -r '.jobs[0].lease')

# Fill the disk: a filler file takes what is free, then big submits use up what SQLite still
# has in its files.
dd if=/dev/zero of="$SMALL/filler" bs=64k 2>/dev/null || true
awk 'BEGIN { printf "{\"op\":\"submit\",\"queue\":\"idle\",\"payload\":\""; for (i = 0; i < 1000; i++) printf "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz"; printf "\"}" }' >"$T/big.json"
code=ok
for i in $(seq 1 300); do
    code=$(submit_file "$T/big.json")
    [ "$code" = ok ] || break
done
expect_eq "a submit on the full disk" "$code" store_full
r=$(raw '{"op":"submit","queue":"idle","payload":1}')
expect_eq "a small submit on the full disk" "$(jq -r .error.code <<<"$r")" store_full
jq -r .error.message <<<"$r" | grep -q 'free space' || fail "store_full does not say what to do: $r"
r=$(raw '{"op":"submit_batch","queue":"idle","jobs":[{},{}]}')
expect_eq "a batch on the full disk" "$(jq -r .error.code <<<"$r")" store_full
expect_eq "/healthz on the full disk" "$(health)" 503
ok "full disk: submits and batches get store_full with what to do, /healthz 503"

first=$(head -n 1 "$ACKED")
expect_eq "get on the full disk" "$(raw "{\"op\":\"get\",\"id\":$first}" | jq -r .job.state)" running
expect_eq "list on the full disk" "$(raw '{"op":"list","queue":"idle","limit":10}' | jq '.jobs | length')" 10
expect_eq "stats on the full disk" "$(stat_of work running)" 2
cli stats >/dev/null || fail "jobq stats failed on the full disk"
ok "full disk: get, list and stats are served"

# The running jobs finish while the disk is still full: their outcome cannot be written yet.
touch "$T/gate"
poll_until "the outcome of a job is refused by the full disk" "grep -q 'event=record_failed' '$LOG'"
expect_eq "a finished job is still running in the store" \
    "$(raw "{\"op\":\"get\",\"id\":$first}" | jq -r .job.state)" running
ok "full disk: a job that ended cannot be recorded yet and stays running (not lost)"
r=$(raw "{\"op\":\"ack\",\"id\":$rid,\"lease\":\"$rlease\",\"fetch\":{\"queue\":\"remote\",\"timeout\":\"5m\"}}")
expect_eq "an ack with a fetch on the full disk" "$(jq -r .error.code <<<"$r")" store_full
ok "full disk: an ack that carries a 5-minute fetch gets store_full at once, and its lease stays"

# Space returns: jobqd recovers by itself.
rm -f "$SMALL/filler"
poll_until "the work jobs' outcomes are recorded" '[ "$(stat_of work succeeded)" = 2 ]'
expect_eq "result of a job recorded late" "$(raw "{\"op\":\"get\",\"id\":$first}" | jq -r .job.result)" "done $first"
expect_eq "attempts of a job recorded late" "$(raw "{\"op\":\"get\",\"id\":$first}" | jq -r '.job.attempts | length')" 1
r=$(raw "{\"op\":\"ack\",\"id\":$rid,\"lease\":\"$rlease\"}")
expect_eq "the ack again after space returned" "$(jq -r .job.state <<<"$r")" succeeded
code=$(submit_file "$T/big.json")
expect_eq "a submit after space returned" "$code" ok
id=$(raw '{"op":"submit","queue":"work","payload":"after"}' | jq -r .id)
echo "$id" >>"$ACKED"
expect_eq "a job submitted after space returned runs" \
    "$(raw "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"30s\"}" | jq -r '.jobs[0].state')" succeeded
poll_until "/healthz answers 200 again" '[ "$(health)" = 200 ]'
ok "space freed: outcomes recorded, submits and runs work again, /healthz 200, without a restart"

stop_jobqd
n=$(wc -l <"$ACKED")
sqlite3 "$SMALL/jobq.db" 'SELECT id FROM jobs' | sort -n >"$T/stored"
missing=$(sort -n "$ACKED" | comm -23 - "$T/stored" | wc -l)
expect_eq "acknowledged jobs missing from the database" "$missing" 0
expect_eq "integrity" "$(sqlite3 "$SMALL/jobq.db" 'PRAGMA integrity_check')" ok
ok "all $n acknowledged jobs are in the database, integrity ok"
