#!/usr/bin/env bash
# it_privileges.sh: jobqd refuses to run as root without [server] user; with it, jobqd opens its
# listeners and database as root, then runs as that account (every id, no supplementary root
# group): exec handlers run as it, files jobqd creates belong to it, submits persist across a
# restart even when root took the database files over in between. Started as another account,
# user must name that account. Needs root: exits 77 (skipped) otherwise.
if [ "$(id -u)" != 0 ]; then
    echo "skipped: it_privileges needs root (it starts jobqd as root and switches accounts)"
    exit 77
fi
. "$(dirname "$0")/lib.sh"

U=$RUN_USER
UID_WANT=$(id -u "$U")
GID_WANT=$(id -g "$U")
[ "$UID_WANT" != 0 ] || fail "JOBQ_TEST_USER must not be root"

# run_refused WHAT PATTERN: jobqd on $T/jobq.conf exits 1 at once with PATTERN on stderr.
run_refused() {
    local rc=0
    timeout 30 "$JOBQD" -c "$T/jobq.conf" 2>"$T/refused.err" || rc=$?
    expect_eq "$1: jobqd exit status" "$rc" 1
    grep -q -- "$2" "$T/refused.err" || fail "$1: no '$2' in: $(cat "$T/refused.err")"
    echo "  $1: $(cat "$T/refused.err")"
}

# (a) Root without user, an unknown account, user = root: refused with what to do.
SERVER_EXTRA="user = root" write_config
grep -v '^user = ' "$T/jobq.conf" >"$T/nouser.conf"
mv "$T/nouser.conf" "$T/jobq.conf"
run_refused "root without user" "will not run as root: set \[server\] user = NAME"
[ ! -e "$T/jobq.db" ] || fail "jobqd created the database before refusing to run as root"
SERVER_EXTRA="user = no-such-jobq-account" write_config
run_refused "unknown account" 'user = "no-such-jobq-account": no such account: create it'
rc=0
"$JOBQD" --check-config -c "$T/jobq.conf" 2>"$T/check.err" || rc=$?
expect_eq "--check-config with an unknown account: exit status" "$rc" 1
grep -q "no such account" "$T/check.err" || fail "--check-config said: $(cat "$T/check.err")"
SERVER_EXTRA="user = root" write_config
run_refused "user = root" "is root (uid 0): name an unprivileged account"
ok "as root: no user, an unknown user and user = root are refused with what to do"

# (b) user = $U: every id of jobqd is the account's, handlers run as it, files are its own.
cat >"$T/ids.sh" <<SH
#!/bin/sh
echo "\$(id -u) \$(id -g) \$(id -G) \$HOME \$USER"
touch "$T/made-by-handler"
SH
chmod +x "$T/ids.sh"
QUEUES="[queue.ids]
command = $T/ids.sh
[queue.hold]"
write_config "$QUEUES"
start_jobqd
status_ids() { awk -v k="$1:" '$1 == k { print $2, $3, $4, $5 }' "/proc/$JOBQD_PID/status"; }
expect_eq "Uid of jobqd (real, effective, saved, fs)" "$(status_ids Uid)" \
    "$UID_WANT $UID_WANT $UID_WANT $UID_WANT"
expect_eq "Gid of jobqd (real, effective, saved, fs)" "$(status_ids Gid)" \
    "$GID_WANT $GID_WANT $GID_WANT $GID_WANT"
groups=$(awk '$1 == "Groups:" { $1 = ""; print }' "/proc/$JOBQD_PID/status")
for g in $groups; do
    [ "$g" != 0 ] || fail "jobqd kept the supplementary group root: Groups:$groups"
done
grep -q "event=ready .*uid=$UID_WANT gid=$GID_WANT" "$LOG" || fail "the ready line does not name uid $UID_WANT"
ok "jobqd runs as $U: Uid $(status_ids Uid), Gid $(status_ids Gid), Groups:$groups"

id=$(cli submit ids '{}')
r=$(raw "{\"op\":\"wait\",\"id\":$id,\"timeout\":\"60s\"}")
expect_eq "handler job state" "$(jq -r '.jobs[0].state' <<<"$r")" succeeded
read -r h_uid h_gid h_rest <<<"$(jq -r '.jobs[0].result' <<<"$r")"
expect_eq "id -u of the exec handler" "$h_uid" "$UID_WANT"
expect_eq "id -g of the exec handler" "$h_gid" "$GID_WANT"
home=$(getent passwd "$U" | cut -d: -f6)
expect_eq "groups, HOME and USER of the exec handler" "$h_rest" "$(id -G "$U") $home $U"
owner() { stat -c '%U:%G' "$1"; }
want="$U:$(id -gn "$U")"
expect_eq "owner of the file the handler created" "$(owner "$T/made-by-handler")" "$want"
ok "the exec handler runs as $U (id -u $h_uid) with HOME=$home"

