"""jobq.py: a client for jobqd in one module, standard library only (Python 3.9+).

It speaks jobq's documented wire protocol (proto/PROTOCOL.md) directly: nng's SP REQ/REP
framing over tcp:// and ipc:// sockets, one JSON object per message. No nng binding is needed.

    from jobq import Client, Worker, Permanent

    with Client("tcp://127.0.0.1:7450") as c:
        job_id = c.submit("email", {"to": "a@example.com"}, delay="10s")["id"]
        print(c.wait(job_id, timeout="1m")["jobs"][0]["state"])

Durations (delay, timeout, ...) are what the wire takes: an int of milliseconds or a string
with a unit ("250ms", "10s", "5m", "1h30m"); a datetime.timedelta is accepted too. Times
(run_at) are ms since the Unix epoch, or a datetime. The client's own `timeout` (how long one
call may take on the socket, beyond what a held wait or fetch asks for) is in seconds.

Resend semantics: a Client never sends a request twice. An idle pooled connection that the
daemon closed (a restart, idle_timeout) is noticed and dropped before anything is written on
it; a connection lost after a request was written raises TransportError("connection_lost"),
and the request may or may not have been carried out (submit with a `key` to retry safely).
The Worker resends outcomes after a lost connection (a repeat is fenced by the lease and
answered lease_expired, which it ignores) but never a fetch: jobs claimed by a fetch whose
reply was lost go back to ready when jobqd sees the connection close, or after their lease.

Thread safety: a Client may be shared by threads; each call takes an idle connection from the
client's pool (or dials a new one), so concurrent calls run side by side.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import queue as _queue
import random
import re
import socket
import struct
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

__all__ = ["Client", "Worker", "Job", "JobqError", "TransportError", "Permanent", "Snooze"]

log = logging.getLogger("jobq")
log.addHandler(logging.NullHandler())  # silent unless the application configures logging

Duration = Union[int, str, _dt.timedelta, None]

_PROTO_REQ = 0x30
_PROTO_REP = 0x31
_HANDSHAKE_REQ = b"\x00SP\x00" + struct.pack(">H", _PROTO_REQ) + b"\x00\x00"
_HANDSHAKE_REP = b"\x00SP\x00" + struct.pack(">H", _PROTO_REP) + b"\x00\x00"
_IPC_MSG = 1  # the ipc:// frame type byte of a message
_ID_BIT = 0x80000000
_MAX_REPLY = 256 << 20  # a reply announced longer than this closes the connection
_UNAUTH_SMALL = 960  # requests up to this pass before a connection has authenticated
_REDIAL_S = 1.0  # a refused dial is tried again for this long (a daemon restarting)


class JobqError(Exception):
    """An error reply of jobqd, or of this client.

    `code` is jobqd's stable wire code (unknown_queue, not_found, invalid_argument,
    unauthorized, lease_expired, ...; see PROTOCOL.md's Error codes), or for a TransportError
    one of this client's: timeout, unreachable, connection_lost, protocol, closed.
    `message` is for people."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class TransportError(JobqError):
    """The request got no reply: jobqd could not be reached, the connection was lost or the
    call timed out. A request that was written may have been carried out."""


class Permanent(Exception):
    """Raised by a Worker's handler: the job fails for good (`dead` at once, not retried)."""


class Snooze(Exception):
    """Raised by a Worker's handler: the job runs again after `delay` (a duration: ms or a
    string such as "30s") without spending an attempt (kind `snoozed` in its history)."""

    def __init__(self, delay: "Duration", reason: str = ""):
        super().__init__(reason or "snoozed")
        self.delay = delay


# ---- durations and times ------------------------------------------------------------------

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_TERM = re.compile(r"(\d+)(ms|s|m|h|d)")


