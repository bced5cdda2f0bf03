#!/usr/bin/env bash
# it_fsync_rule.sh: fsync only where a job could be lost. jobqd runs with the crashvfs module
# holding writes until their sync and counting the syncs (reported at exit). Against the syncs
# of a start and a stop alone: 50 single submits (each acknowledged, so each waits for a sync
# of its own commit) cost at least 50 syncs; 50 jobs submitted in one batch, then fetched and
# acked one at a time (claims and outcomes: relaxed commits), cost the batch's sync and next
# to nothing more. /metrics counts the commits of each kind. Then the pipeline: with a submit's
# sync held at the module's gate (an event, not a sleep), a fetch, an ack and a read are
# answered while the submit is not, and the submit is answered once the sync is let go.
. "$(dirname "$0")/../lib.sh"
if [ -z "${JOBQ_CRASHVFS_PRELOAD:-}" ]; then
    echo "SKIP [$TEST_NAME]: JOBQ_CRASHVFS_PRELOAD is empty: ctest sets it to the crashvfs module"
    exit 77
fi
N=50
SERVER_EXTRA="http = 127.0.0.1:0"
write_config '[queue.remote]'

# vfs_run WORK: starts jobqd with the module, runs the shell function WORK, stops jobqd and
# sets SYNCS to the syncs it made.
vfs_run() {
    STARTS=$((STARTS + 1))
    LOG="$T/jobqd.$STARTS.log"
    env LD_PRELOAD="$JOBQ_CRASHVFS_PRELOAD" JOBQ_CRASHVFS_HOLD=1 \
        JOBQ_CRASHVFS_SYNC_GATE="$T/gate" "$JOBQD" -c "$T/jobq.conf" 2>"$LOG" &
    JOBQD_PID=$!
    timeout 60 grep -q -m1 'event=ready' <(tail -F -n +1 "$LOG" 2>/dev/null) ||
        fail "jobqd with the module did not become ready"
    HTTP=http://127.0.0.1:$(grep -o 'event=http_listen addr=127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*://')
    "$1"
    stop_jobqd
    SYNCS=$(sed -n 's/^crashvfs: exit: .* syncs=\([0-9]*\).*/\1/p' "$LOG")
    [ -n "$SYNCS" ] || fail "the module did not report its syncs in $LOG"
}
commits() { curl -s "$HTTP/metrics" | awk -v k="jobq_store_commits_total{fsync=\"$1\"}" '$1 == k {print $2}'; }

nothing() { :; }
singles() {
    for i in $(seq 1 $N); do
        cli submit remote "{\"i\":$i}" >/dev/null
    done
}
worked() {
    seq 1 $N | sed 's/.*/{"i":&}/' | cli submit remote --batch - >/dev/null
    local before i r lease id
    before=$(commits no)
    for i in $(seq 1 $N); do
        r=$(raw '{"op":"fetch","queue":"remote","timeout":0}')
        id=$(jq -r '.jobs[0].id' <<<"$r")
        lease=$(jq -r '.jobs[0].lease' <<<"$r")
        [ "$id" != null ] || fail "fetch $i found no job: $r"
        r=$(raw "{\"op\":\"ack\",\"id\":$id,\"lease\":\"$lease\"}")
        [ "$(jq -r .job.state <<<"$r")" = succeeded ] || fail "ack $i: $r"
    done
    UNSYNCED=$(($(commits no) - before))
}

# pipeline: a submit waits at the gate in its sync; relaxed ops and reads go on meanwhile.
pipeline() {
    seq 1 3 | sed 's/.*/{"w":&}/' | cli submit remote --batch - >/dev/null # the log exists
    mkfifo "$T/gate"
    cli submit remote '{"held":1}' >"$T/held.out" 2>&1 &
    local held=$! r id lease
    CLEANUP_PIDS+=($held)
    timeout 20 grep -q -m1 '^crashvfs: sync of .* held' <(tail -F -n +1 "$LOG" 2>/dev/null) ||
        fail "the submit's sync never reached the gate"
    r=$(raw '{"op":"fetch","queue":"remote","timeout":0}') ||
        fail "a fetch was not answered while a submit's sync was held (it waits behind it)"
    id=$(jq -r '.jobs[0].id' <<<"$r")
    lease=$(jq -r '.jobs[0].lease' <<<"$r")
    [ "$id" != null ] || fail "a fetch found no job while a submit's sync was held: $r"
    r=$(raw "{\"op\":\"ack\",\"id\":$id,\"lease\":\"$lease\"}") ||
        fail "an ack was not answered while a submit's sync was held (it waits behind it)"
    [ "$(jq -r .job.state <<<"$r")" = succeeded ] ||
        fail "an ack did not succeed while a submit's sync was held: $r"
    r=$(raw "{\"op\":\"get\",\"id\":$id}") ||
        fail "a get was not answered while a submit's sync was held (it waits behind it)"
    [ "$(jq -r .job.state <<<"$r")" = succeeded ] ||
        fail "a get did not see the ack while a submit's sync was held: $r"
    alive "$held" && [ ! -s "$T/held.out" ] ||
        fail "the submit was answered before the fsync covering it returned: $(cat "$T/held.out")"
    exec 3>"$T/gate" # the module's open returns
    rm -f "$T/gate"  # the next syncs pass
    printf x >&3
    exec 3>&-
    wait "$held" || fail "the held submit failed once its sync returned: $(cat "$T/held.out")"
    grep -q '^[0-9]' "$T/held.out" || fail "the held submit printed no id: $(cat "$T/held.out")"
    grep -q '^crashvfs: sync of .* released' "$LOG" || fail "the module did not release the sync"
}

vfs_run nothing # creates and migrates the database
vfs_run nothing
base=$SYNCS
vfs_run singles
single_syncs=$((SYNCS - base))
vfs_run worked
worked_syncs=$((SYNCS - base))
echo "syncs beyond a start and stop: $N single submits $single_syncs; a batch of $N, then $N fetch+ack $worked_syncs ($UNSYNCED commits without an fsync)"
[ "$single_syncs" -ge "$N" ] || fail "$N acknowledged single submits made only $single_syncs syncs"
[ "$worked_syncs" -le 5 ] || fail "claims and outcomes of $N jobs made $worked_syncs syncs: they wait for an fsync each"
[ "$UNSYNCED" -ge "$N" ] || fail "/metrics counted $UNSYNCED commits without an fsync for $N fetches and acks"
vfs_run pipeline
ok "fsync rule: $N submits $single_syncs syncs; $N claims and $N outcomes $worked_syncs syncs; a fetch, an ack and a get answered while a submit's fsync was held, the submit only after it"
