#!/usr/bin/env bash
# it_schedules.sh: [schedule.NAME] sections: a new schedule starts from now; ticks missed
# while jobqd was down run once (missed = run_once) or not at all (skip), and never again on
# the next restart; the running daemon fires the next minute's tick; `jobq schedules` lists
# them; a bad cron expression or time zone stops jobqd at start with the line to fix.
. "$(dirname "$0")/lib.sh"

DB="$T/jobq.db"
q() { sqlite3 -cmd '.timeout 5000' "$DB" "$1"; }
SCHEDULES='[queue.sq]
[schedule.tick]
cron = * * * * *
queue = sq
payload = {"report": "minutely"}
[schedule.skipper]
cron = * * * * *
queue = sq
missed = skip
[schedule.paris]
cron = 0 9 * * mon-fri
timezone = Europe/Paris
queue = sq'
write_config "$SCHEDULES"
start_jobqd
expect_eq "jobs of new schedules" "$(q "select count(*) from jobs")" 0
out=$(cli schedules --json)
expect_eq "schedules listed" "$(jq -c '[.schedules[].name]' <<<"$out")" '["tick","skipper","paris"]'
jq -e '.schedules[] | select(.name == "paris") | .timezone == "Europe/Paris" and .next > 0' \
    <<<"$out" >/dev/null || fail "schedules: $out"
cli schedules | grep -q "^paris .*0 9 \* \* mon-fri .*Europe/Paris" ||
    fail "schedules text: $(cli schedules)"
# None has fired yet: no last tick (not jobqd's start time), and the table says so.
expect_eq "last_tick of schedules that never fired" "$(jq -c '[.schedules[].last_tick]' <<<"$out")" \
    '[null,null,null]'
cli schedules | grep -q "^paris .*Europe/Paris *sq *run_once *never " ||
    fail "schedules text of a schedule that never fired: $(cli schedules)"
stop_jobqd
start_jobqd
expect_eq "last_tick after a restart, still never fired" \
    "$(cli schedules --json | jq -c '[.schedules[] | select(.name == "paris") | .last_tick]')" '[null]'
ok "a schedule that never fired has no last tick, across a restart"
stop_jobqd

# jobqd was down for three minutes: tick runs the latest missed tick once, skipper none.
# (On a slow machine the next minute may come while this runs: jobs of ticks after the start
# are the running daemon's, counted apart.)
now=$(($(date +%s) * 1000))
q "insert or replace into schedules (name, last_tick) values ('tick', $now - 180000), ('skipper', $now - 180000)"
start_jobqd
latest=$(((now / 60000) * 60000))
tick_of="cast(substr(key, instr(substr(key, 10), ':') + 10) as integer)"
missed() { q "select count(*) from jobs where key like 'schedule:$1:%' and $tick_of <= $now"; }
expect_eq "missed ticks run once" "$(missed tick)" 1
key=$(q "select key from jobs where key like 'schedule:tick:%' order by id limit 1")
[ "${key#schedule:tick:}" -ge $((latest - 60000)) ] || fail "the missed job is for an old tick: $key"
expect_eq "payload" "$(q "select payload from jobs where key = '$key'")" '{"report":"minutely"}'
expect_eq "missed ticks skipped" "$(missed skipper)" 0
[ "$(q "select last_tick from schedules where name = 'skipper'")" -ge $((latest - 60000)) ] ||
    fail "skipper's last tick did not move on"
stop_jobqd
start_jobqd
expect_eq "no second run after another restart" "$(missed tick)" 1
out=$(cli schedules --json)
jq -e --argjson l "$((latest - 60000))" '[.schedules[] | select(.name != "paris") | .last_tick >= $l] == [true, true]' \
    <<<"$out" >/dev/null || fail "last_tick of schedules that fired or skipped: $out"
ok "missed ticks: run_once submitted 1 job, skip none; a restart adds nothing"

# The running daemon fires the next minute: one more job for tick and one for skipper.
JOBQ_POLL_TIMEOUT=90 poll_until "the next minute's tick" \
    "[ \$(q \"select count(*) from jobs where key like 'schedule:skipper:%'\") -ge 1 ]"
poll_until "tick's job of the same minute" \
    "[ \$(q \"select count(*) from jobs where key like 'schedule:tick:%'\") -ge 2 ]"
t1=$(q "select max(run_at) from jobs where key like 'schedule:skipper:%'")
expect_eq "the tick is on a minute" "$((t1 % 60000))" 0
grep -q "event=schedule_fired schedule=tick" "$LOG" || fail "no schedule_fired line in the log"
stop_jobqd
expect_eq "one job per schedule and tick" \
    "$(q "select count(*) from (select key from jobs where key like 'schedule:%' group by key having count(*) > 1)")" 0
ok "the running daemon fired the next minute's tick once per schedule"

# Bad schedules stop jobqd at start with the line to fix.
bad_start() {
    write_config "[queue.sq]
[schedule.bad]
queue = sq
$1"
    local rc=0
    "$JOBQD" -c "$T/jobq.conf" 2>"$T/bad.log" || rc=$?
    [ "$rc" -ne 0 ] || fail "jobqd started with: $1"
    grep -q "$2" "$T/bad.log" || fail "message for '$1': $(cat "$T/bad.log")"
}
bad_start "cron = 61 * * * *" "jobq.conf:[0-9]*: \[schedule.bad\] cron = \"61 \* \* \* \*\": field 1"
bad_start "cron = * * * * *
timezone = Mars/Base" "unknown time zone \"Mars/Base\""
bad_start "cron = * * * * *
missed = sometimes" "expected run_once"
bad_start "timezone = UTC" "needs a cron expression"
ok "bad cron, time zone and missed values are refused with the line"
