# lib.sh: helpers for integration tests: a real jobqd in a fresh temp dir, the real CLI.
# Sourced by tests/it_*.sh. ctest passes JOBQD, JOBQ, JOBQ_BENCH, JOBQ_SRC; JOBQ_VALGRIND=1
# runs jobqd under valgrind memcheck (errors and definite leaks fail the test).
set -euo pipefail

: "${JOBQD:?JOBQD must name the jobqd binary}"
: "${JOBQ:?JOBQ must name the jobq binary}"

T=$(mktemp -d "${TMPDIR:-/tmp}/jobq-it.XXXXXX")

# Run as root (as CI does), jobqd refuses to start without [server] user, so every test's
# jobqd switches to $JOBQ_TEST_USER (default nobody) and its handlers run as that account.
# The test directory is shared between the test (root) and that account: it belongs to the
# account's group, setgid so that what the test creates in it does too, group-writable, and
# umask 002 makes the files the test writes (handler scripts, files handlers append to)
# writable by the account.
RUN_USER=
if [ "$(id -u)" = 0 ]; then
    RUN_USER=${JOBQ_TEST_USER:-nobody}
    RUN_GROUP=$(id -gn "$RUN_USER") || {
        echo "FAIL: no account $RUN_USER to run jobqd as (set JOBQ_TEST_USER)" >&2
        exit 1
    }
    chown "$RUN_USER:$RUN_GROUP" "$T"
    chmod 2775 "$T"
    umask 002
fi
SOCK="ipc://$T/jobqd.sock"
export JOBQ_URL="$SOCK"
JOBQD_PID=
TEST_NAME=$(basename "$0" .sh)

# Helper processes a test starts (a fake endpoint, producers): killed at exit.
CLEANUP_PIDS=()

