#!/usr/bin/env bash
# it_mutate.sh: the mutate op against a real jobqd: each action on a mixed population (queues,
# states, keys, errors), dry runs that count what the action then changes, running jobs
# stopped by a cancel and held waits answered, 5,000 jobs retried in chunks of 1,000 while
# pings are answered, the refusal of an empty filter and of the read token, and after every
# action the counts of `jobq stats` equal to the database's.
. "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null || { echo "skip: sqlite3 is not installed"; exit 77; }
# mail and sms: no command (remote workers), so jobs stay where they are put; slow: jobs that
# run until stopped.
write_config '[queue.mail]
max_attempts = 1
[queue.sms]
max_attempts = 1
[queue.bulk]
[queue.slow]
command = sleep 60
concurrency = 2
timeout = 5m'
start_jobqd
DB="$T/jobq.db"
q() { sqlite3 -cmd '.timeout 5000' "$DB" "$1"; }

# counts_agree WHAT: every queue's counts in `jobq stats` are the database's.
counts_agree() {
    local want got
    want=$(q "select json_group_object(queue, json(counts)) from (select queue, json_group_object(
        case state when 0 then 'scheduled' when 1 then 'ready' when 2 then 'running'
        when 3 then 'retrying' when 4 then 'succeeded' when 5 then 'dead'
        when 6 then 'cancelled' else 'waiting' end, n) as counts
        from (select queue, state, count(*) as n from jobs group by queue, state) group by queue)" |
        jq -S -c '.')
    [ "$want" != null ] || want='{}'
    got=$(cli stats --json | jq -S -c '.queues | with_entries(.value |= with_entries(
        select(.key | IN("scheduled","ready","running","retrying","succeeded","dead","cancelled","waiting"))
        | select(.value != 0))) | with_entries(select(.value != {}))')
    expect_eq "$1: stats agree with the database" "$got" "$want"
}

# mutate JSON_FIELDS: a mutate request with these fields; prints the reply.
mutate() { raw "{\"op\":\"mutate\",$1}"; }

# ---- the population ----
# mail: 10 jobs with keys u-1..u-10, fetched; 6 fail (3 "timeout talking to smtp", 3 "bad
# address"), 4 succeed. sms: 5 ready, 4 scheduled in an hour.
for i in $(seq 1 10); do
    raw "{\"op\":\"submit\",\"queue\":\"mail\",\"payload\":{\"i\":$i},\"key\":\"u-$i\"}" >/dev/null
done
f=$(raw '{"op":"fetch","queue":"mail","max":10,"timeout":0}')
expect_eq "fetched" "$(jq '.jobs | length' <<<"$f")" 10
fails=$(jq -c '[.jobs[:6] | to_entries[] | {id: .value.id, lease: .value.lease, retry: false,
    error: (if .key < 3 then "exit 1: timeout talking to smtp" else "bad address" end)}]' <<<"$f")
acks=$(jq -c '[.jobs[6:][] | {id, lease, result: "sent"}]' <<<"$f")
expect_eq "fail 6" "$(raw "{\"op\":\"fail\",\"jobs\":$fails}" | jq -r .ok)" true
expect_eq "ack 4" "$(raw "{\"op\":\"ack\",\"jobs\":$acks}" | jq -r .ok)" true
for i in $(seq 1 5); do raw "{\"op\":\"submit\",\"queue\":\"sms\",\"payload\":$i}" >/dev/null; done
for i in $(seq 1 4); do
    raw "{\"op\":\"submit\",\"queue\":\"sms\",\"payload\":$i,\"delay\":\"1h\",\"key\":\"s-$i\"}" >/dev/null
done
expect_eq "mail dead" "$(q "select count(*) from jobs where queue='mail' and state=5")" 6
counts_agree "the population"
ok "a population: dead (two errors), succeeded, ready, scheduled; keys on some"

# ---- guard rails ----
r=$(mutate '"action":"cancel"')
expect_eq "empty filter" "$(jq -r .error.code <<<"$r")" invalid_argument
jq -r .error.message <<<"$r" | grep -q '"all": true' || fail "empty filter message: $r"
r=$(mutate '"action":"cancel","all":true,"dry_run":true')
expect_eq "all: true, dry run" "$(jq -r '.ok, .matched' <<<"$r" | tr '\n' ' ')" "true 19 "
expect_eq "nothing changed by a dry run" "$(q "select count(*) from jobs where state=6")" 0
r=$(mutate '"action":"fly","queue":"mail"')
expect_eq "unknown action" "$(jq -r .error.code <<<"$r")" invalid_argument
ok "an empty filter is refused without \"all\": true; an unknown action too"

