#!/usr/bin/env bash
# it_kill9.sh: producers submit over several connections; jobqd is killed with SIGKILL in the
# middle; after a restart every acknowledged job is there, with its payload.
. "$(dirname "$0")/lib.sh"
write_config '[queue.email]'  # no command: jobs stay ready

for round in 1 2 3; do
    start_jobqd
    # 4 producers, each appends "id payload" for every acknowledged submit.
    pids=()
    for p in 1 2 3 4; do
        (
            for i in $(seq 1 100000); do
                id=$(cli submit email "{\"p\":$p,\"i\":$i,\"r\":$round}" 2>/dev/null) || exit 0
                echo "$id $p $i $round" >>"$T/acked.$p"
            done
        ) &
        pids+=($!)
    done
    # Kill once 50 more acknowledgements arrived (an event: tail -F follows the files).
    touch "$T"/acked.{1,2,3,4}
    before=$(cat "$T"/acked.* | wc -l)
    timeout 60 tail -q -F -n 0 "$T"/acked.{1,2,3,4} 2>/dev/null | head -n 50 >/dev/null || true
    kill9_jobqd
    for pid in "${pids[@]}"; do wait "$pid" || true; done
    after=$(cat "$T"/acked.* | wc -l)
    [ "$after" -gt "$before" ] || fail "round $round: no submit was acknowledged"
    ok "round $round: killed -9 after $((after - before)) acknowledged submits"
done

start_jobqd
total=0
while read -r id p i round; do
    r=$(raw "{\"op\":\"get\",\"id\":$id}")
    expect_eq "job $id payload" "$(jq -c .job.payload <<<"$r")" "{\"p\":$p,\"i\":$i,\"r\":$round}"
    total=$((total + 1))
done < <(cat "$T"/acked.*)
stored=$(raw '{"op":"stats"}' | jq -r .queues.email.ready)
[ "$stored" -ge "$total" ] || fail "stats count $stored jobs, fewer than $total acknowledged"
ok "all $total acknowledged jobs survived 3 kills (stored: $stored)"
stop_jobqd