cleanup() {
    local rc=$?
    for pid in "${CLEANUP_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    if [ -n "$JOBQD_PID" ] && kill -0 "$JOBQD_PID" 2>/dev/null; then
        kill -9 "$JOBQD_PID" 2>/dev/null || true
    fi
    if [ $rc -ne 0 ] && [ -n "${LOG:-}" ] && [ -f "$LOG" ]; then
        echo "--- $LOG (last 40 lines) ---" >&2
        tail -n 40 "$LOG" >&2
    fi
    if [ -n "${JOBQ_KEEP_TMP:-}" ]; then
        echo "kept $T" >&2
    else
        rm -rf "$T"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'echo "FAIL [$TEST_NAME]: line $LINENO: command failed: $BASH_COMMAND" >&2' ERR

fail() {
    echo "FAIL [$TEST_NAME]: $*" >&2
    exit 1
}

ok() {
    echo "ok - $*"
}

# expect_eq WHAT GOT WANT
expect_eq() {
    [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

# user_line: the [server] user line jobqd needs when the test runs as root, else nothing.
user_line() {
    [ -z "$RUN_USER" ] || echo "user = $RUN_USER"
}

# write_config [EXTRA_INI]: the config of this test's jobqd; EXTRA_INI (queue sections) is
# appended. $SERVER_EXTRA, if set, holds more [server] lines (and overrides defaults below).
write_config() {
    local extra="${SERVER_EXTRA:-}"
    {
        echo "[server]"
        echo "listen = $SOCK"
        echo "database = $T/jobq.db"
        for kv in "http =" "durability = full" "log_level = debug" "shutdown_grace = 5s" \
            "$(user_line)"; do
            [ -n "$kv" ] || continue
            grep -q "^${kv%% *} " <<<"$extra" || echo "$kv"
        done
        [ -z "$extra" ] || printf '%s\n' "$extra"
        printf '%s\n' "${1:-}"
    } >"$T/jobq.conf"
}

# alive PID: the process exists and is not a zombie waiting for its reaper.
alive() {
    [ -r "/proc/$1/stat" ] || return 1
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

# start_jobqd: starts jobqd on $T/jobq.conf and returns once it logged event=ready. Each
# start logs to its own file, $LOG.
STARTS=0
start_jobqd() {
    [ -f "$T/jobq.conf" ] || write_config
    STARTS=$((STARTS + 1))
    LOG="$T/jobqd.$STARTS.log"
    : >"$LOG"
    local cmd=("$JOBQD" -c "$T/jobq.conf")
    if [ "${JOBQ_VALGRIND:-}" = 1 ]; then
        command -v valgrind >/dev/null || fail "JOBQ_VALGRIND=1 but valgrind is not installed (Debian: valgrind)"
        cmd=(valgrind --quiet --vgdb=no --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
             --show-leak-kinds=definite "${cmd[@]}")
    fi
    "${cmd[@]}" 2>>"$LOG" &
    JOBQD_PID=$!
    # Wait for the ready line: tail -F follows the log as it grows (no fixed sleep).
    if ! timeout 60 grep -q -m1 'event=ready' <(tail -F -n +1 "$LOG" 2>/dev/null); then
        cat "$LOG" >&2
        fail "jobqd did not become ready"
    fi
}

# stop_jobqd: SIGTERM, then checks the exit status is 0.
stop_jobqd() {
    kill -TERM "$JOBQD_PID"
    local rc=0
    wait "$JOBQD_PID" || rc=$?
    JOBQD_PID=
    expect_eq "jobqd exit status after SIGTERM" "$rc" 0
}

# kill9_jobqd: SIGKILL, no clean-up of any kind.
kill9_jobqd() {
    kill -9 "$JOBQD_PID"
    wait "$JOBQD_PID" 2>/dev/null || true
    JOBQD_PID=
}

# cli ARGS...: the real jobq CLI against this test's jobqd.
cli() {
    "$JOBQ" --url "$SOCK" "$@"
}

# How long raw and raw_file wait for a reply, in seconds ($JOBQ_RAW_WAIT, 10): jobqd under
# valgrind is ~20 times slower, so a held wait or a large batch gets more time there.
RAW_WAIT=${JOBQ_RAW_WAIT:-10}
[ "${JOBQ_VALGRIND:-}" != 1 ] || RAW_WAIT=120

# raw JSON: sends one request with jobq-raw (a bare nng REQ socket, no libjobq involved) and
# prints the reply. jobq-raw never sends a request twice (nngcat's REQ resends after 60 s
# without a reply, which stores a slow batch twice); RAW_CLIENT=nngcat uses nngcat instead.
: "${JOBQ_RAW:?JOBQ_RAW must name the jobq-raw binary}"
RAW_CLIENT=${RAW_CLIENT:-jobq-raw}
raw() {
    if [ "$RAW_CLIENT" = nngcat ]; then
        timeout $((RAW_WAIT + 50)) nngcat --req --connect "$SOCK" --ascii \
            --recv-timeout "$RAW_WAIT" --data "$1"
    else
        timeout $((RAW_WAIT + 50)) "$JOBQ_RAW" "$SOCK" "$RAW_WAIT" --data "$1"
    fi
}

# raw_file FILE: like raw, with the request read from FILE.
raw_file() {
    if [ "$RAW_CLIENT" = nngcat ]; then
        timeout $((RAW_WAIT * 3 + 30)) nngcat --req --connect "$SOCK" --ascii \
            --recv-timeout $((RAW_WAIT * 3)) --file "$1"
    else
        timeout $((RAW_WAIT * 3 + 30)) "$JOBQ_RAW" "$SOCK" $((RAW_WAIT * 3)) --file "$1"
    fi
}

# poll_until DESCRIPTION 'SHELL CONDITION': for state that has no event to wait on (a
# breaker's state, retention), re-evaluates the condition every 50 ms for at most $JOBQ_POLL_TIMEOUT s (60).
poll_until() {
    local what=$1 cond=$2
    local deadline=$((SECONDS + ${JOBQ_POLL_TIMEOUT:-60}))
    until eval "$cond"; do
        [ $SECONDS -lt $deadline ] || fail "timed out waiting until $what"
        sleep 0.05
    done
}
