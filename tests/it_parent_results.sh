#!/usr/bin/env bash
# it_parent_results.sh: a job that ran `after` others is handed their results, keyed by parent
# id: JOBQ_PARENT_RESULTS in an exec handler's environment (and a `jobq work` command's),
# "parent_results" in a remote worker's fetch and in a webhook's body (a JSON object payload); a parent that ended before
# the child was submitted and one that ended after both count; the whole DAG of a batch too.
. "$(dirname "$0")/lib.sh"
: "${JOBQ_HOOKD:?JOBQ_HOOKD must name the jobq-hookd test endpoint}"

# Parents print a result naming themselves; a parent with "gate" holds until $T/release.
cat >"$T/parent.sh" <<SH
#!/bin/sh
p=\$(cat)
case "\$p" in *gate*) while [ ! -e "$T/release" ]; do sleep 0.05; done ;; esac
printf 'result-%s' "\$JOBQ_JOB_ID"
SH
# Children write what they were handed.
cat >"$T/child.sh" <<SH
#!/bin/sh
printf '%s' "\${JOBQ_PARENT_RESULTS-unset}" >"$T/child.\$JOBQ_JOB_ID"
SH
chmod +x "$T/parent.sh" "$T/child.sh"

echo 200 >"$T/script"
mkfifo "$T/hookd.out"
"$JOBQ_HOOKD" "$T/script" "$T/hooks.log" >"$T/hookd.out" &
CLEANUP_PIDS+=($!)
read -r _ port <"$T/hookd.out"

write_config "[queue.parent]
command = $T/parent.sh
concurrency = 4
[queue.child]
command = $T/child.sh
[queue.remote]
[queue.hook]
url = http://127.0.0.1:$port/hook"
start_jobqd

# ---- exec: one parent ended before the child's submit, one ends after ----
p1=$(cli submit parent '{"n":1}')
cli wait "$p1" >/dev/null
p2=$(cli submit parent '{"gate":true}')
c=$(cli submit child '{}' --after "$p1,$p2")
expect_eq "child state while a parent runs" "$(cli get "$c" --json | jq -r .job.state)" waiting
touch "$T/release"
cli wait "$c" >/dev/null || fail "child did not succeed: $(cli get "$c" --json)"
got=$(cat "$T/child.$c")
jq -e --arg a "$p1" --arg b "$p2" \
    '.[$a] == "result-\($a)" and .[$b] == "result-\($b)" and length == 2' <<<"$got" >/dev/null ||
    fail "JOBQ_PARENT_RESULTS: '$got'"
ok "an exec child gets JOBQ_PARENT_RESULTS of a parent ended before its submit and one after"

# A job without parents gets no variable.
c0=$(cli submit child '{}')
cli wait "$c0" >/dev/null
expect_eq "JOBQ_PARENT_RESULTS without parents" "$(cat "$T/child.$c0")" unset
ok "a job without parents has no JOBQ_PARENT_RESULTS"

# ---- a whole DAG in one batch: the child names its parent by index ----
cat >"$T/dag.json" <<J
{"op":"submit_batch","jobs":[{"queue":"parent","payload":{"d":1}},
 {"queue":"child","payload":{},"after":[{"batch":0}]}]}
J
r=$(raw_file "$T/dag.json")
jq -e ".ok == true" <<<"$r" >/dev/null || fail "DAG batch: $r"
dp=$(jq -r '.ids[0]' <<<"$r")
dc=$(jq -r '.ids[1]' <<<"$r")
cli wait "$dc" >/dev/null || fail "DAG child: $(cli get "$dc" --json)"
jq -e --arg a "$dp" '.[$a] == "result-\($a)"' "$T/child.$dc" >/dev/null ||
    fail "DAG child's JOBQ_PARENT_RESULTS: $(cat "$T/child.$dc")"
ok "a child of a DAG submitted in one batch gets its parent's result"

# ---- a remote worker's fetch ----
rc=$(cli submit remote '{"r":1}' --after "$p1,$p2")
r=$(raw '{"op":"fetch","queue":"remote","timeout":"5s"}')
jq -e --arg a "$p1" --arg b "$p2" --argjson id "$rc" \
    '.jobs[0].id == $id and .jobs[0].parent_results[$a] == "result-\($a)" and
     .jobs[0].parent_results[$b] == "result-\($b)"' <<<"$r" >/dev/null ||
    fail "fetch without parent_results: $r"
r=$(raw "{\"op\":\"ack\",\"id\":$rc,\"lease\":$(jq .jobs[0].lease <<<"$r"),\"result\":\"remote-done\"}")
jq -e '.ok == true' <<<"$r" >/dev/null || fail "ack: $r"
# The remote job's ack result is a result like any other: a grandchild sees it.
gc=$(cli submit child '{}' --after "$rc")
cli wait "$gc" >/dev/null
jq -e --arg a "$rc" '.[$a] == "remote-done"' "$T/child.$gc" >/dev/null ||
    fail "grandchild of a remote job: $(cat "$T/child.$gc")"
ok "a remote worker's fetch has parent_results, and an ack's result reaches the next child"

# `jobq work` hands them to its command as an exec handler gets them.
wc=$(cli submit remote '{"w":1}' --after "$p1")
"$JOBQ" --url "$SOCK" work remote -- "$T/child.sh" >/dev/null 2>"$T/work.err" &
WORKER=$!
CLEANUP_PIDS+=("$WORKER")
cli wait "$wc" >/dev/null || fail "jobq work's job: $(cli get "$wc" --json) $(cat "$T/work.err")"
kill "$WORKER"
wait "$WORKER" 2>/dev/null || true
jq -e --arg a "$p1" '.[$a] == "result-\($a)" and length == 1' "$T/child.$wc" >/dev/null ||
    fail "jobq work's JOBQ_PARENT_RESULTS: $(cat "$T/child.$wc")"
ok "jobq work passes parent_results on as JOBQ_PARENT_RESULTS"

# ---- a webhook's body ----
hc=$(cli submit hook '{"h":1}' --after "$p1")
cli wait "$hc" >/dev/null || fail "webhook child: $(cli get "$hc" --json)"
body=$(awk -v id="$hc" '$2 == id { $1 = $2 = $3 = $4 = $5 = $6 = ""; print; exit }' "$T/hooks.log")
jq -e --arg a "$p1" '.h == 1 and .parent_results[$a] == "result-\($a)"' <<<"$body" >/dev/null ||
    fail "webhook body: '$body'"
ok "a webhook child's body is its payload with parent_results"

# ---- across a restart ----
p3=$(cli submit parent '{"n":3}')
cli wait "$p3" >/dev/null
stop_jobqd
start_jobqd
c3=$(cli submit child '{}' --after "$p3")
cli wait "$c3" >/dev/null
jq -e --arg a "$p3" '.[$a] == "result-\($a)"' "$T/child.$c3" >/dev/null ||
    fail "after a restart: $(cat "$T/child.$c3")"
ok "parents' results survive a restart"
stop_jobqd
