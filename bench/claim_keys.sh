#!/usr/bin/env bash
# claim_keys.sh: what per-key fairness costs a claim. jobq-claim-bench on a backlog of $JOBS
# ready jobs (1,000,000) without keys, then over $KEYS group_keys (100,000), then the same
# with key_concurrency = 1; with --pg the same on a throwaway PostgreSQL cluster (tests/pg.sh).
# Prints microseconds per claimed job, claims of 1 and of 64. Opt-in: not part of make test
# nor bench/run.sh (filling a million jobs takes minutes on a small machine).
# Usage: bench/claim_keys.sh [--pg] [BUILD_DIR]   (env: JOBS, KEYS, CLAIMS)
set -euo pipefail
PG=0
if [ "${1:-}" = --pg ]; then
    PG=1
    shift
fi
BUILD=${1:-build}
BIN=$BUILD/bin/jobq-claim-bench
[ -x "$BIN" ] || { echo "claim_keys.sh: no $BIN (cmake --build $BUILD first)" >&2; exit 2; }
JOBS=${JOBS:-1000000} KEYS=${KEYS:-100000} CLAIMS=${CLAIMS:-10000}
T=$(mktemp -d "${TMPDIR:-/tmp}/jobq-claim.XXXXXX")
chmod 755 "$T" # the PostgreSQL cluster runs as another account (tests/pg.sh)
trap 'rm -rf "$T"' EXIT

run() { # run DB_NAME ARGS...: one bench on a new database
    local name=$1
    shift
    if [ $PG = 1 ]; then
        pg_psql -c "CREATE DATABASE $name" >/dev/null
        "$BIN" --db "$(pg_url "$name")" --jobs "$JOBS" --claims "$CLAIMS" "$@"
        pg_psql -c "DROP DATABASE $name" >/dev/null
    else
        "$BIN" --db "$T/$name.db" --jobs "$JOBS" --claims "$CLAIMS" "$@"
        rm -f "$T/$name.db"*
    fi
}

if [ $PG = 1 ]; then
    . "$(dirname "$0")/../tests/pg.sh"
    mkdir "$T/pg"
    pg_init "$T/pg"
    trap 'pg_stop immediate >/dev/null 2>&1 || true; rm -rf "$T"' EXIT
    pg_start
fi
run plain --keys 0
run keyed --keys "$KEYS"
run capped --keys "$KEYS" --cap 1
