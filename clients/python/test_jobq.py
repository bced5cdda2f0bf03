"""test_jobq.py: jobq.py against a real jobqd (run by tests/it_client_python.sh).

Modes (argv[1]):
  main          every producer op over ipc:// and tcp://, error codes, a held wait, cancel,
                a Worker of concurrency 4 draining 200 jobs (some failing once), heartbeats
                over a job longer than its lease, a worker killed mid-job (its job comes back
                after the lease); needs $JOBQ_URL (ipc://) and $JOBQ_TCP_URL
  auth          jobqd with auth_token = $JOBQ_TEST_TOKEN: the right token works (a large
                request too), a wrong or missing one is unauthorized
  block-worker  a worker whose handler prints "started ID" and never returns (to be killed)
  reconnect     a Worker and a Client across a restart of jobqd: prints "restart me", reads
                a line once jobqd is back, then both must go on by themselves

Synchronisation is by events (waits, replies, lines read from a pipe), with bounds; a sleep
happens only as a handler's simulated work."""

import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobq  # noqa: E402

URL = os.environ["JOBQ_URL"]


def ok(what):
    print(f"ok - {what}", flush=True)


def expect_error(code, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except jobq.JobqError as e:
        assert e.code == code, f"{fn.__name__}: got {e.code} ({e.message}), want {code}"
        return e
    raise AssertionError(f"{fn.__name__}{args}: no error, want {code}")


def run_worker(w):
    """Starts w.run() in a thread; returns the thread (its error, if any, in t.error)."""
    t = threading.Thread(target=lambda: _run(w, t), daemon=True)
    t.error = None
    t.start()
    return t


def _run(w, t):
    try:
        w.run()
    except BaseException as e:  # noqa: BLE001 (reported by the test that joins)
        t.error = e


def stop_worker(w, t, bound=30):
    w.stop()
    t.join(bound)
    assert not t.is_alive(), "worker did not stop"
    if t.error is not None:
        raise t.error


def main():
    tcp = jobq.Client(os.environ["JOBQ_TCP_URL"])
    c = jobq.Client(URL)

    # ---- transports: the same ops over ipc:// and tcp:// ----
    for cl in (c, tcp):
        assert cl.ping()["version"], "ping"
        r = cl.submit("echo", {"hello": cl.url[:3]})
        assert r["state"] == "ready" and not r["duplicate"], r
        done = cl.wait(r["id"], timeout="20s")
        assert done["done"] and done["jobs"][0]["state"] == "succeeded", done
        assert done["jobs"][0]["result"] == '{"hello":"%s"}' % cl.url[:3], done
    ok("ping, submit, wait over ipc:// and tcp://")

    # ---- submit's options ----
    r = c.submit("work", {"n": 1}, delay="1h", priority=5, max_attempts=3, timeout="5s")
    j = c.get(r["id"])
    assert r["state"] == "scheduled" and j["priority"] == 5 and j["max_attempts"] == 3, j
    assert j["timeout"] == 5000 and j["payload"] == {"n": 1}, j
    assert c.promote(r["id"])["state"] == "ready"
    c.cancel(r["id"])
    k1 = c.submit("work", {"k": 1}, key="order-7")
    k2 = c.submit("work", {"k": 1}, key="order-7")
    assert k2["duplicate"] and k2["id"] == k1["id"], (k1, k2)
    expect_error("key_conflict", c.submit, "work", {"k": 2}, key="order-7")
    c.cancel(k1["id"])
    ok("submit with delay, priority, max_attempts, timeout, key; promote")

    # ---- batches ----
    b = c.submit_batch([{"payload": i} for i in range(5)] + [{"queue": "echo", "payload": "x"}],
                       queue="work")
    assert len(b["ids"]) == 6 and b["duplicates"] == [], b
    assert c.wait(b["ids"][5], timeout="20s")["jobs"][0]["queue"] == "echo"
    before = c.stats(["work"])["work"]["ready"]
    e = expect_error("invalid_argument", c.submit_batch,
                     [{"payload": 1}, {"payload": 2, "priority": "high"}], queue="work")
    assert "1" in e.message, e.message  # names the entry
    assert c.stats(["work"])["work"]["ready"] == before, "a refused batch stored nothing"
    g = c.submit_batch([{"payload": 1}, {"payload": 2}], queue="echo", group=True,
                       on_complete={"queue": "work", "payload": "all done"})
    gw = c.wait(group=g["group"], timeout="20s")
    assert gw["done"] and gw["group"]["on_complete"]["id"], gw
    assert c.get(gw["group"]["on_complete"]["id"])["payload"]["payload"] == "all done"
    for i in b["ids"][:5]:
        c.cancel(i)
    c.cancel(gw["group"]["on_complete"]["id"])
    ok("submit_batch: atomic, names the bad entry; a group with on_complete")

    # ---- errors with their wire codes ----
    expect_error("unknown_queue", c.submit, "no-such-queue", 1)
    expect_error("invalid_argument", c.submit, "work", 1, priority="high")
    expect_error("invalid_argument", c.submit, "work", 1, delay="ten seconds")
    expect_error("not_found", c.get, 999999)
    expect_error("not_found", c.cancel, 999999)
    expect_error("invalid_state", c.cancel, b["ids"][5])  # succeeded already (echo ran it)
    expect_error("unknown_op", c.call, "no_such_op")
    ok("unknown_queue, invalid_argument, not_found, invalid_state, unknown_op")

    # ---- a held wait, answered when its job ends ----
    jid = c.submit("work", "held")["id"]
    t0 = time.monotonic()
    r = c.wait(jid, timeout="300ms")
    assert not r["done"] and r["jobs"][0]["state"] == "ready", r
    assert time.monotonic() - t0 >= 0.29, "a wait on a pending job is held until its timeout"
    # Pipelined on one connection: the wait, then a ping. The ping's reply comes first (the
    # wait is held, and replies are matched by request id), then the ack ends the job and the
    # wait's reply follows.
    conn = c._take(time.monotonic() + 10)
    wait_id = conn.send(b'{"op":"wait","ids":[%d],"timeout":"30s"}' % jid, time.monotonic() + 5)
    ping_id = conn.send(b'{"op":"ping"}', time.monotonic() + 5)
    rid, body = conn.recv(time.monotonic() + 10)
    assert rid == ping_id and b'"version"' in body, (rid, body)
    [f] = c.fetch("work", timeout="5s")
    while f["id"] != jid:  # older jobs of the queue come first: fail them for good
        c.fail(f["id"], f["lease"], "not this one", retry=False)
        [f] = c.fetch("work", timeout="5s")
    c.ack(f["id"], f["lease"], result="acked")
    rid, body = conn.recv(time.monotonic() + 10)
    conn.close()
    assert rid == wait_id and b'"done":true' in body and b'"result":"acked"' in body, body
    # The same through Client.wait from another thread.
    jid = c.submit("work", "held2")["id"]
    got = {}
    th = threading.Thread(target=lambda: got.update(c.wait(jid, timeout="30s")))
    th.start()
    [f] = c.fetch("work", timeout="5s")
    assert f["id"] == jid, f
    c.ack(f["id"], f["lease"])
    th.join(30)
    assert got.get("done") and got["jobs"][0]["state"] == "succeeded", got
    ok("a held wait: times out with done false; answered when its job ends; pipelined ping first")

    # ---- cancel, retry, list ----
    jid = c.submit("work", "to cancel")["id"]
    assert c.cancel(jid)["state"] == "cancelled"
    expect_error("invalid_state", c.cancel, jid)
    assert c.retry(jid)["state"] == "ready"
    assert c.cancel(jid)["state"] == "cancelled"
    page = c.list(queue="work", state="cancelled", limit=2)
    assert len(page["jobs"]) == 2 and page["next"] is not None, page
    rest = c.list(queue="work", state="cancelled", after=page["next"], limit=1000)
    assert all(j["id"] > page["next"] for j in rest["jobs"]) and rest["next"] is None, rest
    ok("cancel, invalid_state on a second cancel, retry, list with paging")

    # ---- a worker of concurrency 4 drains 200 jobs, some failing once ----
    lock = threading.Lock()
    running = [0, 0]  # now, most at once
    runs = {}

    def handler(job):
        n = job.payload["n"]
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
            runs[n] = runs.get(n, 0) + 1
        try:
            time.sleep(0.005)  # the job's work
            if n % 50 == 7:
                raise jobq.Permanent(f"bad input {n}")
            if n % 10 == 3 and job.attempt == 1:
                raise RuntimeError(f"flaky {n}")
            return f"done {n}"
        finally:
            with lock:
                running[0] -= 1

    ids = c.submit_batch([{"payload": {"n": n}} for n in range(200)], queue="drain")["ids"]
    w = jobq.Worker(os.environ["JOBQ_TCP_URL"], ["drain"], handler, concurrency=4)
    t0 = time.monotonic()
    wt = run_worker(w)
    r = c.wait(ids, timeout="120s")
    drained = time.monotonic() - t0
    assert r["done"], "200 jobs drained within 120 s"
    stop_worker(w, wt)
    for n, j in enumerate(r["jobs"]):
        if n % 50 == 7:
            assert j["state"] == "dead" and j["attempt"] == 1, j
            assert j["error"] == f"bad input {n}", j
        elif n % 10 == 3:
            assert j["state"] == "succeeded" and j["attempt"] == 2, j
            assert j["result"] == f"done {n}", j
        else:
            assert j["state"] == "succeeded" and j["attempt"] == 1, j
    h = c.get(ids[3])["attempts"]
    assert [a["kind"] for a in h] == ["error", "success"], h
    assert h[0]["error"] == "RuntimeError: flaky 3", h
    assert running[1] == 4, f"handlers at once: {running[1]}, want 4"
    assert sum(runs.values()) == 220, runs  # 20 fail once; the 4 dead ones ran once
    ok(f"a Worker of concurrency 4 drained 200 jobs ({drained:.2f} s), 20 retried once, "
       f"4 dead by Permanent")

    # ---- group_key, a replaced waiting job, expiry, a snooze and a parent's result ----
    rep1 = c.submit("drain", "v1", key="only-one", dedupe="replace", delay="1h")
    rep2 = c.submit("drain", "v2", key="only-one", dedupe="replace", delay="1h")
    assert rep2["id"] == rep1["id"] and rep2.get("replaced") is True, (rep1, rep2)
    assert c.get(rep1["id"])["payload"] == "v2"
    c.cancel(rep1["id"])
    late = c.submit("drain", "too late", delay="300ms", expires_in="100ms")["id"]
    parent = c.submit("drain", {"step": "parent"}, group_key="tenant-1")["id"]
    child = c.submit("drain", {"step": "child"}, after=[parent])["id"]
    nap = c.submit("drain", {"step": "snooze"})["id"]
    seen = {}

    def steps(job):
        step = job.payload["step"]
        seen.setdefault(step, []).append(job)
        if step == "snooze" and len(seen[step]) == 1:
            raise jobq.Snooze("100ms", "not yet")
        return f"{step} done"

    w = jobq.Worker(URL, "drain", steps, concurrency=2)
    wt = run_worker(w)
    r = c.wait([parent, child, nap, late], timeout="30s")
    stop_worker(w, wt)
    assert r["done"], r
    states = {j["id"]: j["state"] for j in r["jobs"]}
    assert [states[i] for i in (parent, child, nap)] == ["succeeded"] * 3, r["jobs"]
    assert states[late] == "cancelled" and c.get(late)["error"] == "expired", c.get(late)
    assert seen["parent"][0].group_key == "tenant-1" and c.get(parent)["group_key"] == "tenant-1"
    assert seen["child"][0].parent_results == {str(parent): "parent done"}, seen["child"][0].parent_results
    j = c.get(nap)
    assert j["attempt"] == 1 and [a["kind"] for a in j["attempts"]] == ["snoozed", "success"], j
    ok("group_key on a job, dedupe replace of a waiting job, expiry, a Snooze that spent no "
       "attempt, and a child handed its parent's result")

    # ---- heartbeats keep a lease (2 s) over a job of 3.5 s; a cancel reaches the handler ----
    started = threading.Event()

    def slow(job):
        if job.payload == "cancel me":
            started.set()
            if not job.cancelled.wait(20):
                raise RuntimeError("no cancel came")
            return "saw the cancel"
        time.sleep(3.5)  # the job's work, longer than its lease
        return "slow done"

    w = jobq.Worker(URL, "lease", slow, concurrency=2)
    wt = run_worker(w)
    jid = c.submit("lease", "long")["id"]
    r = c.wait(jid, timeout="30s")
    j = r["jobs"][0]
    assert r["done"] and j["state"] == "succeeded" and j["attempt"] == 1, j
    assert j["result"] == "slow done", j
    assert [a["kind"] for a in c.get(jid)["attempts"]] == ["success"]
    cid = c.submit("lease", "cancel me")["id"]
    assert started.wait(20), "the handler started"
    c.cancel(cid)
    stop_worker(w, wt)  # returns once the handler saw the cancel and its outcome was sent
    j = c.get(cid)
    assert j["state"] == "cancelled", j
    ok("heartbeats hold a 2 s lease over a 3.5 s job; a cancel reaches the running handler")

    # ---- a worker killed mid-job: its job comes back after the lease ----
    jid = c.submit("lease", "block")["id"]
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "block-worker"],
                         stdout=subprocess.PIPE, text=True)
    try:
        line = read_line(p, 20)
        assert line == f"started {jid}", line
        os.kill(p.pid, signal.SIGKILL)
    finally:
        p.kill()
        p.wait()
    t0 = time.monotonic()
    w = jobq.Worker(URL, "lease", lambda job: f"second {job.attempt}")
    wt = run_worker(w)
    r = c.wait(jid, timeout="30s")
    back = time.monotonic() - t0
    stop_worker(w, wt)
    j = c.get(jid)
    assert r["done"] and j["state"] == "succeeded" and j["result"] == "second 2", j
    assert [a["kind"] for a in j["attempts"]] == ["lease", "success"], j["attempts"]
    ok(f"a worker killed mid-job: its job ran again after its lease ({back:.2f} s)")