# ---- retry: dry run, then the action changes exactly that ----
r=$(mutate '"action":"retry","queue":"mail","error_contains":"timeout","dry_run":true')
expect_eq "dry run retry" "$(jq -c '[.matched, .changed, .states, .skipped, .dry_run]' <<<"$r")" \
    '[3,3,{"dead":3},{},true]'
r=$(mutate '"action":"retry","queue":"mail","error_contains":"timeout"')
expect_eq "retry" "$(jq -c '[.matched, .changed, .states, .skipped, .dry_run, .next]' <<<"$r")" \
    '[3,3,{"dead":3},{},false,null]'
expect_eq "retried jobs: ready, a fresh budget" \
    "$(q "select count(*) from jobs where queue='mail' and state=1 and attempt=0 and error like '%timeout%'")" 3
grep -q 'event=jobs_mutated action=retry dry_run=false queue=mail matched=3 changed=3' "$LOG" ||
    fail "no log line for the retry"
counts_agree "retry"
# A retry of the whole queue: the dead ones change, the others are skipped by state.
r=$(mutate '"action":"retry","queue":"mail","dry_run":true')
dry=$(jq -c '[.matched, .changed, .skipped]' <<<"$r")
expect_eq "dry run by state" "$dry" '[10,3,{"ready":3,"succeeded":4}]'
r=$(mutate '"action":"retry","queue":"mail"')
expect_eq "retry equals its dry run" "$(jq -c '[.matched, .changed, .skipped]' <<<"$r")" "$dry"
counts_agree "retry of a queue"
ok "retry: dry run counts what the action then changes, skipped jobs counted by state"

# ---- run_now, reschedule, set_priority on sms ----
r=$(mutate '"action":"set_priority","queue":"sms","priority":7')
expect_eq "set_priority" "$(jq -c '[.changed, .skipped]' <<<"$r")" '[9,{}]'
expect_eq "priorities" "$(q "select count(*) from jobs where queue='sms' and priority=7")" 9
r=$(mutate '"action":"run_now","queue":"sms","key_prefix":"s-"')
expect_eq "run_now" "$(jq -c '[.matched, .changed]' <<<"$r")" '[4,4]'
expect_eq "sms ready" "$(q "select count(*) from jobs where queue='sms' and state=1")" 9
counts_agree "run_now"
r=$(mutate '"action":"reschedule","queue":"sms","state":"ready","delay":"2h"')
expect_eq "reschedule" "$(jq -c '[.matched, .changed]' <<<"$r")" '[9,9]'
late=$(q "select count(*) from jobs where queue='sms' and state=0 and run_at > (strftime('%s','now') + 7000) * 1000")
expect_eq "rescheduled two hours ahead" "$late" 9
counts_agree "reschedule"
now_ms=$(($(date +%s) * 1000))
r=$(mutate "\"action\":\"reschedule\",\"queue\":\"sms\",\"key_prefix\":\"s-1\",\"run_at\":$now_ms")
expect_eq "reschedule to now" "$(jq -c '[.changed]' <<<"$r")" '[1]'
expect_eq "due now: ready" "$(q "select state from jobs where key='s-1'")" 1
counts_agree "reschedule to now"
ok "set_priority, run_now (by key prefix), reschedule (ahead: scheduled; now: ready)"

# ---- rerun: finished jobs submitted again as new jobs ----
before=$(q "select max(id) from jobs")
r=$(mutate '"action":"rerun","queue":"mail","state":"succeeded"')
expect_eq "rerun" "$(jq -c '[.matched, .changed, (.ids | length)]' <<<"$r")" '[4,4,4]'
new=$(jq -r '.ids | join(",")' <<<"$r")
expect_eq "new jobs, ready" "$(q "select count(*) from jobs where id in ($new) and id > $before and state=1 and key is null")" 4
expect_eq "same payloads" "$(q "select group_concat(payload, ' ') from (select payload from jobs where id in ($new) order by id)")" \
    "$(q "select group_concat(payload, ' ') from (select payload from jobs where queue='mail' and state=4 order by id)")"
expect_eq "originals stay" "$(q "select count(*) from jobs where queue='mail' and state=4")" 4
counts_agree "rerun"
ok "rerun: a new ready job per finished job, same queue and payload, ids in the reply"

