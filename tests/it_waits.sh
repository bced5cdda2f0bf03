#!/usr/bin/env bash
# it_waits.sh: wait strategies against a real jobqd. Of two jobs that take 4 s and none, a wait
# with --any returns the quick job; with --cancel-rest the other ends cancelled with the reason
# "lost a race to job N", and a loser that was still ready never starts (its handler logs no
# start). --first-failure returns a dead job as soon as it is dead while a slow job keeps
# running. All three strategies work on a group. A client that disconnects while waiting
# frees its slot and cancels nothing.
. "$(dirname "$0")/lib.sh"
: "${JOBQ_HELD:?JOBQ_HELD must name the jobq-held binary}"
for tool in curl jq; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done

# The handler logs "start ID" and then sleeps the payload's "sleep" seconds; "gate" holds
# until $T/release exists; "fail" is a permanent failure (exit 65: dead at once).
cat >"$T/work.sh" <<SH
#!/bin/sh
p=\$(cat)
echo "start \$JOBQ_JOB_ID" >>"$T/runs"
s=\$(printf '%s' "\$p" | sed -n 's/.*"sleep":\([0-9.]*\).*/\1/p')
[ -z "\$s" ] || sleep "\$s"
case "\$p" in *gate*) while [ ! -e "$T/release" ]; do sleep 0.05; done ;; esac
case "\$p" in *fail*) exit 65 ;; esac
exit 0
SH
chmod +x "$T/work.sh"
touch "$T/runs"
SERVER_EXTRA="http = 127.0.0.1:0" write_config "[queue.east]
command = $T/work.sh
concurrency = 4
[queue.west]
command = $T/work.sh
concurrency = 4
[queue.one]
command = $T/work.sh
concurrency = 1
[queue.idle]"
start_jobqd
port=$(grep -o 'event=http_listen addr=127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*://')
HTTP="http://127.0.0.1:$port"
held() { curl -s "$HTTP/metrics" | awk '$1 == "jobq_held_requests" {print $2}'; }
state() { cli get "$1" --json | jq -r .job.state; }
error() { cli get "$1" --json | jq -r .job.error; }
started() { grep -qx "start $1" "$T/runs"; }

# ---- --any: the job that ends first, the other left alone ----
A=$(cli submit west '{"sleep":4}') # the margin holds on a loaded machine
B=$(cli submit east '{"sleep":0}')
rc=0
out=$(cli wait "$A" "$B" --any --json) || rc=$?
expect_eq "exit status of wait --any (the quick job succeeded)" "$rc" 0
expect_eq "the job that answered --any" "$(jq -r .first <<<"$out")" "$B"
expect_eq "its state" "$(jq -r ".jobs[] | select(.id == $B) | .state" <<<"$out")" succeeded
expect_eq "ended" "$(jq -c '[.ended[].id]' <<<"$out")" "[$B]"
expect_eq "pending" "$(jq -c '.pending' <<<"$out")" "[{\"id\":$A,\"state\":\"running\"}]"
expect_eq "cancelled" "$(jq -c .cancelled <<<"$out")" "[]"
cli wait "$A" >/dev/null || fail "job $A (not cancelled) did not succeed"
text=$(cli wait "$A" "$B" --any)
grep -q "^job $B succeeded" <<<"$text" || fail "wait --any on two ended jobs printed: $text"
ok "--any returns the quick job ($B) while the 4 s job ($A) runs on and succeeds"

# ---- --any --cancel-rest: a running loser is cancelled with the reason ----
# The loser holds until released (never, here): it is surely running when the wait is answered.
A=$(cli submit west '{"gate":1}')
B=$(cli submit east '{"sleep":1}')
poll_until "both jobs run" "started $A && started $B"
rc=0
out=$(cli wait "$A" "$B" --any --cancel-rest --json) || rc=$?
expect_eq "exit status" "$rc" 0
expect_eq "the winner" "$(jq -r .first <<<"$out")" "$B"
expect_eq "cancelled" "$(jq -c .cancelled <<<"$out")" "[$A]"
rc=0
cli wait "$A" >/dev/null || rc=$?
expect_eq "wait on the loser (cancelled: exit status 1)" "$rc" 1
expect_eq "the loser's state" "$(state "$A")" cancelled
expect_eq "the loser's error" "$(error "$A")" "lost a race to job $B"
grep -q "event=job_cancelling job=$A .*reason=lost_race winner=$B" "$LOG" ||
    fail "no job_cancelling line for job $A"