for f in jobq.db jobq.db-wal jobq.db-shm jobqd.sock; do
    expect_eq "owner of $f" "$(owner "$T/$f")" "$want"
done
cli backup "$T/backup.db" >/dev/null
expect_eq "owner of a backup jobqd wrote" "$(owner "$T/backup.db")" "$want"
ok "the database, its -wal and -shm, the ipc socket and a backup belong to $U"

# (c) Submits persist; after a SIGKILL and root taking the database files over, the next
# start hands them back before the switch and keeps writing.
for i in 1 2 3 4 5; do cli submit hold "{\"n\":$i}" >/dev/null; done
kill9_jobqd
for f in jobq.db jobq.db-wal jobq.db-shm; do
    chown root:root "$T/$f"
done
start_jobqd
for f in jobq.db jobq.db-wal jobq.db-shm; do
    expect_eq "owner of $f after a restart" "$(owner "$T/$f")" "$want"
done
expect_eq "jobs held after the restart" "$(raw '{"op":"stats"}' | jq '.queues.hold.ready')" 5
batch=$(for i in $(seq 1 200); do printf '{"payload":{"m":%d}},' "$i"; done)
raw "{\"op\":\"submit_batch\",\"queue\":\"hold\",\"jobs\":[${batch%,}]}" | jq -e .ok >/dev/null
stop_jobqd
expect_eq "jobs in the database" \
    "$(sqlite3 "$T/jobq.db" "SELECT count(*) FROM jobs WHERE queue = 'hold'")" 205
ok "submits persist across a SIGKILL; files root took over are handed back before the switch"

# (d) A database in a directory the account cannot write: jobqd still runs (the files are
# open before the switch) and says how to fix the directory.
mkdir "$T/rootdir"
chown root:root "$T/rootdir"
chmod 0755 "$T/rootdir"
write_config "$QUEUES"
sed -i "s|^database = .*|database = $T/rootdir/jobq.db|" "$T/jobq.conf"
start_jobqd
grep -q "event=database_dir_not_writable .*user=$U" "$LOG" || fail "no warning about the directory"
for i in $(seq 1 10); do cli submit hold "{\"d\":$i}" >/dev/null; done
expect_eq "jobs after submits in a root-owned directory" \
    "$(raw '{"op":"stats"}' | jq '.queues.hold.ready')" 10
stop_jobqd
ok "a root-owned database directory: jobqd writes through the files it opened and warns"

# (e) A database reached through a symbolic link is refused: root hands no file it did not
# check to the account (nor what the link points to). jobqd stops cleanly after opening its
# listeners.
chown root:root "$T/rootdir/jobq.db"
ln -s "$T/rootdir/jobq.db" "$T/link.db"
sed -i "s|^database = .*|database = $T/link.db|" "$T/jobq.conf"
run_refused "database through a symbolic link" "is a symbolic link"
expect_eq "owner of the link's target" "$(owner "$T/rootdir/jobq.db")" root:root
ok "a symbolic link as the database is refused before the switch"

# (f) Started as the account itself: user = that account is fine, another one is an error.
AS_USER=(setpriv --reuid="$U" --regid="$GID_WANT" --init-groups)
write_config "$QUEUES"
sed -i "s|^database = .*|database = $T/self.db|" "$T/jobq.conf"
LOG="$T/self.log"
"${AS_USER[@]}" "$JOBQD" -c "$T/jobq.conf" >/dev/null 2>"$LOG" &
JOBQD_PID=$!
timeout 60 grep -q -m1 'event=ready' <(tail -F -n +1 "$LOG" 2>/dev/null) ||
    fail "jobqd started as $U with user = $U did not become ready"
expect_eq "Uid of jobqd started as $U" "$(status_ids Uid)" "$UID_WANT $UID_WANT $UID_WANT $UID_WANT"
expect_eq "a job run by jobqd started as $U" \
    "$(cli submit ids '{}' --wait >/dev/null && raw '{"op":"stats"}' | jq '.queues.ids.succeeded')" 1
stop_jobqd
other=daemon
[ "$other" != "$U" ] || other=bin
SERVER_EXTRA="user = $other" write_config
rc=0
"${AS_USER[@]}" timeout 30 "$JOBQD" -c "$T/jobq.conf" 2>"$T/other.err" || rc=$?
expect_eq "jobqd as $U with user = $other: exit status" "$rc" 1
grep -q "only root can switch accounts" "$T/other.err" || fail "as $U with user = $other: $(cat "$T/other.err")"
echo "  as $U with user = $other: $(cat "$T/other.err")"
ok "started as $U: user = $U is accepted, user = $other is refused"
