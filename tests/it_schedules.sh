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
# (On a slow machine, valgrind's, the next minute may come while this runs: the catch-up runs
# the latest tick before jobqd's start and the running daemon the ticks after it, so the
# missed ones are counted up to the start, as its ready line gives it.)
now=$(($(date +%s) * 1000))
q "insert or replace into schedules (name, last_tick) values ('tick', $now - 180000), ('skipper', $now - 180000)"
start_jobqd
latest=$(((now / 60000) * 60000))
now=$(date -d "$(grep -m1 'event=ready' "$LOG" | sed 's/^ts=\([^ ]*\) .*/\1/')" +%s%3N)
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

# ---- schedules managed at runtime ----
# Added, paused, triggered and deleted with `jobq schedules`, they are kept across a restart
# and fire as stated: rt every minute, sleepy never (paused), gone never (deleted), ov not
# while the job it was triggered for still runs (overlap = skip). cfgrt, the config's, may
# be neither replaced nor deleted at runtime.
cat >"$T/hold.sh" <<SH
#!/bin/sh
while [ ! -e "$T/release" ]; do sleep 0.05; done
SH
chmod +x "$T/hold.sh"
write_config "[queue.sq]
[queue.held]
command = $T/hold.sh
[schedule.cfgrt]
cron = * * * * *
queue = sq"
start_jobqd
cli schedules add rt --cron '* * * * *' --queue sq --payload '{"from":"runtime"}' --priority 2 |
    grep -q "^rt: \* \* \* \* \* (UTC) -> sq, next " || fail "schedules add printed something else"
cli schedules add gone --cron '* * * * *' --queue sq >/dev/null
cli schedules add sleepy --cron '* * * * *' --queue sq >/dev/null
cli schedules add ov --cron '* * * * *' --queue held --overlap skip >/dev/null
cli schedules pause sleepy | grep -q "^sleepy: .*, paused," || fail "pause printed something else"
expect_eq "delete" "$(cli schedules delete gone)" "deleted gone"
refused() { # refused WHAT PATTERN ARGS...: the command fails with PATTERN in its message
    local what=$1 pat=$2
    shift 2
    if cli schedules "$@" 2>"$T/err" >/dev/null; then fail "$what was accepted"; fi
    grep -q "$pat" "$T/err" || fail "$what: $(cat "$T/err")"
}
refused "add over a config schedule" "in the config file" add cfgrt --cron '* * * * *' --queue sq
refused "update of a config schedule" "comes from the config file" update cfgrt --priority 1
refused "delete of a config schedule" "comes from the config file" delete cfgrt
refused "add of an existing name" "exists already" add rt --cron '* * * * *' --queue sq
refused "a bad cron" "cron \"61 \* \* \* \*\"" add bad --cron '61 * * * *' --queue sq
refused "a bad time zone" "Mars/Base" add bad --cron '* * * * *' --queue sq --timezone Mars/Base
refused "an unknown queue" "not configured" add bad --cron '* * * * *' --queue nosuch
refused "a bad overlap" "overlap" add bad --cron '* * * * *' --queue sq --overlap never
refused "pause of no schedule" "no schedule" pause gone
ok "runtime schedules: config ones are read-only but for pause, resume and trigger; bad ones refused"

tid=$(cli schedules trigger ov)
[[ "$tid" =~ ^[0-9]+$ ]] || fail "trigger printed '$tid'"
expect_eq "the triggered job's key" "$(q "select key from jobs where id = $tid" | cut -d: -f1-3)" \
    "schedule:ov:trigger"
poll_until "the triggered job runs" "[ \"\$(cli get $tid --json | jq -r .job.state)\" = running ]"
ok "schedules trigger submits one job now"

stop_jobqd
start_jobqd
out=$(cli schedules --json)
expect_eq "schedules after a restart" "$(jq -c '[.schedules[] | [.name, .source, .paused]]' <<<"$out")" \
    '[["cfgrt","config",false],["ov","runtime",false],["rt","runtime",false],["sleepy","runtime",true]]'
jq -e '.schedules[] | select(.name == "rt") | .payload == {"from":"runtime"} and .priority == 2 and
       .overlap == "allow"' <<<"$out" >/dev/null || fail "rt after a restart: $out"
jq -e '.schedules[] | select(.name == "ov") | .overlap == "skip"' <<<"$out" >/dev/null ||
    fail "ov after a restart: $out"
# The next tick (or, if a minute passed while jobqd was down, its catch-up at start): rt
# fires, ov skips its tick while its triggered job runs (again, after the restart).
timeout 90 grep -q -m1 -E "event=schedule_(fired|missed) schedule=rt " <(tail -F -n +1 "$LOG") ||
    fail "rt did not fire"
timeout 30 grep -q -m1 -E "event=schedule_skipped schedule=ov |event=schedule_missed schedule=ov .*run=skipped_overlap" \
    <(tail -F -n +1 "$LOG") || fail "ov did not skip its tick: $(grep schedule= "$LOG")"
ticks() { q "select count(*) from jobs where key glob 'schedule:$1:[0-9]*'"; }
nrt=$(ticks rt)
[ "$nrt" -ge 1 ] || fail "no job of rt's ticks"
expect_eq "rt's job" "$(q "select payload || ' ' || priority from jobs where key glob 'schedule:rt:[0-9]*' limit 1")" \
    '{"from":"runtime"} 2'
expect_eq "jobs of ov's ticks while its job runs" "$(ticks ov)" 0
expect_eq "jobs of the paused schedule" "$(ticks sleepy)" 0
expect_eq "jobs of the deleted schedule" "$(q "select count(*) from jobs where key like 'schedule:gone:%'")" 0
expect_eq "jobs of cfgrt's ticks" "$(ticks cfgrt)" "$nrt"
ok "after a restart: rt fired its tick, ov skipped it (overlap), sleepy (paused) and gone (deleted) did not"

touch "$T/release"
cli wait "$tid" >/dev/null || fail "the triggered job: $(cli get "$tid" --json)"
stop_jobqd
start_jobqd
expect_eq "rt's tick jobs after another restart" "$(ticks rt)" "$nrt"
out=$(cli schedules resume sleepy --json)
jq -e --argjson now "$(($(date +%s) * 1000))" '.schedule.paused == false and .schedule.next > $now' \
    <<<"$out" >/dev/null || fail "resume: $out"
expect_eq "jobs of sleepy when resumed (its paused ticks are skipped)" "$(ticks sleepy)" 0
cli schedules update rt --cron '0 0 1 1 *' --priority 7 >/dev/null
jq -e '.schedules[] | select(.name == "rt") | .cron == "0 0 1 1 *" and .priority == 7' \
    <<<"$(cli schedules --json)" >/dev/null || fail "update: $(cli schedules --json)"
stop_jobqd
start_jobqd
jq -e '[.schedules[] | select(.name == "rt" or .name == "sleepy") | [.cron, .paused]] ==
       [["0 0 1 1 *", false], ["* * * * *", false]]' <<<"$(cli schedules --json)" >/dev/null ||
    fail "update and resume across a restart: $(cli schedules --json)"
expect_eq "rt's tick jobs after its update" "$(ticks rt)" "$nrt"
ok "a restart fires no tick twice; resume and update are kept"
