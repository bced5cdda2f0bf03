#!/usr/bin/env bash
# filegraph.sh: which files of jobqd call (or take the address of) functions of which other
# files, read from the symbols of a built tree: a file A "calls" B when A's object file
# references a global symbol that B's object file defines. Prints one line per file with the
# files it calls, then the pairs of files that call each other (cycles of two).
#
#   docs/filegraph.sh [BUILD_DIR]          (default: build; build it first: make build)
#   docs/filegraph.sh --check [BUILD_DIR]  exits 1 (printing them) when two files call each
#                                          other (make test runs it: the layers hold)
#
# Only jobqd's own objects count (daemon/ and proto/); libuv, SQLite, nng and libc do not.
set -euo pipefail
check=false
if [ "${1:-}" = --check ]; then
    check=true
    shift
fi
build=${1:-build}
objs=$(find "$build/daemon" "$build/proto" -name '*.c.o' ! -name '*_embedded.c.o' | sort)
[ -n "$objs" ] || { echo "filegraph: no objects under $build (run make build)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src=$(cd "$(dirname "$0")/.." && pwd)
for o in $objs; do
    f=$(basename "$o" .c.o)
    dir=${o#"$build"/}
    dir=${dir%%/*}
    [ -f "$src/$dir/$f.c" ] || continue # an object left from a source since removed
    nm --defined-only -g "$o" | awk -v f="$f" '$2 ~ /^[TDBR]$/ {print $3, f}' >>"$tmp/defs"
    nm -u "$o" | awk -v f="$f" '{print f, $2}' >>"$tmp/uses"
done
sort -u "$tmp/defs" >"$tmp/defs.s"
# caller callee pairs, without self-calls
awk 'NR == FNR {def[$1] = $2; next} ($2 in def) && def[$2] != $1 {print $1, def[$2]}' \
    "$tmp/defs.s" "$tmp/uses" | sort -u >"$tmp/edges"

awk '{e[$1 " " $2] = 1} END {for (k in e) {split(k, p, " "); if (p[1] < p[2] && ((p[2] " " p[1]) in e)) print p[1], "<->", p[2]}}' \
    "$tmp/edges" | sort >"$tmp/pairs"
if $check; then
    if [ -s "$tmp/pairs" ]; then
        echo "filegraph: these files of jobqd call each other (calls go down the layers of" \
            "docs/ARCHITECTURE.md; an event that goes up is a hook the upper module registers):" >&2
        cat "$tmp/pairs" >&2
        exit 1
    fi
    echo "filegraph: no two files of jobqd call each other"
    exit 0
fi
echo "# file: the files it calls"
awk '{calls[$1] = calls[$1] " " $2; n[$1]++} END {for (f in calls) printf "%-10s %2d:%s\n", f, n[f], calls[f]}' \
    "$tmp/edges" | sort
echo
echo "# files that call each other"
cat "$tmp/pairs"