def _duration_ms(d: Duration) -> Any:
    """The wire form of a duration: int ms when it can be read here, else d unchanged (jobqd
    then answers invalid_argument naming the field)."""
    if d is None or isinstance(d, bool):
        return d
    if isinstance(d, _dt.timedelta):
        return int(d.total_seconds() * 1000)
    if isinstance(d, float):
        return int(d)
    if isinstance(d, str):
        if d.isdigit():
            return int(d)
        pos, total = 0, 0
        while pos < len(d):
            m = _TERM.match(d, pos)
            if m is None:
                return d
            total += int(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        return total if d else d
    return d


def _time_ms(t: Any) -> Any:
    """The wire form of a time: ms since the epoch (a datetime without a zone is local)."""
    if isinstance(t, _dt.datetime):
        return int(t.timestamp() * 1000)
    return t


def _held_s(d: Any) -> float:
    """How long jobqd may hold a request whose timeout is d (wire form), in seconds: jobqd's
    default (30 s) when d is absent or not read here."""
    if isinstance(d, int):
        return max(d, 0) / 1000.0
    return 30.0


def _put(obj: Dict[str, Any], **fields: Any) -> Dict[str, Any]:
    """obj with the fields that are not None added."""
    for k, v in fields.items():
        if v is not None:
            obj[k] = v
    return obj


# ---- the SP REQ peer -----------------------------------------------------------------------


class _Target:
    """Where to dial: a parsed tcp:// or ipc:// URL."""

    def __init__(self, url: str):
        self.url = url
        if url.startswith("ipc://"):
            self.ipc = True
            self.path = url[len("ipc://"):]
            if not self.path:
                raise ValueError(f"{url}: ipc:// needs a socket path")
        elif url.startswith("tcp://"):
            self.ipc = False
            rest = url[len("tcp://"):].rstrip("/")
            host, sep, port = rest.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{url}: expected tcp://HOST:PORT")
            self.host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
            self.port = int(port)
        else:
            raise ValueError(f"{url}: only tcp:// and ipc:// are spoken natively "
                             "(tls+tcp:// and ws:// need an nng binding)")


class _Conn:
    """One SP REQ connection: a socket past its handshake. send() writes a request and returns
    its request id; recv() reads the next reply, whichever request it answers (jobqd replies in
    the order replies are ready). Not thread safe: one user at a time."""

    def __init__(self, target: _Target, deadline: float):
        self.ipc = target.ipc
        self.authed = False
        self._next = random.getrandbits(31)
        self._buf = b""
        try:
            if target.ipc:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(max(0.001, deadline - time.monotonic()))
                try:
                    s.connect(target.path)
                except BaseException:
                    s.close()
                    raise
            else:
                s = socket.create_connection((target.host, target.port),
                                             timeout=max(0.001, deadline - time.monotonic()))
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (ConnectionRefusedError, FileNotFoundError) as e:
            raise TransportError("unreachable", f"nobody listens at {target.url}: {e}") from e
        except socket.timeout as e:
            raise TransportError("timeout", f"dialling {target.url} timed out") from e
        except OSError as e:
            raise TransportError("unreachable", f"cannot dial {target.url}: {e}") from e
        self.sock = s
        try:
            self._sendall(_HANDSHAKE_REQ, deadline)
            peer = self._read(8, deadline)
        except BaseException:
            self.close()
            raise
        if peer != _HANDSHAKE_REP:
            self.close()
            raise TransportError("protocol", f"{target.url} is not an SP REP peer "
                                 f"(handshake {peer!r})")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def alive(self) -> bool:
        """Whether an idle connection is still open: nothing is owed on it, so anything
        readable is its end (EOF, a reset)."""
        try:
            self.sock.setblocking(False)  # the next send or read sets its own timeout
            self.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True  # nothing to read: open
        except OSError:
            return False
        return False  # EOF, or bytes nobody asked for

    def send(self, body: bytes, deadline: float) -> int:
        """Writes one request; returns its request id (high bit set)."""
        rid = (self._next & 0x7FFFFFFF) | _ID_BIT
        self._next += 1
        n = len(body) + 4
        head = (bytes([_IPC_MSG]) if self.ipc else b"") + struct.pack(">QI", n, rid)
        self._sendall(head + body, deadline)
        return rid

    def recv(self, deadline: float) -> "tuple[int, bytes]":
        """Reads one reply: (request id, JSON body)."""
        if self.ipc:
            hdr = self._read(9, deadline)
            if hdr[0] != _IPC_MSG:
                raise TransportError("protocol", f"ipc frame of type {hdr[0]}")
            (n,) = struct.unpack(">Q", hdr[1:])
        else:
            (n,) = struct.unpack(">Q", self._read(8, deadline))
        if n < 4 or n > _MAX_REPLY:
            raise TransportError("protocol", f"a reply of {n} bytes")
        msg = self._read(n, deadline)
        (rid,) = struct.unpack(">I", msg[:4])
        if not rid & _ID_BIT:
            raise TransportError("protocol", "a reply with a backtrace of more than one word")
        return rid, msg[4:]

    def _sendall(self, data: bytes, deadline: float) -> None:
        try:
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            self.sock.sendall(data)
        except socket.timeout as e:
            raise TransportError("timeout", "sending the request timed out") from e
        except OSError as e:
            raise TransportError("connection_lost", f"sending the request: {e}") from e

    def _read(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportError("timeout", "no reply in time")
            try:
                self.sock.settimeout(left)
                chunk = self.sock.recv(max(65536, n - len(self._buf)))
            except socket.timeout as e:
                raise TransportError("timeout", "no reply in time") from e
            except OSError as e:
                raise TransportError("connection_lost", f"reading the reply: {e}") from e
            if not chunk:
                raise TransportError("connection_lost", "jobqd closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


# ---- the client ----------------------------------------------------------------------------


class Client:
    """A producer's (and a worker's) handle on one jobqd.

    url: tcp://HOST:PORT or ipc:///path (default $JOBQ_URL, else tcp://127.0.0.1:7450).
    token: jobqd's auth_token (default $JOBQ_TOKEN), sent with every request.
    timeout: seconds one call may take, beyond what a held wait or fetch asks for.
    Every method returns jobqd's reply (without "ok") or raises JobqError."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None,
                 timeout: float = 30.0):
        self.url = url or os.environ.get("JOBQ_URL") or "tcp://127.0.0.1:7450"
        self.token = token if token is not None else os.environ.get("JOBQ_TOKEN")
        self.timeout = timeout
        self._target = _Target(self.url)
        self._lock = threading.Lock()
        self._pool: List[_Conn] = []
        self._closed = False

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes the idle connections; calls after this raise TransportError("closed")."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, []
        for c in pool:
            c.close()

    # -- the generic call --

    def call(self, op: str, held: float = 0.0, **fields: Any) -> Dict[str, Any]:
        """Sends {"op": op, **fields} (fields that are None are left out) and returns the
        reply. held: seconds jobqd may hold the request (a wait's or fetch's timeout)."""
        req = _put({"op": op}, **fields)
        if self.token is not None:
            req["token"] = self.token
        body = json.dumps(req, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode()
        deadline = time.monotonic() + self.timeout + held
        conn = self._take(deadline)
        try:
            if self.token is not None and not conn.authed and len(body) > _UNAUTH_SMALL:
                # jobqd limits a connection's messages until one carried the token: a
                # small ping first lifts the limit for the larger request.
                self._roundtrip(conn, json.dumps({"op": "ping", "token": self.token}).encode(),
                                deadline)
                conn.authed = True
            reply = self._roundtrip(conn, body, deadline)
        except BaseException:
            conn.close()  # a late reply would confuse the next call on it
            raise
        conn.authed = conn.authed or self.token is not None
        with self._lock:
            if self._closed:
                conn.close()
            else:
                self._pool.append(conn)
        try:
            r = json.loads(reply)
        except ValueError as e:
            raise TransportError("protocol", f"a reply that is not JSON: {reply[:80]!r}") from e
        if not isinstance(r, dict):
            raise TransportError("protocol", f"a reply that is not an object: {reply[:80]!r}")
        if not r.get("ok"):
            err = r.get("error") or {}
            raise JobqError(err.get("code", "internal"), err.get("message", ""))
        r.pop("ok", None)
        return r

    def _take(self, deadline: float) -> _Conn:
        """An idle connection that is still open, else a new one (dialled again for about a
        second while nobody listens)."""
        while True:
            with self._lock:
                if self._closed:
                    raise TransportError("closed", "the client was closed")
                conn = self._pool.pop() if self._pool else None
            if conn is None:
                break
            if conn.alive():
                return conn
            conn.close()
        give_up = min(deadline, time.monotonic() + _REDIAL_S)
        pause = 0.01
        while True:
            try:
                return _Conn(self._target, deadline)
            except TransportError as e:
                if e.code != "unreachable" or time.monotonic() + pause > give_up:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    @staticmethod
    def _roundtrip(conn: _Conn, body: bytes, deadline: float) -> bytes:
        rid = conn.send(body, deadline)
        got, reply = conn.recv(deadline)
        if got != rid:
            raise TransportError("protocol", f"reply to request {got:#x}, sent {rid:#x}")
        return reply

    # -- producers --

    def ping(self) -> Dict[str, Any]:
        """{"version", "time"} of jobqd."""
        return self.call("ping")

    def submit(self, queue: str, payload: Any = None, *, delay: Duration = None,
               run_at: Any = None, priority: Optional[int] = None,
               max_attempts: Optional[int] = None, timeout: Duration = None,
               key: Optional[str] = None, after: Optional[Sequence[int]] = None,
               after_policy: Optional[str] = None, group_key: Optional[str] = None,
               dedupe: Optional[str] = None, debounce_max: Duration = None,
               expires_in: Duration = None, expires_at: Any = None,
               **extra: Any) -> Dict[str, Any]:
        """Submits one job; returns {"id", "state", "duplicate"} (and "replaced" when dedupe
        replace or debounce updated a waiting job). group_key: the key of the queue's
        key_concurrency and key_rate; dedupe: ttl, until_done, replace or debounce (with a
        key); expires_in or expires_at: cancelled as expired if not started by then. Other
        fields of PROTOCOL.md's submit (traceparent, ...) pass as keywords."""
        return self.call("submit", **_submit_fields(
            queue=queue, payload=payload, delay=delay, run_at=run_at, priority=priority,
            max_attempts=max_attempts, timeout=timeout, key=key, after=after,
            after_policy=after_policy, group_key=group_key, dedupe=dedupe,
            debounce_max=debounce_max, expires_in=expires_in, expires_at=expires_at, **extra))

    def submit_batch(self, jobs: Iterable[Dict[str, Any]], queue: Optional[str] = None,
                     group: bool = False,
                     on_complete: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Submits many jobs atomically. Each entry is a dict of submit's fields (payload,
        queue, delay, ...). Returns {"ids", "duplicates"} and, with group, "group"."""
        entries = [_submit_fields(**j) for j in jobs]
        return self.call("submit_batch", queue=queue, jobs=entries, group=group or None,
                         on_complete=_submit_fields(**on_complete) if on_complete else None)

    def get(self, id: int) -> Dict[str, Any]:
        """The job with its attempt history."""
        return self.call("get", id=id)["job"]

    def get_group(self, group: int) -> Dict[str, Any]:
        """The group, its members counted by state."""
        return self.call("get", group=group)["group"]

    def wait(self, ids: Union[int, Sequence[int], None] = None, timeout: Duration = "30s", *,
             group: Optional[int] = None, return_when: Optional[str] = None,
             cancel_pending: bool = False) -> Dict[str, Any]:
        """Waits until the jobs end (return_when "all", "first" or "first_failure") or the
        timeout passes (then "done" is false). Returns {"done", "jobs", ...}."""
        if isinstance(ids, int):
            ids = [ids]
        t = _duration_ms(timeout)
        return self.call("wait", held=_held_s(t), ids=list(ids) if ids is not None else None,
                         group=group, timeout=t, return_when=return_when,
                         cancel_pending=cancel_pending or None)

    def cancel(self, id: int) -> Dict[str, Any]:
        """Cancels a job that has not finished; returns the job."""
        return self.call("cancel", held=self.timeout, id=id)["job"]

    def retry(self, id: int) -> Dict[str, Any]:
        """Makes a dead or cancelled job ready again; returns the job."""
        return self.call("retry", id=id)["job"]

    def promote(self, id: int) -> Dict[str, Any]:
        """Makes a scheduled or retrying job ready now; returns the job."""
        return self.call("promote", id=id)["job"]

    def list(self, queue: Optional[str] = None, state: Optional[str] = None,
             after: Optional[int] = None, limit: Optional[int] = None) -> Dict[str, Any]:
        """One page of jobs: {"jobs", "next"} (pass next as after for the next page)."""
        return self.call("list", queue=queue, state=state, after=after, limit=limit)

    def stats(self, queues: Optional[Sequence[str]] = None,
              series: bool = False) -> Dict[str, Any]:
        """{queue name: counts by state, paused, breaker, concurrency, ...}."""
        return self.call("stats", queues=list(queues) if queues is not None else None,
                         series=series or None)["queues"]

    # -- remote workers (the Worker class below uses these) --

    def fetch(self, queues: Union[str, Sequence[str]], max: int = 1, timeout: Duration = "30s",
              worker: Optional[str] = None) -> List[Dict[str, Any]]:
        """Claims up to max jobs, long-polling up to timeout; each carries its "lease"."""
        t = _duration_ms(timeout)
        return self.call("fetch", held=_held_s(t), **_fetch_fields(queues, max, t, worker))["jobs"]

    def ack(self, id: int, lease: str, result: Optional[str] = None) -> Dict[str, Any]:
        """Records a success; returns the job."""
        return self.call("ack", id=id, lease=lease, result=result)["job"]

    def fail(self, id: int, lease: str, error: str, retry: bool = True,
             snooze: Duration = None) -> Dict[str, Any]:
        """Records a failure (retry=False: dead at once), or with snooze (a duration) runs the
        job again after it without spending an attempt; returns the job."""
        return self.call("fail", id=id, lease=lease, error=error, retry=retry,
                         snooze=_duration_ms(snooze))["job"]

    def heartbeat(self, id: int, lease: str) -> Dict[str, Any]:
        """Extends a lease: {"lease_expires_at", "cancel"} (cancel true: stop the job)."""
        return self.call("heartbeat", id=id, lease=lease)


def _submit_fields(queue: Optional[str] = None, payload: Any = None, *, delay: Duration = None,
                   run_at: Any = None, priority: Optional[int] = None,
                   max_attempts: Optional[int] = None, timeout: Duration = None,
                   key: Optional[str] = None, after: Optional[Sequence[int]] = None,
                   after_policy: Optional[str] = None, debounce_max: Duration = None,
                   expires_in: Duration = None, expires_at: Any = None,
                   **extra: Any) -> Dict[str, Any]:
    """A submit object of the wire (without op): durations and times in their wire form."""
    return _put({}, queue=queue, payload=payload, delay=_duration_ms(delay),
                run_at=_time_ms(run_at), priority=priority, max_attempts=max_attempts,
                timeout=_duration_ms(timeout), key=key,
                after=list(after) if after is not None else None, after_policy=after_policy,
                debounce_max=_duration_ms(debounce_max), expires_in=_duration_ms(expires_in),
                expires_at=_time_ms(expires_at), **extra)


def _fetch_fields(queues: Union[str, Sequence[str]], max: int, timeout: Any,
                  worker: Optional[str]) -> Dict[str, Any]:
    qs = [queues] if isinstance(queues, str) else list(queues)
    return _put({"queues": qs, "max": max, "timeout": timeout}, worker=worker)


# ---- the worker ----------------------------------------------------------------------------

# Errors after which a worker stops (its configuration or credentials are wrong); any other
# error of a fetch is retried with backoff.
_FATAL = {"unknown_queue", "unauthorized", "invalid_argument", "unknown_op", "malformed",
          "too_many_queues"}
_MAX_FETCH = 100  # jobqd's most jobs in one fetch
_MAX_OUTCOMES = 1000  # jobqd's most outcomes in one ack or fail
_MIN_LEASE_S = 0.3


class Job:
    """A job a Worker fetched, handed to the handler.

    id, queue, payload, attempt, max_attempts, timeout (ms) as jobqd sent them; lease (the
    token); cancelled: a threading.Event set when the job was cancelled or its lease was lost
    (a handler that runs long should check it and stop)."""

    def __init__(self, d: Dict[str, Any]):
        self.id: int = d["id"]
        self.queue: str = d.get("queue", "")
        self.payload: Any = d.get("payload")
        self.attempt: int = d.get("attempt", 1)
        self.max_attempts: int = d.get("max_attempts", 1)
        self.timeout: Optional[int] = d.get("timeout")
        self.lease: str = d["lease"]
        self.group_key: Optional[str] = d.get("group_key")
        # {parent id (str): its result} for a job submitted with after; None otherwise
        self.parent_results: Optional[Dict[str, Any]] = d.get("parent_results")
        self.cancelled = threading.Event()
        self._renewed(d.get("lease_expires_at"))

    def _renewed(self, expires_at_ms: Optional[int]) -> None:
        """Notes a lease expiry (ms since the epoch): the next heartbeat is due at half of
        what is left, on the monotonic clock."""
        now = time.monotonic()
        left = (expires_at_ms / 1000.0 - time.time()) if expires_at_ms else 60.0
        left = max(left, _MIN_LEASE_S)
        self._expires = now + left
        self._next_hb = now + left / 2

    def __repr__(self) -> str:
        return f"Job(id={self.id}, queue={self.queue!r}, attempt={self.attempt})"


class _Outcome:
    __slots__ = ("job", "ok", "text", "retry", "snooze")

    def __init__(self, job: Job, ok: bool, text: Optional[str], retry: bool, snooze: Any = None):
        self.job, self.ok, self.text, self.retry = job, ok, text, retry
        self.snooze = snooze


class Worker:
    """Runs handler(job) for the jobs of queues, `concurrency` at a time, in threads.

    The handler's return value is the job's result: a str as is, None for none, anything else
    as JSON. An exception fails the attempt with its text and the job is retried with backoff
    (until max_attempts); Permanent makes it dead at once; Snooze(delay) runs it again after
    delay without spending an attempt.

    Outcomes go in batches (one ack, one fail of many jobs) carrying a fetch for the free
    handlers, so a busy worker makes one round trip per batch; an idle one long-polls
    (poll_timeout seconds, which is also how soon stop() is seen by the poll). A heartbeat
    thread extends each lease when half of it has passed. A lost connection is dialled again
    with backoff (0.1 s doubling to 5 s); outcomes are sent again until their lease would have
    ended (a repeat is answered lease_expired and ignored); a fetch is never sent twice.
    run() returns after stop(), once the jobs in hand finished and their outcomes were sent;
    it raises JobqError when jobqd refuses the worker for good (unknown_queue, unauthorized)."""

    def __init__(self, client: Union[Client, str], queues: Union[str, Sequence[str]],
                 handler: Callable[[Job], Any], concurrency: int = 1, *,
                 poll_timeout: float = 2.0, name: Optional[str] = None,
                 token: Optional[str] = None):
        self._own = not isinstance(client, Client)
        self.client = Client(client, token=token) if self._own else client
        self.queues = [queues] if isinstance(queues, str) else list(queues)
        self.handler = handler
        self.concurrency = max(1, int(concurrency))
        self.poll_ms = max(0, int(poll_timeout * 1000))
        self.name = name or f"{socket.gethostname()}/{os.getpid()}"
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._jobs: "_queue.Queue[Optional[Job]]" = _queue.Queue()
        self._leased: Dict[int, Job] = {}  # fetched, outcome not yet recorded (heartbeats)
        self._inhand = 0  # fetched, handler not yet finished
        self._reserved = 0  # asked for by fetches in flight
        self._outbox: List[_Outcome] = []
        self._sending = False
        self._fetcher_done = False
        self._handlers = 0
        self._fatal: Optional[JobqError] = None

    def stop(self) -> None:
        """Asks run() to return: no more fetches; jobs in hand finish and are recorded.
        Any thread (or a signal handler) may call it."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def run(self) -> None:
        """Works until stop(); see the class's doc."""
        self._stop.clear()
        self._done.clear()
        self._fetcher_done = False
        threads = [threading.Thread(target=self._handle_loop, name=f"jobq-handler-{i}",
                                    daemon=True) for i in range(self.concurrency)]
        self._handlers = len(threads)
        threads.append(threading.Thread(target=self._fetch_loop, name="jobq-fetch", daemon=True))
        threads.append(threading.Thread(target=self._heartbeat_loop, name="jobq-heartbeat",
                                        daemon=True))
        for t in threads:
            t.start()
        try:
            self._complete_loop()
        finally:
            self.stop()
            self._done.set()
            for t in threads:
                t.join()
            if self._own:
                self.client.close()
        if self._fatal is not None:
            raise self._fatal

    # -- accounting (under self._cond) --

    def _free_locked(self) -> int:
        return self.concurrency - self._inhand - self._reserved

    def _take_locked(self, jobs: List[Dict[str, Any]]) -> None:
        for d in jobs:
            job = Job(d)
            self._leased[job.id] = job
            self._inhand += 1
            self._jobs.put(job)

    def _fatal_locked(self, e: JobqError) -> None:
        if self._fatal is None:
            log.error("event=worker_fatal code=%s msg=%r", e.code, e.message)
            self._fatal = e
        self._stop.set()
        self._cond.notify_all()

    # -- threads --

    def _fetch_loop(self) -> None:
        """Long-polls for the free handlers while no outcome is on its way (an outcome
        carries its own fetch)."""
        pause = 0.1
        try:
            while True:
                with self._cond:
                    while not self._stop.is_set() and (
                            self._free_locked() <= 0 or self._outbox or self._sending):
                        self._cond.wait()
                    if self._stop.is_set():
                        return
                    n = min(self._free_locked(), _MAX_FETCH)
                    self._reserved += n
                jobs: List[Dict[str, Any]] = []
                try:
                    jobs = self.client.fetch(self.queues, max=n, timeout=self.poll_ms,
                                             worker=self.name)
                    pause = 0.1
                except JobqError as e:
                    with self._cond:
                        if e.code in _FATAL:
                            self._fatal_locked(e)
                    log.warning("event=fetch_failed code=%s msg=%r retry_in=%.1fs",
                                e.code, e.message, pause)
                    self._stop.wait(pause)
                    pause = min(pause * 2, 5.0)
                finally:
                    with self._cond:
                        self._reserved -= n
                        self._take_locked(jobs)
                        self._cond.notify_all()
        finally:
            with self._cond:
                self._fetcher_done = True
                self._cond.notify_all()

    def _handle_loop(self) -> None:
        """Runs the handler on each job handed over, until a None."""
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                try:
                    res = self.handler(job)
                    out = _Outcome(job, True, _result_text(res), False)
                except Permanent as e:
                    out = _Outcome(job, False, str(e) or "permanent failure", False)
                except Snooze as e:
                    out = _Outcome(job, False, str(e), True, _duration_ms(e.delay))
                except Exception as e:  # the handler's failure is the job's, not ours
                    out = _Outcome(job, False, f"{type(e).__name__}: {e}", True)
                with self._cond:
                    self._inhand -= 1
                    self._outbox.append(out)
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._handlers -= 1
                self._cond.notify_all()

    def _complete_loop(self) -> None:
        """Sends the outbox (acks in one request, fails in another) with a fetch for the free
        handlers; at a stop, ends the handlers once no fetch can bring more jobs."""
        ended = False
        while True:
            with self._cond:
                while not self._outbox:
                    if self._stop.is_set() and self._fetcher_done and not ended:
                        for _ in range(self.concurrency):
                            self._jobs.put(None)  # after every fetched job: all get run
                        ended = True
                    if ended and self._handlers == 0:
                        return
                    self._cond.wait()
                batch = self._outbox[:_MAX_OUTCOMES]
                del self._outbox[:_MAX_OUTCOMES]
                n = 0 if self._stop.is_set() else min(self._free_locked(), _MAX_FETCH)
                self._reserved += n
                self._sending = True
            jobs: List[Dict[str, Any]] = []
            try:
                jobs = self._send(batch, n)
            finally:
                with self._cond:
                    self._sending = False
                    self._reserved -= n
                    self._take_locked(jobs)
                    for o in batch:
                        self._leased.pop(o.job.id, None)
                    self._cond.notify_all()

    def _send(self, batch: List[_Outcome], n: int) -> List[Dict[str, Any]]:
        """Records the outcomes of batch; the fetch of n jobs rides on the last request.
        Returns the jobs fetched."""
        fails = [o for o in batch if not o.ok]
        acks = [o for o in batch if o.ok]
        reqs = []
        if fails:
            reqs.append(("fail", fails, [_put({"id": o.job.id, "lease": o.job.lease,
                                               "error": o.text, "retry": o.retry},
                                              snooze=o.snooze)
                                         for o in fails]))
        if acks:
            reqs.append(("ack", acks, [_put({"id": o.job.id, "lease": o.job.lease},
                                            result=o.text) for o in acks]))
        fetched: List[Dict[str, Any]] = []
        for i, (op, outs, entries) in enumerate(reqs):
            fetch = None
            if n > 0 and i == len(reqs) - 1:
                fetch = _fetch_fields(self.queues, n, 0, self.name)
            pause = 0.1
            while True:
                try:
                    r = self.client.call(op, jobs=entries, fetch=fetch)
                    break
                except JobqError as e:
                    if e.code in _FATAL:
                        with self._cond:
                            self._fatal_locked(e)
                        if fetch is not None:  # the fetch part may be what was refused
                            fetch = None
                            continue
                        return fetched
                    # Sent again, without the fetch, until every lease would have ended.
                    fetch = None
                    if time.monotonic() >= max(o.job._expires for o in outs):
                        log.warning("event=outcomes_dropped op=%s jobs=%d code=%s", op,
                                    len(outs), e.code)
                        r = {}
                        break
                    log.warning("event=outcomes_failed op=%s code=%s msg=%r retry_in=%.1fs",
                                op, e.code, e.message, pause)
                    time.sleep(pause)
                    pause = min(pause * 2, 5.0)
            for res in r.get("results", []):
                if not res.get("ok"):
                    err = res.get("error") or {}
                    log.info("event=outcome_refused op=%s job=%s code=%s", op, res.get("id"),
                             err.get("code"))
            fetched.extend(r.get("jobs") or [])
        return fetched

    def _heartbeat_loop(self) -> None:
        """Extends each lease once half of it has passed, until run() ends."""
        while not self._done.is_set():
            now = time.monotonic()
            with self._cond:
                due = [j for j in self._leased.values()
                       if j._next_hb <= now and not j.cancelled.is_set()]
                nxt = min((j._next_hb for j in self._leased.values()
                           if not j.cancelled.is_set()), default=now + 0.25)
            for job in due:
                try:
                    r = self.client.heartbeat(job.id, job.lease)
                    job._renewed(r.get("lease_expires_at"))
                    if r.get("cancel"):
                        log.info("event=job_cancelled job=%d", job.id)
                        job.cancelled.set()
                except JobqError as e:
                    if e.code in ("lease_expired", "not_found"):
                        log.warning("event=lease_lost job=%d code=%s", job.id, e.code)
                        job.cancelled.set()
                    else:
                        job._next_hb = time.monotonic() + 0.2
            self._done.wait(min(max(nxt - time.monotonic(), 0.01), 0.25))


def _result_text(res: Any) -> Optional[str]:
    """A handler's return value as a job's result: str as is, bytes decoded, None as none,
    anything else as JSON."""
    if res is None or isinstance(res, str):
        return res
    if isinstance(res, (bytes, bytearray)):
        return bytes(res).decode("utf-8", "replace")
    return json.dumps(res, separators=(",", ":"))