def read_line(p, bound):
    """The next line of p's stdout, waiting at most bound seconds."""
    out = []
    t = threading.Thread(target=lambda: out.append(p.stdout.readline().strip()), daemon=True)
    t.start()
    t.join(bound)
    assert out, f"no line from pid {p.pid} within {bound} s"
    return out[0]


def block_worker():
    def handler(job):
        print(f"started {job.id}", flush=True)
        threading.Event().wait()  # until killed

    jobq.Worker(URL, "lease", handler).run()


def reconnect():
    c = jobq.Client(URL)
    w = jobq.Worker(URL, "drain", lambda job: f"r {job.payload}", concurrency=2)
    wt = run_worker(w)
    jid = c.submit("drain", 1)["id"]
    assert c.wait(jid, timeout="20s")["jobs"][0]["result"] == "r 1"
    print("restart me", flush=True)
    assert sys.stdin.readline().strip() == "back", "the test restarted jobqd"
    # The pooled connection died with the old jobqd: it is dropped before use, not an error.
    jid = c.submit("drain", 2)["id"]
    r = c.wait(jid, timeout="30s")
    assert r["done"] and r["jobs"][0]["result"] == "r 2", r
    stop_worker(w, wt)
    ok("a Client and a Worker go on by themselves after jobqd restarted")


def auth():
    token = os.environ["JOBQ_TEST_TOKEN"]
    os.environ.pop("JOBQ_TOKEN", None)
    good = jobq.Client(URL, token=token)
    assert good.ping()["version"]
    big = "x" * (100 * 1024)  # over max_unauthenticated_message: needs the ping first
    jid = good.submit("work", big)["id"]
    assert good.get(jid)["payload"] == big
    expect_error("unauthorized", jobq.Client(URL, token=token + "x").ping)
    expect_error("unauthorized", jobq.Client(URL).ping)
    expect_error("unauthorized", jobq.Client(URL, token=token + "x").submit, "work", big)
    w = jobq.Worker(jobq.Client(URL, token="wrong"), "work", lambda job: None)
    t = run_worker(w)
    t.join(20)
    assert not t.is_alive() and isinstance(t.error, jobq.JobqError), t.error
    assert t.error.code == "unauthorized", t.error
    ok("auth_token: the right token (and a 100 KiB request) works; wrong, missing and a "
       "worker's wrong token are unauthorized")


if __name__ == "__main__":
    {"main": main, "auth": auth, "block-worker": block_worker, "reconnect": reconnect}[sys.argv[1]]()