ok "--any --cancel-rest: the running loser $A ends cancelled, \"lost a race to job $B\""

# ---- a loser that is still ready never starts ----
# Queue one runs one job at a time: D is ready while C runs. When C ends, its slot is free and
# the queue would claim D; the answer's transaction cancels D first.
# C holds until released, once the wait is held.
C=$(cli submit one '{"gate":1}')
D=$(cli submit one '{"sleep":1}')
poll_until "job $C runs" "started $C"
expect_eq "job $D while $C runs" "$(state "$D")" ready
cli wait "$C" "$D" --any --cancel-rest --json >"$T/race.out" &
WAITER=$!
poll_until "the wait is held" '[ "$(held)" = 1 ]'
touch "$T/release"
wait "$WAITER" || fail "wait --any --cancel-rest on $C and $D failed"
rm -f "$T/release"
out=$(cat "$T/race.out")
expect_eq "the winner" "$(jq -r .first <<<"$out")" "$C"
expect_eq "the loser as it was when the wait was answered" "$(jq -c .pending <<<"$out")" \
    "[{\"id\":$D,\"state\":\"ready\"}]"
expect_eq "the loser in the reply" "$(jq -r ".jobs[] | select(.id == $D) | .state" <<<"$out")" cancelled
expect_eq "the loser's error" "$(error "$D")" "lost a race to job $C"
# E comes after D in the same queue: once E has run, D would have run first had it been
# claimable.
E=$(cli submit one '{}')
cli wait "$E" >/dev/null || fail "job $E did not succeed"
! started "$D" || fail "the ready loser $D started: $(cat "$T/runs")"
expect_eq "the loser's attempts" "$(cli get "$D" --json | jq .job.attempt)" 0
ok "a ready loser ($D) is cancelled in the answer's transaction and never starts"

# ---- --first-failure: the dead job at once, the slow one keeps running ----
G=$(cli submit west '{"gate":1}')
F=$(cli submit east '{"fail":1}')
rc=0
out=$(cli wait "$G" "$F" --first-failure --json) || rc=$?
expect_eq "exit status (the job it returns is dead)" "$rc" 1
expect_eq "the first failure" "$(jq -r .first <<<"$out")" "$F"
expect_eq "its state" "$(jq -r ".jobs[] | select(.id == $F) | .state" <<<"$out")" dead
expect_eq "pending" "$(jq -c .pending <<<"$out")" "[{\"id\":$G,\"state\":\"running\"}]"
expect_eq "the slow job after the answer" "$(state "$G")" running
text=$(cli wait "$G" "$F" --first-failure) && fail "wait --first-failure exited 0 on a dead job"
grep -q "^job $F dead" <<<"$text" || fail "wait --first-failure printed: $text"
grep -q "pending: job $G (running)" <<<"$text" || fail "wait --first-failure printed: $text"
touch "$T/release"
cli wait "$G" >/dev/null || fail "the slow job $G did not succeed"
rm -f "$T/release"
# None failed: answered once all ended, with the last to end; exit status 0.
H1=$(cli submit east '{}')
H2=$(cli submit west '{}')
cli wait "$H1" "$H2" --first-failure >/dev/null || fail "--first-failure on two successes"
ok "--first-failure returns the dead job $F while $G keeps running; with no failure, once all ended"

# ---- the three strategies on a group ----
printf '{"sleep":4}\n{"sleep":0}\n' >"$T/race.ndjson"
sub=$(cli submit east --batch "$T/race.ndjson" --group --json)
read -r GR slow fast <<<"$(jq -r '"\(.group) \(.min_id) \(.max_id)"' <<<"$sub")"
out=$(cli wait --group "$GR" --any --json)
expect_eq "the group's first to end" "$(jq -r .first <<<"$out")" "$fast"
expect_eq "the group in the reply" "$(jq -r .group <<<"$out")" "$GR"
expect_eq "still pending" "$(jq -c '[.pending[].id]' <<<"$out")" "[$slow]"
out=$(cli wait --group "$GR" --json)
expect_eq "the group, all" "$(jq -r '.done, .group.done, .group.counts.succeeded' <<<"$out" | tr '\n' ' ')" "true true 2 "

