#!/usr/bin/env bash
# it_batch.sh: a 10,000-job submit_batch is atomic: one bad entry (found by the decoder or
# by the store) stores nothing; a good one stores all, durably.
. "$(dirname "$0")/lib.sh"
write_config '[queue.email]'  # no command: jobs stay ready
start_jobqd

# batch_file FILE N LAST: a submit_batch request of N jobs whose last entry is LAST.
batch_file() {
    awk -v n="$2" -v last="$3" 'BEGIN {
        printf "{\"op\":\"submit_batch\",\"queue\":\"email\",\"jobs\":["
        for (i = 1; i < n; i++) printf "{\"payload\":{\"i\":%d,\"body\":\"0123456789abcdef\"}},", i
        printf "%s]}", last
    }' >"$1"
}
ready() { raw '{"op":"stats"}' | jq -r .queues.email.ready; }

r=$(raw '{"op":"submit","queue":"email","payload":1,"key":"K"}')
expect_eq "keyed job" "$(jq -r .ok <<<"$r")" true

batch_file "$T/conflict.json" 10000 '{"payload":2,"key":"K"}'
r=$(raw_file "$T/conflict.json")
expect_eq "store-level failure in the last entry" "$(jq -r .error.code <<<"$r")" key_conflict
jq -r .error.message <<<"$r" | grep -q 'jobs\[9999\]' || fail "message does not name the entry: $r"
expect_eq "nothing stored after key_conflict" "$(ready)" 1
ok "key conflict in entry 9999 rolls back the whole batch"

batch_file "$T/invalid.json" 10000 '{"payload":2,"priority":"high"}'
r=$(raw_file "$T/invalid.json")
expect_eq "decoder-level failure" "$(jq -r .error.code <<<"$r")" invalid_argument
expect_eq "nothing stored after invalid_argument" "$(ready)" 1
ok "invalid entry 9999 rejects the whole batch"

batch_file "$T/good.json" 10000 '{"payload":10000}'
r=$(raw_file "$T/good.json")
expect_eq "good batch" "$(jq -r .ok <<<"$r")" true
expect_eq "10,000 ids" "$(jq '.ids | length' <<<"$r")" 10000
expect_eq "unique ids" "$(jq '.ids | unique | length' <<<"$r")" 10000
expect_eq "all stored" "$(ready)" 10001
first=$(jq '.ids[0]' <<<"$r")
expect_eq "payload of the first" "$(raw "{\"op\":\"get\",\"id\":$first}" | jq -c .job.payload)" \
    '{"i":1,"body":"0123456789abcdef"}'
ok "10,000-job batch stored whole"

# The CLI's NDJSON batch (chunks of 1,000, each atomic).
seq 1 10000 | awk '{printf "{\"n\":%d}\n", $1}' >"$T/jobs.ndjson"
cli submit email --batch "$T/jobs.ndjson" >/dev/null
expect_eq "CLI batch stored" "$(ready)" 20001
printf '{"n":1}\n{"n":\n' >"$T/bad.ndjson"
rc=0; cli submit email --batch "$T/bad.ndjson" 2>"$T/err" || rc=$?
[ "$rc" -ne 0 ] || fail "a bad NDJSON line was accepted"
grep -q 2 "$T/err" || fail "the error does not name line 2: $(cat "$T/err")"
expect_eq "nothing stored from a bad file" "$(ready)" 20001
ok "jobq submit --batch"

kill9_jobqd
start_jobqd
expect_eq "after kill -9 every acknowledged job is there" "$(ready)" 20001
ok "batches survive kill -9"
stop_jobqd
