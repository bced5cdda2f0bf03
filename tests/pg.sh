# pg.sh: a throwaway PostgreSQL cluster for tests, never a system service: initdb and pg_ctl in
# a temp dir, listening on a unix socket in that dir only (the port only names the socket, so
# parallel tests cannot collide), trust authentication, as an unprivileged account when run as
# root (initdb refuses root): $JOBQ_TEST_USER, default nobody. The approach of
# bench/compare.sh's start_pg, without TCP.
#
# Two uses:
#   . tests/pg.sh; pg_init DIR; pg_start ...   from a test script (it_pg.sh): functions below
#   bash tests/pg.sh -- CMD ARGS...            starts a cluster, runs CMD with JOBQ_TEST_PG_HOST,
#                                              JOBQ_TEST_PG_PORT and JOBQ_TEST_PG_USER set,
#                                              stops the cluster; exits with CMD's status
# Missing PostgreSQL binaries are a failure, not a skip: `make test-deps` installs Debian's
# postgresql. $PGBIN names another bin directory.

# pg_find_bin: sets PGBIN to a directory holding initdb, pg_ctl and psql, or fails.
pg_find_bin() {
    if [ -z "${PGBIN:-}" ]; then
        local d
        d=$(pg_config --bindir 2>/dev/null || true)
        if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
            d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
        fi
        PGBIN=$d
    fi
    local b
    for b in initdb pg_ctl psql; do
        if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/$b" ]; then
            echo "FAIL: PostgreSQL's $b not found (PGBIN=${PGBIN:-unset}): install Debian's" \
                "postgresql (make test-deps does) or set PGBIN" >&2
            return 1
        fi
    done
}

# pg_init DIR: a new cluster in DIR/data (DIR must exist and be empty); sets PG_DIR, PG_PORT,
# PG_AS (the command prefix that runs as the cluster's owner) and PG_URL (its postgres
# database). Does not start it.
pg_init() {
    pg_find_bin || return 1
    PG_DIR=$1
    PG_PORT=${JOBQ_TEST_PG_PORT:-5432}
    PG_AS=()
    if [ "$(id -u)" = 0 ]; then
        local user=${JOBQ_TEST_USER:-nobody}
        id "$user" >/dev/null 2>&1 || {
            echo "FAIL: no account $user to run PostgreSQL as (set JOBQ_TEST_USER)" >&2
            return 1
        }
        chown "$user" "$PG_DIR"
        PG_AS=(runuser -u "$user" --)
    fi
    if ! "${PG_AS[@]}" "$PGBIN/initdb" -D "$PG_DIR/data" -U jobq -A trust -E UTF8 --no-locale \
        --no-sync >"$PG_DIR/initdb.log" 2>&1; then
        echo "FAIL: initdb failed; its last lines:" >&2
        tail -n 5 "$PG_DIR/initdb.log" >&2
        return 1
    fi
    PG_URL=$(pg_url postgres)
}

# pg_url DB: the libpq URL of database DB on the cluster.
pg_url() {
    echo "postgresql://jobq@/$1?host=$PG_DIR&port=$PG_PORT"
}

# pg_start: starts (or starts again) the cluster and waits until it accepts connections.
# fsync is off unless JOBQ_PG_FSYNC=on: functional tests on a shared 2-core machine.
pg_start() {
    if ! "${PG_AS[@]}" "$PGBIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 60 \
        -o "-k $PG_DIR -c listen_addresses='' -p $PG_PORT -c max_connections=40" \
        -o "-c shared_buffers=32MB -c fsync=${JOBQ_PG_FSYNC:-off}" start >"$PG_DIR/pg_ctl.log" 2>&1; then
        echo "FAIL: PostgreSQL did not start; the last lines of its log:" >&2
        tail -n 10 "$PG_DIR/log" >&2
        return 1
    fi
}

# pg_stop [MODE]: stops the cluster (pg_ctl's mode: smart, fast, immediate; default fast).
pg_stop() {
    "${PG_AS[@]}" "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m "${1:-fast}" -w -t 60 stop \
        >>"$PG_DIR/pg_ctl.log" 2>&1
}

# pg_running: whether the cluster's postmaster is up.
pg_running() {
    "${PG_AS[@]}" "$PGBIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1
}

# pg_psql [DB] -c SQL ...: psql on database DB (default postgres), unaligned, no headers.
pg_psql() {
    local db=postgres
    if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
        db=$1
        shift
    fi
    "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U jobq -d "$db" "$@"
}

# Run as a command: a cluster around CMD.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || {
        echo "usage: bash tests/pg.sh -- CMD ARGS..." >&2
        exit 2
    }
    dir=$(mktemp -d "${TMPDIR:-/tmp}/jobq-pg.XXXXXX")
    pg_cleanup() {
        pg_stop immediate || true
        if [ -n "${JOBQ_KEEP_TMP:-}" ]; then
            echo "kept $dir" >&2
        else
            rm -rf "$dir"
        fi
    }
    trap pg_cleanup EXIT
    pg_init "$dir"
    pg_start
    export JOBQ_TEST_PG_HOST=$PG_DIR JOBQ_TEST_PG_PORT=$PG_PORT JOBQ_TEST_PG_USER=jobq
    rc=0
    "$@" || rc=$?
    exit $rc
fi