# ---- cancel: pending cancelled, running stopped, held waits answered, dependents cascade ----
for i in 1 2 3; do raw "{\"op\":\"submit\",\"queue\":\"slow\",\"payload\":$i}" >/dev/null; done
poll_until "2 slow jobs running" "[ \"\$(q 'select count(*) from jobs where queue=\"slow\" and state=2')\" = 2 ]"
# delete refuses what has not finished: the running jobs are skipped and counted.
r=$(mutate '"action":"delete","queue":"slow"')
expect_eq "delete of unfinished jobs" "$(jq -c '[.matched, .changed, .skipped]' <<<"$r")" \
    '[3,0,{"ready":1,"running":2}]'
parent=$(raw '{"op":"submit","queue":"bulk","payload":"p","delay":"1h"}' | jq .id)
child=$(raw "{\"op\":\"submit\",\"queue\":\"bulk\",\"payload\":\"c\",\"after\":[$parent]}" | jq .id)
running=$(q "select id from jobs where queue='slow' and state=2 limit 1")
raw "{\"op\":\"wait\",\"id\":$running,\"timeout\":\"60s\"}" >"$T/wait.out" &
waitpid=$!
raw "{\"op\":\"wait\",\"id\":$parent,\"timeout\":\"60s\"}" >"$T/wait2.out" &
waitpid2=$!
sleep 0.3
r=$(mutate '"action":"cancel","queue":"slow","dry_run":true')
expect_eq "cancel dry run" "$(jq -c '[.matched, .changed, .stopping]' <<<"$r")" '[3,1,2]'
r=$(mutate '"action":"cancel","queue":"slow"')
expect_eq "cancel" "$(jq -c '[.matched, .changed, .stopping, .skipped]' <<<"$r")" '[3,1,2,{}]'
r=$(mutate "\"action\":\"cancel\",\"ids\":[$parent]")
expect_eq "cancel a parent" "$(jq -c '[.matched, .changed]' <<<"$r")" '[1,1]'
wait "$waitpid" || true
wait "$waitpid2" || true
expect_eq "a held wait on a running job is answered" "$(jq -r '.jobs[0].state' "$T/wait.out")" cancelled
expect_eq "a held wait on a pending job is answered" "$(jq -r '.jobs[0].state' "$T/wait2.out")" cancelled
poll_until "the slow jobs cancelled" "[ \"\$(q 'select count(*) from jobs where queue=\"slow\" and state=6')\" = 3 ]"
expect_eq "the child cancelled by the cascade" "$(q "select state from jobs where id=$child")" 6
counts_agree "cancel"
ok "cancel: pending cancelled, running stopped where they run, held waits answered, dependents cascade"

# ---- delete: finished jobs with their history ----
r=$(mutate '"action":"delete","state":["cancelled","dead"],"dry_run":true')
dry=$(jq -c '[.matched, .changed]' <<<"$r")
n=$(q "select count(*) from jobs where state in (5, 6)")
expect_eq "delete dry run" "$dry" "[$n,$n]"
r=$(mutate '"action":"delete","state":["cancelled","dead"]')
expect_eq "delete" "$(jq -c '[.matched, .changed]' <<<"$r")" "$dry"
expect_eq "deleted" "$(q "select count(*) from jobs where state in (5, 6)")" 0
expect_eq "no history left behind" "$(q "select count(*) from attempts where job_id not in (select id from jobs)")" 0
counts_agree "delete"
ok "delete: finished jobs and their history; dry run equals the action"

# ---- 5,000 jobs in chunks of 1,000 while pings are answered ----
seq 1 5000 | jq -c -n '{op: "submit_batch", queue: "bulk",
    jobs: [inputs | {payload: ., delay: "1h"}]}' >"$T/batch.json"
raw_file "$T/batch.json" | jq -e '.ok' >/dev/null || fail "submit_batch of 5000"
r=$(mutate '"action":"cancel","queue":"bulk","state":"scheduled"')
expect_eq "5000 cancelled" "$(jq -c '[.changed]' <<<"$r")" '[5000]'
grep -q 'event=jobs_mutated action=cancel dry_run=false queue=bulk matched=5000 changed=5000 .*chunks=5 ' "$LOG" ||
    fail "the cancel of 5000 did not take 5 chunks: $(grep jobs_mutated "$LOG" | tail -1)"
