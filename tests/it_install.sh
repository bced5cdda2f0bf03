#!/usr/bin/env bash
# it_install.sh: `cmake --install` into a fresh prefix gives a libjobq that a program outside
# the tree builds against with pkg-config alone (jobq.pc names its prefix relative to where it
# lies, so the prefix chosen at install time, not at configure time, is the one it points at),
# and that program pings a real jobqd and submits a job.
. "$(dirname "$0")/lib.sh"
if [ -n "${ASAN_OPTIONS:-}" ]; then
    echo "SKIP [$TEST_NAME]: a sanitizer build's libjobq needs its runtime in every program" >&2
    exit 77
fi
for tool in cmake pkg-config cc; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done
BUILD_DIR=$(cd "$(dirname "$JOBQD")/.." && pwd)
PREFIX=$T/prefix
cmake --install "$BUILD_DIR" --prefix "$PREFIX" >"$T/install.log" 2>&1 ||
    fail "cmake --install failed: $(tail -n 5 "$T/install.log")"
pc=$(find "$PREFIX" -name jobq.pc | head -n 1)
[ -n "$pc" ] || fail "no jobq.pc installed under $PREFIX"
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
cflags=$(pkg-config --cflags jobq)
libdir=$(pkg-config --variable=libdir jobq)
expect_eq "includedir is the install prefix's" \
    "$(cd "$(pkg-config --variable=includedir jobq)" && pwd)" "$(cd "$PREFIX/include" && pwd)"
[ -f "$libdir/libjobq.so" ] || fail "pkg-config's libdir $libdir holds no libjobq.so"
ok "jobq.pc points into $PREFIX"

cat >"$T/user.c" <<'C'
#include <stdio.h>
#include <jobq.h>
int main(int argc, char **argv) {
    jobq_client *c;
    int64_t id;
    if (argc < 2 || jobq_client_open(&c, argv[1]) != JOBQ_OK) return 2;
    if (jobq_ping(c) != JOBQ_OK) return 3;
    if (jobq_submit(c, "work", "{\"n\":1}", NULL, &id, NULL) != JOBQ_OK) return 4;
    printf("%lld\n", (long long)id);
    jobq_client_close(c);
    return 0;
}
C
# shellcheck disable=SC2046 # pkg-config's flags are meant to be split
cc -o "$T/user" "$T/user.c" $cflags $(pkg-config --libs jobq) 2>"$T/cc.log" ||
    fail "a program cannot build with pkg-config's flags: $(cat "$T/cc.log")"
ok "a program builds with pkg-config --cflags --libs jobq"

write_config '[queue.work]'
start_jobqd
id=$(LD_LIBRARY_PATH=$libdir "$T/user" "$JOBQ_URL") || fail "the installed libjobq failed (exit $?)"
expect_eq "the job it submitted" "$(cli get "$id" --json | jq -r .job.queue)" work
ok "the installed libjobq pings and submits"
stop_jobqd