printf '{"gate":1}\n{"fail":1}\n' >"$T/ff.ndjson"
sub=$(cli submit west --batch "$T/ff.ndjson" --group --json)
read -r GF gated failing <<<"$(jq -r '"\(.group) \(.min_id) \(.max_id)"' <<<"$sub")"
rc=0
out=$(cli wait --group "$GF" --first-failure --cancel-rest --json) || rc=$?
expect_eq "exit status" "$rc" 1
expect_eq "the group's first failure" "$(jq -r .first <<<"$out")" "$failing"
expect_eq "cancelled" "$(jq -c .cancelled <<<"$out")" "[$gated]"
cli wait "$gated" >/dev/null && fail "the gated job was not cancelled"
expect_eq "the gated job's error" "$(error "$gated")" "lost a race to job $failing"
out=$(cli wait --group "$GF" --json) || true
expect_eq "the group once the cancel is recorded" "$(jq -r '.group.counts | "\(.dead) \(.cancelled)"' <<<"$out")" "1 1"
ok "a group: --any ($fast of $slow/$fast), all, and --first-failure --cancel-rest ($failing dead, $gated cancelled)"

# ---- a client that disconnects while waiting frees its slot and cancels nothing ----
hold_open() {
    mkfifo "$T/$1.ctl"
    "$JOBQ_HELD" "$SOCK" 1 distinct "$2" <"$T/$1.ctl" >"$T/$1.out" &
    HELD_PID=$!
    CLEANUP_PIDS+=("$!")
    exec {HELD_FD}>"$T/$1.ctl"
}
X=$(cli submit west '{"gate":1}')
Y=$(cli submit idle '{}')
poll_until "job $X runs" "started $X"
expect_eq "held before" "$(held)" 0
hold_open gone "{\"op\":\"wait\",\"ids\":[$X,$Y],\"return_when\":\"first\",\"cancel_pending\":true,\"timeout\":\"1h\"}"
poll_until "the wait is held" '[ "$(held)" = 1 ]'
exec {HELD_FD}>&-
wait "$HELD_PID" || fail "jobq-held failed"
poll_until "the closed connection's wait is dropped" '[ "$(held)" = 0 ]'
touch "$T/release"
cli wait "$X" >/dev/null || fail "job $X did not succeed"
expect_eq "the other job after the first ended" "$(state "$Y")" ready
expect_eq "its error" "$(error "$Y")" null
! grep -q "reason=lost_race winner=$X" "$LOG" || fail "a dropped wait cancelled jobs"
ok "a client that disconnects while waiting frees its slot; when job $X ends nothing is cancelled"

# ---- libjobq: jobq_wait_ex with a jobq_wait_opts ----
WAITEX=$(dirname "$JOBQ_RAW")/jobq-waitex
P=$(cli submit west '{"sleep":30}') # cancelled long before: the margin holds on a loaded machine
Q=$(cli submit east '{"sleep":0}')
expect_eq "jobq_wait_ex first, cancel_pending" "$("$WAITEX" "$SOCK" first cancel 60000 "$P" "$Q")" "$Q succeeded"
cli wait "$P" >/dev/null && fail "job $P was not cancelled"
expect_eq "the loser's error" "$(error "$P")" "lost a race to job $Q"
expect_eq "jobq_wait_ex all on a group (its first job that did not succeed)" \
    "$("$WAITEX" "$SOCK" all keep 60000 group "$GF")" "$gated cancelled"
rc=0
"$WAITEX" "$SOCK" first cancel 300 "$Y" >/dev/null || rc=$?
expect_eq "jobq_wait_ex on a job that does not end (timed out)" "$rc" 1
expect_eq "that job after the timeout" "$(state "$Y")" ready
ok "jobq_wait_ex: first with cancel_pending ($Q won, $P cancelled), all on a group, a timeout cancels nothing"

stop_jobqd