counts_agree "cancel of 5000"
mutate '"action":"retry","queue":"bulk","state":"cancelled"' >"$T/bulk.out" &
mpid=$!
pings=0 slowest=0
while kill -0 "$mpid" 2>/dev/null || [ "$pings" -lt 3 ]; do
    t0=$(date +%s%N)
    expect_eq "ping during the mutate" "$(raw '{"op":"ping"}' | jq -r .ok)" true
    ms=$((($(date +%s%N) - t0) / 1000000))
    [ "$ms" -le "$slowest" ] || slowest=$ms
    pings=$((pings + 1))
done
wait "$mpid"
expect_eq "5000 retried" "$(jq -c '[.matched, .changed]' "$T/bulk.out")" '[5000,5000]'
[ "$slowest" -lt 2000 ] || fail "a ping took $slowest ms during the mutate"
grep -q 'event=jobs_mutated action=retry dry_run=false queue=bulk matched=5000 changed=5000 .*chunks=5 ' "$LOG" ||
    fail "the retry of 5000 did not take 5 chunks: $(grep jobs_mutated "$LOG" | tail -1)"
expect_eq "bulk ready" "$(q "select count(*) from jobs where queue='bulk' and state=1")" 5000
counts_agree "retry of 5000"
ok "5,000 jobs retried in chunks of 1,000 ($pings pings answered meanwhile, the slowest in $slowest ms)"

# ---- paging: limit, after and max_id; jobs submitted after the start are left alone ----
r=$(mutate '"action":"set_priority","queue":"bulk","priority":3,"limit":1000')
expect_eq "one call of at most 1000" "$(jq -c '[.changed, (.next != null)]' <<<"$r")" '[1000,true]'
next=$(jq .next <<<"$r")
maxid=$(jq .max_id <<<"$r")
raw '{"op":"submit","queue":"bulk","payload":"late"}' >/dev/null
total=1000
while [ "$next" != null ]; do
    r=$(mutate "\"action\":\"set_priority\",\"queue\":\"bulk\",\"priority\":3,\"limit\":1000,\"after\":$next,\"max_id\":$maxid")
    total=$((total + $(jq .changed <<<"$r")))
    next=$(jq .next <<<"$r")
done
expect_eq "every page" "$total" 5000
expect_eq "the late job untouched" "$(q "select priority from jobs where payload='\"late\"'")" 0
ok "paging with limit, after and max_id covers every job once; a job submitted later is left alone"

# ---- the CLI ----
if cli mutate --help >/dev/null 2>&1; then
    out=$(cli mutate --queue bulk --state ready --priority 5 --dry-run)
    grep -q "would change 5001" <<<"$out" || fail "jobq mutate --dry-run: $out"
    out=$(cli mutate --queue bulk --state ready --priority 5)
    grep -q "changed 5001" <<<"$out" || fail "jobq mutate: $out"
    expect_eq "priorities set" "$(q "select count(*) from jobs where queue='bulk' and priority=5")" 5001
    out=$(cli mutate --queue bulk --cancel --json)
    expect_eq "jobq mutate --json" "$(jq -c '[.changed]' <<<"$out")" '[5001]'
    cli mutate --cancel 2>"$T/err.txt" && fail "jobq mutate without a filter exited 0"
    if command -v script >/dev/null; then
        # On a terminal: a dry run for the total, then a bar over calls of 2,000 jobs.
        out=$(script -qec "$JOBQ --url $SOCK mutate --queue bulk --retry" /dev/null | tr '\r' '\n')
        grep -q '^\[##############################\] 5001/5001 jobs 100%' <<<"$out" ||
            fail "no progress bar on a terminal: $out"
        grep -q "changed 5001 of 5001" <<<"$out" || fail "jobq mutate on a terminal: $out"
        expect_eq "calls of the walk" "$(grep -c 'event=jobs_mutated action=retry dry_run=false queue=bulk' "$LOG")" 4
    fi
    counts_agree "the CLI's mutates"
    ok "jobq mutate: --dry-run, an action, --json; no filter refused"
fi

# ---- the read token may not mutate ----
stop_jobqd
SERVER_EXTRA='auth_token = admin-0123456789abcdef
read_token = reader-0123456789abcdef' write_config '[queue.bulk]'
start_jobqd
r=$(mutate '"action":"cancel","queue":"bulk","dry_run":true,"token":"reader-0123456789abcdef"')
expect_eq "read token" "$(jq -r .error.code <<<"$r")" forbidden
r=$(mutate '"action":"cancel","queue":"bulk","dry_run":true,"token":"admin-0123456789abcdef"')
expect_eq "admin token" "$(jq -r .ok <<<"$r")" true
ok "the read token is forbidden to mutate, even a dry run"
stop_jobqd
