#!/usr/bin/env bash
# it_limits_backup.sh: a queue past max_pending answers queue_full and stores nothing; a
# backup taken while jobs run is consistent: jobqd started on the copy finds every job; with
# backup_dir unset it goes to the database's directory, and an existing file or a missing
# folder is invalid_argument.
. "$(dirname "$0")/lib.sh"
write_config "[queue.small]
max_pending = 5
[queue.busy]
command = /bin/true
concurrency = 4"
start_jobqd

r=$(raw '{"op":"submit_batch","queue":"small","jobs":[{},{},{},{}]}')
expect_eq "4 of 5" "$(jq -r .ok <<<"$r")" true
r=$(raw '{"op":"submit_batch","queue":"small","jobs":[{},{}]}')
expect_eq "6 of 5" "$(jq -r .error.code <<<"$r")" queue_full
jq -r .error.message <<<"$r" | grep -q 'max_pending is 5' || fail "message: $r"
raw '{"op":"submit","queue":"small"}' | jq -e .ok >/dev/null || fail "the 5th job was refused"
r=$(raw '{"op":"submit","queue":"small"}')
expect_eq "over the limit" "$(jq -r .error.code <<<"$r")" queue_full
expect_eq "nothing stored past the limit" "$(raw '{"op":"stats"}' | jq -r .queues.small.ready)" 5
rc=0; cli submit small '1' 2>"$T/err" || rc=$?
expect_eq "CLI exit status on queue_full" "$rc" 1
grep -q 'max_pending' "$T/err" || fail "CLI message: $(cat "$T/err")"
ok "max_pending: queue_full past 5 unfinished jobs, nothing stored"

# A backup while 5,000 jobs run.
awk 'BEGIN { printf "{\"op\":\"submit_batch\",\"queue\":\"busy\",\"jobs\":["; for (i = 1; i < 5000; i++) printf "{\"payload\":%d},", i; printf "{\"payload\":0}]}" }' >"$T/batch.json"
raw_file "$T/batch.json" | jq -e .ok >/dev/null
cli backup "$T/copy.db" >/dev/null
rc=0; cli backup "$T/copy.db" 2>"$T/err" || rc=$?
[ "$rc" -ne 0 ] || fail "a backup over an existing file was accepted"
grep -q 'already exists' "$T/err" || fail "CLI message: $(cat "$T/err")"
r=$(raw "{\"op\":\"backup\",\"path\":\"$T/copy.db\"}")
expect_eq "backup over an existing file" "$(jq -r .error.code <<<"$r")" invalid_argument
r=$(raw "{\"op\":\"backup\",\"path\":\"$T/nowhere/copy.db\"}")
expect_eq "backup into a missing folder" "$(jq -r .error.code <<<"$r")" invalid_argument
stop_jobqd
live=$(sqlite3 "$T/jobq.db" 'SELECT count(*) FROM jobs')
expect_eq "integrity of the copy" "$(sqlite3 "$T/copy.db" 'PRAGMA integrity_check')" ok
copied=$(sqlite3 "$T/copy.db" 'SELECT count(*) FROM jobs')
expect_eq "every job in the copy" "$copied" "$live"
# Restore: jobqd started on the copy serves every job.
mv "$T/jobq.db" "$T/jobq.db.old"
rm -f "$T/jobq.db-wal" "$T/jobq.db-shm"
cp "$T/copy.db" "$T/jobq.db"
start_jobqd
total=$(raw '{"op":"stats"}' | jq '[.queues[] | .scheduled + .ready + .running + .retrying + .succeeded + .dead + .cancelled] | add')
expect_eq "jobs after restoring" "$total" "$live"
ok "backup while jobs ran: $copied jobs, integrity ok, restored and served"
stop_jobqd
