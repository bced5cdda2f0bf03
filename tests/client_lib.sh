# client_lib.sh: sourced by it_client_python.sh and it_client_node.sh after tests/lib.sh: the
# one scenario both clients' test programs go through.
#
# client_tests NAME CMD...: CMD (the test program, e.g. python3 test_jobq.py) runs its "main"
# against a jobqd on $SOCK and $JOBQ_TCP_URL (which the caller exports), its "reconnect"
# across a restart of jobqd (it says "restart me", is told "back", and must go on by itself),
# then its "auth" against a jobqd with an auth_token ($JOBQ_TEST_TOKEN). NAME names it in
# the output.
client_tests() {
    local name=$1 t0 line
    shift
    # Remote-worker queues (no command) retry after 10..50 ms; lease: a lease of 2 s.
    local queues="[queue.echo]
command = /bin/cat
[queue.work]
[queue.drain]
backoff_base = 10ms
backoff_max = 50ms
[queue.lease]
lease = 2s
backoff_base = 10ms
backoff_max = 50ms"
    write_config "$queues"
    sed -i "s|^listen = .*|listen = $SOCK, $JOBQ_TCP_URL|" "$T/jobq.conf"
    start_jobqd

    t0=$(date +%s%3N)
    timeout 300 "$@" main || fail "$name main failed"
    ok "$name main in $(($(date +%s%3N) - t0)) ms"

    t0=$(date +%s%3N)
    coproc RECONNECT { timeout 120 "$@" reconnect; }
    local rc_pid=$RECONNECT_PID rc_out rc_in
    CLEANUP_PIDS+=("$rc_pid")
    exec {rc_out}<&"${RECONNECT[0]}" {rc_in}>&"${RECONNECT[1]}"
    read -r -t 30 line <&"$rc_out" || fail "no word from $name reconnect"
    expect_eq "what $name reconnect asks" "$line" "restart me"
    stop_jobqd
    start_jobqd
    echo back >&"$rc_in"
    while read -r -t 60 line <&"$rc_out"; do echo "$line"; done
    wait "$rc_pid" || fail "$name reconnect failed"
    ok "$name reconnect in $(($(date +%s%3N) - t0)) ms"
    stop_jobqd

    local token
    token=$(od -An -N12 -tx1 /dev/urandom | tr -d " \n") # at least 16 characters
    SERVER_EXTRA="auth_token = $token" write_config "$queues"
    start_jobqd
    t0=$(date +%s%3N)
    JOBQ_TEST_TOKEN=$token timeout 60 "$@" auth || fail "$name auth failed"
    ok "$name auth in $(($(date +%s%3N) - t0)) ms"
    stop_jobqd
}
