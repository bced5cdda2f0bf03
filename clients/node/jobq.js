'use strict';
/**
 * jobq.js: a client for jobqd for Node 18+, without dependencies.
 *
 * It speaks jobq's documented wire protocol (proto/PROTOCOL.md) directly: nng's SP REQ/REP
 * framing over tcp:// and ipc:// sockets (`net`), one JSON object per message. No nng binding
 * is needed.
 *
 *   const { Client } = require('./jobq');
 *   const c = new Client('tcp://127.0.0.1:7450');
 *   const { id } = await c.submit('email', { to: 'a@example.com' }, { delay: '10s' });
 *   const r = await c.wait(id, { timeout: '1m' });
 *   c.close();
 *
 * One connection carries every call of a Client at once (pipelining): each request has its own
 * SP request id and jobqd answers each as soon as it is ready, not in the order they came (a
 * held wait or fetch does not delay a ping sent after it), so replies are matched by id.
 * jobqd holds at most max_waits_per_connection (256) waits and long polls of one connection
 * (more are answered too_many_waits): use more Clients for more.
 *
 * Durations (delay, timeout, ...) are what the wire takes: a number of milliseconds or a
 * string with a unit ('250ms', '10s', '5m', '1h30m'). Times (runAt) are ms since the Unix
 * epoch, or a Date. The Client's own `timeout` (how long a call may take beyond what a held
 * wait or fetch asks for) is in milliseconds.
 *
 * Resend semantics: a Client never sends a request twice. When the connection is lost, every
 * call in flight rejects with TransportError('connection_lost') (the request may or may not
 * have been carried out: submit with a `key` to retry safely) and the next call dials again.
 * The Worker resends outcomes after a lost connection (a repeat is fenced by the lease and
 * answered lease_expired, which it ignores) but never a fetch: jobs claimed by a fetch whose
 * reply was lost go back to ready when jobqd sees the connection close, or after their lease.
 */

const net = require('node:net');
const os = require('node:os');
const crypto = require('node:crypto');

const HANDSHAKE_REQ = Buffer.from([0, 0x53, 0x50, 0, 0x00, 0x30, 0, 0]); // \0SP\0, REQ 0x30
const HANDSHAKE_REP = Buffer.from([0, 0x53, 0x50, 0, 0x00, 0x31, 0, 0]); // \0SP\0, REP 0x31
const IPC_MSG = 1; // the ipc:// frame type byte of a message
const ID_BIT = 0x80000000;
const MAX_REPLY = 256 * 1024 * 1024; // a reply announced longer than this closes the connection
const REDIAL_MS = 1000; // a refused dial is tried again for this long (a daemon restarting)

/** An error reply of jobqd (`code`: its stable wire code, e.g. unknown_queue, not_found,
 *  invalid_argument, unauthorized, lease_expired), or of this client (TransportError). */
class JobqError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'JobqError';
    this.code = code;
  }
}

/** No reply: jobqd unreachable, the connection lost, the call timed out or the client closed
 *  (`code`: unreachable, connection_lost, timeout, protocol, closed). A request that was
 *  written may have been carried out. */
class TransportError extends JobqError {
  constructor(code, message) {
    super(code, message);
    this.name = 'TransportError';
  }
}

/** Thrown by a Worker's handler: the job fails for good (dead at once, not retried). */
/** Snooze: thrown by a Worker's handler: the job runs again after delay (ms or "30s")
 *  without spending an attempt (kind snoozed in its history). */
class Snooze extends Error {
  constructor(delay, message) {
    super(message || 'snoozed');
    this.name = 'Snooze';
    this.delay = delay;
  }
}

class Permanent extends Error {
  constructor(message) {
    super(message);
    this.name = 'Permanent';
  }
}

const UNITS = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 };

/** durationMs: the wire form of a duration: a number of ms when it can be read here, else d
 *  unchanged (jobqd then answers invalid_argument naming the field). */
function durationMs(d) {
  if (typeof d === 'number') return Math.floor(d);
  if (typeof d !== 'string' || d === '') return d;
  if (/^\d+$/.test(d)) return Number(d);
  const re = /(\d+)(ms|s|m|h|d)/y;
  let total = 0;
  let m;
  while (re.lastIndex < d.length && (m = re.exec(d)) !== null) total += Number(m[1]) * UNITS[m[2]];
  return re.lastIndex === d.length && m !== null ? total : d;
}

/** heldMs: how long jobqd may hold a request whose timeout is t (wire form): jobqd's default
 *  (30 s) when t is absent or not read here. */
function heldMs(t) {
  return typeof t === 'number' ? Math.max(t, 0) : 30000;
}

/** put: obj with the fields of more that are not undefined or null added. */
function put(obj, more) {
  for (const [k, v] of Object.entries(more)) if (v !== undefined && v !== null) obj[k] = v;
  return obj;
}

/** submitFields: a submit object of the wire (without op) from camelCase options; fields it
 *  does not know pass through as written. */
function submitFields(o) {
  const { maxAttempts, runAt, afterPolicy, onComplete, groupKey, debounceMax, expiresIn, expiresAt, ...rest } = o;
  return put(rest, {
    delay: durationMs(o.delay),
    timeout: durationMs(o.timeout),
    run_at: runAt instanceof Date ? runAt.getTime() : runAt,
    max_attempts: maxAttempts,
    after_policy: afterPolicy,
    group_key: groupKey,
    debounce_max: durationMs(debounceMax),
    expires_in: durationMs(expiresIn),
    expires_at: expiresAt instanceof Date ? expiresAt.getTime() : expiresAt,
  });
}

function fetchFields(queues, max, timeout, worker) {
  return put({ queues: typeof queues === 'string' ? [queues] : [...queues], max, timeout }, { worker });
}

function parseUrl(url) {
  if (url.startsWith('ipc://')) {
    const path = url.slice(6);
    if (!path) throw new TypeError(`${url}: ipc:// needs a socket path`);
    return { ipc: true, opts: { path } };
  }
  if (url.startsWith('tcp://')) {
    const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+)\/?$/.exec(url);
    if (!m) throw new TypeError(`${url}: expected tcp://HOST:PORT`);
    return { ipc: false, opts: { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) } };
  }
  throw new TypeError(`${url}: only tcp:// and ipc:// are spoken natively`);
}

/** Conn: one SP REQ connection with requests in flight, matched to replies by request id. */
class Conn {
  constructor(target, url) {
    this.ipc = target.ipc;
    this.url = url;
    this.pending = new Map(); // request id -> {resolve, reject, timer}
    this.nextId = crypto.randomInt(0, 0x7fffffff);
    this.buf = Buffer.alloc(0);
    this.handshaken = false;
    this.dead = null; // the error that ended it
    this.sock = null;
  }

  /** open: dials and completes the handshake. */
  open(target, deadline) {
    return new Promise((resolve, reject) => {
      const sock = net.connect(target.opts);
      this.sock = sock;
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new TransportError('timeout', `dialling ${this.url} timed out`));
      }, Math.max(1, deadline - Date.now()));
      this.onOpen = (err) => {
        clearTimeout(timer);
        this.onOpen = null;
        if (err) reject(err);
        else resolve();
      };
      sock.on('connect', () => {
        if (!this.ipc) sock.setNoDelay(true);
        sock.write(HANDSHAKE_REQ);
      });
      sock.on('data', (chunk) => this.onData(chunk));
      sock.on('error', (e) => this.end(e));
      sock.on('close', () => this.end(null));
    });
  }

  onData(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    if (!this.handshaken) {
      if (this.buf.length < 8) return;
      if (!this.buf.subarray(0, 8).equals(HANDSHAKE_REP)) {
        return this.end(new TransportError('protocol', `${this.url} is not an SP REP peer`));
      }
      this.handshaken = true;
      this.buf = this.buf.subarray(8);
      if (this.onOpen) this.onOpen(null);
    }
    const hdr = this.ipc ? 9 : 8;
    while (this.buf.length >= hdr) {
      if (this.ipc && this.buf[0] !== IPC_MSG) {
        return this.end(new TransportError('protocol', `ipc frame of type ${this.buf[0]}`));
      }
      const n = this.buf.readBigUInt64BE(hdr - 8);
      if (n < 4n || n > BigInt(MAX_REPLY)) {
        return this.end(new TransportError('protocol', `a reply of ${n} bytes`));
      }
      if (this.buf.length < hdr + Number(n)) return;
      const msg = this.buf.subarray(hdr, hdr + Number(n));
      this.buf = this.buf.subarray(hdr + Number(n));
      const rid = msg.readUInt32BE(0);
      const p = this.pending.get(rid);
      if (!p) continue; // the reply of a call that timed out
      this.pending.delete(rid);
      clearTimeout(p.timer);
      if (this.pending.size === 0) this.sock.unref(); // an idle client keeps no process alive
      p.resolve(msg.subarray(4));
    }
  }

  /** end: the connection is over; every call in flight rejects with err's reason. */
  end(err) {
    if (this.dead) return;
    this.dead = err instanceof JobqError ? err
      : new TransportError(err && (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') && !this.handshaken
        ? 'unreachable' : 'connection_lost',
      err ? `${this.url}: ${err.message}` : `jobqd at ${this.url} closed the connection`);
    if (this.sock) this.sock.destroy();
    if (this.onOpen) this.onOpen(this.dead);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(this.dead);
    }
    this.pending.clear();
  }

  /** request: sends body (a Buffer); resolves with the reply's body within timeoutMs. */
  request(body, timeoutMs) {
    if (this.dead) return Promise.reject(this.dead);
    const rid = ((this.nextId++ & 0x7fffffff) | ID_BIT) >>> 0;
    const head = Buffer.alloc(this.ipc ? 13 : 12);
    let h = 0;
    if (this.ipc) head[h++] = IPC_MSG;
    head.writeBigUInt64BE(BigInt(body.length + 4), h);
    head.writeUInt32BE(rid, h + 8);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(rid);
        if (this.pending.size === 0 && this.sock) this.sock.unref();
        reject(new TransportError('timeout', `no reply from ${this.url} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(rid, { resolve, reject, timer });
      this.sock.ref();
      this.sock.write(Buffer.concat([head, body]));
    });
  }
}

/**
 * Client: a producer's (and a worker's) handle on one jobqd.
 * url: tcp://HOST:PORT or ipc:///path (default $JOBQ_URL, else tcp://127.0.0.1:7450).
 * options.token: jobqd's auth_token (default $JOBQ_TOKEN), sent with every request.
 * options.timeout: ms a call may take beyond what a held wait or fetch asks for (30000).
 * Every method resolves with jobqd's reply (without "ok"), or rejects with a JobqError.
 */
class Client {
  constructor(url, options = {}) {
    this.url = url || process.env.JOBQ_URL || 'tcp://127.0.0.1:7450';
    this.token = options.token !== undefined ? options.token : process.env.JOBQ_TOKEN;
    this.timeout = options.timeout !== undefined ? options.timeout : 30000;
    this.target = parseUrl(this.url);
    this.conn = null; // a promise of the open Conn
    this.closed = false;
    this.dials = 0; // connections dialled (a test reads it)
  }

  /** close: ends the connection; calls in flight reject with TransportError('closed'). */
  close() {
    this.closed = true;
    const c = this.conn;
    this.conn = null;
    if (c) c.then((k) => k.end(new TransportError('closed', 'the client was closed')), () => {});
  }

  /** connection: the open Conn, dialled (again) when there is none or it ended. */
  connection(deadline) {
    if (this.closed) return Promise.reject(new TransportError('closed', 'the client was closed'));
    if (this.conn) {
      const c = this.conn;
      return c.then((k) => (k.dead ? this.redial(c, deadline) : k), () => this.redial(c, deadline));
    }
    return this.redial(null, deadline);
  }

  redial(old, deadline) {
    if (this.conn !== old) return this.connection(deadline); // another call dialled already
    this.conn = this.dial(deadline);
    return this.conn;
  }

  async dial(deadline) {
    const giveUp = Math.min(deadline, Date.now() + REDIAL_MS);
    for (let pause = 10; ; pause = Math.min(pause * 2, 100)) {
      const k = new Conn(this.target, this.url);
      this.dials++;
      try {
        await k.open(this.target, deadline);
        if (this.token !== undefined && this.token !== null) {
          // jobqd limits a connection's messages until one carried the token: a ping with it
          // first lifts the limit for what follows (its own answer does not matter).
          await k.request(Buffer.from(JSON.stringify({ op: 'ping', token: this.token })),
            Math.max(1, deadline - Date.now()));
        }
        return k;
      } catch (e) {
        k.end(e);
        if (e.code !== 'unreachable' || Date.now() + pause > giveUp) throw e;
      }
      await new Promise((r) => setTimeout(r, pause));
    }
  }

  /** call: sends {op, ...fields} (undefined and null fields left out); held: ms jobqd may hold
   *  the request (a wait's or fetch's timeout). */
  async call(op, fields = {}, held = 0) {
    const req = put({ op }, fields);
    if (this.token !== undefined && this.token !== null) req.token = this.token;
    const body = Buffer.from(JSON.stringify(req));
    const timeout = this.timeout + (held > 0 ? held : 0);
    const k = await this.connection(Date.now() + timeout);
    const reply = await k.request(body, timeout);
    let r;
    try {
      r = JSON.parse(reply.toString('utf8'));
    } catch (e) {
      throw new TransportError('protocol', `a reply that is not JSON: ${reply.subarray(0, 80)}`);
    }
    if (!r || !r.ok) {
      const err = (r && r.error) || {};
      throw new JobqError(err.code || 'internal', err.message || '');
    }
    delete r.ok;
    return r;
  }

  // ---- producers ----

  /** ping: {version, time}. */
  ping() { return this.call('ping'); }

  /** submit: one job; options delay, runAt, priority, maxAttempts, timeout, key, after,
   *  afterPolicy, groupKey (the key of key_concurrency and key_rate), dedupe (ttl,
   *  until_done, replace, debounce: with a key), debounceMax, expiresIn or expiresAt (not
   *  started by then: cancelled as expired); other fields of PROTOCOL.md's submit pass as
   *  written. Resolves with {id, state, duplicate} (and replaced). */
  submit(queue, payload = null, options = {}) {
    return this.call('submit', submitFields({ ...options, queue, payload }));
  }

  /** submitBatch: jobs (objects with payload and submit's options), atomically. options:
   *  queue (the default queue), group (bool), onComplete (a submit object). */
  submitBatch(jobs, options = {}) {
    return this.call('submit_batch', {
      queue: options.queue,
      jobs: jobs.map(submitFields),
      group: options.group || undefined,
      on_complete: options.onComplete ? submitFields(options.onComplete) : undefined,
    });
  }

  /** get: the job with its attempt history. */
  async get(id) { return (await this.call('get', { id })).job; }

  /** getGroup: the group, its members counted by state. */
  async getGroup(group) { return (await this.call('get', { group })).group; }

  /** wait: until the jobs (an id or an array) end or options.timeout passes ('30s');
   *  options returnWhen ('all', 'first', 'first_failure'), cancelPending, group (instead of
   *  ids). Resolves with {done, jobs, ...}. */
  wait(ids, options = {}) {
    const timeout = durationMs(options.timeout !== undefined ? options.timeout : '30s');
    return this.call('wait', {
      ids: ids === undefined || ids === null ? undefined : Array.isArray(ids) ? ids : [ids],
      group: options.group,
      timeout,
      return_when: options.returnWhen,
      cancel_pending: options.cancelPending || undefined,
    }, heldMs(timeout));
  }

  /** cancel: a job that has not finished; resolves with the job. */
  async cancel(id) { return (await this.call('cancel', { id }, this.timeout)).job; }

  /** retry: a dead or cancelled job, ready again; resolves with the job. */
  async retry(id) { return (await this.call('retry', { id })).job; }

  /** promote: a scheduled or retrying job, ready now; resolves with the job. */
  async promote(id) { return (await this.call('promote', { id })).job; }

  /** list: one page, {jobs, next}; options queue, state, after, limit. */
  list(options = {}) { return this.call('list', options); }

  /** stats: {queue name: counts by state, paused, breaker, concurrency, ...}. */
  async stats(options = {}) {
    return (await this.call('stats', { queues: options.queues, series: options.series || undefined })).queues;
  }

  // ---- remote workers (the Worker below uses these) ----

  /** fetch: up to max jobs of queues, long-polling up to timeout; each has its lease. */
  async fetch(queues, options = {}) {
    const timeout = durationMs(options.timeout !== undefined ? options.timeout : '30s');
    const r = await this.call('fetch', fetchFields(queues, options.max || 1, timeout, options.worker),
      heldMs(timeout));
    return r.jobs;
  }

  /** ack: a success; resolves with the job. */
  async ack(id, lease, result) { return (await this.call('ack', { id, lease, result })).job; }

  /** fail: a failure (retry false: dead at once), or with options.snooze (a duration) the
   *  job runs again after it without spending an attempt; resolves with the job. */
  async fail(id, lease, error, retry = true, options = {}) {
    return (await this.call('fail', put({ id, lease, error, retry }, { snooze: durationMs(options.snooze) }))).job;
  }

  /** heartbeat: extends a lease: {lease_expires_at, cancel} (cancel true: stop the job). */
  heartbeat(id, lease) { return this.call('heartbeat', { id, lease }); }
}

// Errors after which a worker stops (its configuration or credentials are wrong); any other
// error of a fetch is retried with backoff.
const FATAL = new Set(['unknown_queue', 'unauthorized', 'invalid_argument', 'unknown_op',
  'malformed', 'too_many_queues']);
const MAX_FETCH = 100; // jobqd's most jobs in one fetch
const MAX_OUTCOMES = 1000; // jobqd's most outcomes in one ack or fail
const MIN_LEASE_MS = 300;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Worker: runs `await handler(job)` for the jobs of queues, `concurrency` at a time.
 *
 * job has id, queue, payload, attempt, maxAttempts, timeout (ms), lease, and signal (an
 * AbortSignal aborted when the job is cancelled or its lease is lost). The handler's value is
 * the job's result (a string as is, undefined/null for none, anything else as JSON); a
 * throw fails the attempt with its message and the job is retried with backoff (until
 * max_attempts); a Permanent makes it dead at once.
 *
 * Outcomes go in batches (one ack, one fail of many jobs) carrying a fetch for the free
 * handlers, so a busy worker makes one round trip per batch; an idle one long-polls
 * (options.pollTimeout ms, 2000: also how soon stop() is seen by the poll). Each lease is
 * extended by a heartbeat once half of it passed. A lost connection is dialled again with
 * backoff (100 ms doubling to 5 s); outcomes are sent again until their lease would have
 * ended; a fetch is never sent twice. run() resolves after stop(), once the jobs in hand
 * finished and their outcomes were sent; it rejects when jobqd refuses the worker for good
 * (unknown_queue, unauthorized).
 */
class Worker {
  constructor(client, queues, handler, options = {}) {
    this.own = !(client instanceof Client);
    this.client = this.own ? new Client(client, { token: options.token }) : client;
    this.queues = typeof queues === 'string' ? [queues] : [...queues];
    this.handler = handler;
    this.concurrency = Math.max(1, options.concurrency || 1);
    this.pollTimeout = options.pollTimeout !== undefined ? options.pollTimeout : 2000;
    this.name = options.name || `${os.hostname()}/${process.pid}`;
    this.onError = options.onError || (() => {}); // (event, err): what went wrong, for logs
  }

  /** stop: no more fetches; run() resolves once the jobs in hand were recorded. */
  stop() {
    this.stopping = true;
    if (this.pump) this.pump();
  }

  /** run: works until stop(); see the class's doc. */
  run() {
    this.stopping = false;
    let inhand = 0; // fetched, handler not finished
    let reserved = 0; // asked for by fetches in flight
    let polling = false; // a long poll (or its backoff) is in flight
    let sending = false; // outcomes are in flight
    let fatal = null;
    const outbox = [];
    const leased = new Map(); // id -> job: fetched, outcome not yet recorded
    let pollPause = 100;

    return new Promise((resolve, reject) => {
      const free = () => this.concurrency - inhand - reserved;
      const fail = (e) => {
        if (!fatal) fatal = e;
        this.stopping = true;
      };
      const pump = () => {
        if (outbox.length && !sending) {
          sendOutcomes();
        } else if (!this.stopping && !polling && !sending && !outbox.length && free() > 0) {
          poll();
        }
        if (this.stopping && !inhand && !outbox.length && !sending && !polling) {
          this.pump = null;
          if (this.own) this.client.close();
          if (fatal) reject(fatal);
          else resolve();
        }
      };
      this.pump = pump;

      const take = (jobs) => {
        for (const d of jobs || []) start(d);
      };

      const start = (d) => {
        const ac = new AbortController();
        const job = {
          id: d.id, queue: d.queue, payload: d.payload, attempt: d.attempt,
          maxAttempts: d.max_attempts, timeout: d.timeout, lease: d.lease, signal: ac.signal,
          groupKey: d.group_key, parentResults: d.parent_results,
          abort: () => ac.abort(), hb: null, expires: 0,
        };
        leased.set(job.id, job);
        inhand++;
        renewed(job, d.lease_expires_at);
        Promise.resolve()
          .then(() => this.handler(job))
          .then((v) => ({ job, ok: true, text: resultText(v) }),
            (e) => (e instanceof Permanent
              ? { job, ok: false, text: e.message || 'permanent failure', retry: false }
              : e instanceof Snooze
                ? { job, ok: false, text: e.message, retry: true, snooze: durationMs(e.delay) }
                : { job, ok: false, text: `${(e && e.name) || 'Error'}: ${e && e.message !== undefined ? e.message : e}`, retry: true }))
          .then((o) => {
            inhand--;
            outbox.push(o);
            pump();
          });
      };

      // The next heartbeat of job: at half of what is left of its lease.
      const renewed = (job, expiresAt) => {
        const left = Math.max(MIN_LEASE_MS, expiresAt ? expiresAt - Date.now() : 60000);
        job.expires = Date.now() + left;
        clearTimeout(job.hb);
        job.hb = setTimeout(() => beat(job), left / 2);
      };

      const beat = async (job) => {
        if (!leased.has(job.id) || job.signal.aborted) return;
        try {
          const r = await this.client.heartbeat(job.id, job.lease);
          if (!leased.has(job.id)) return;
          renewed(job, r.lease_expires_at);
          if (r.cancel) job.abort();
        } catch (e) {
          if (e.code === 'lease_expired' || e.code === 'not_found') {
            this.onError('lease_lost', e);
            job.abort();
          } else if (leased.has(job.id)) {
            job.hb = setTimeout(() => beat(job), 200);
          }
        }
      };

      const poll = async () => {
        polling = true;
        const n = Math.min(free(), MAX_FETCH);
        reserved += n;
        let jobs = [];
        try {
          jobs = await this.client.fetch(this.queues, { max: n, timeout: this.pollTimeout, worker: this.name });
          pollPause = 100;
        } catch (e) {
          this.onError('fetch_failed', e);
          if (FATAL.has(e.code)) {
            fail(e);
          } else {
            await sleep(pollPause);
            pollPause = Math.min(pollPause * 2, 5000);
          }
        }
        reserved -= n;
        polling = false;
        take(jobs);
        pump();
      };

      const sendOutcomes = async () => {
        sending = true;
        const batch = outbox.splice(0, MAX_OUTCOMES);
        const n = this.stopping ? 0 : Math.min(free(), MAX_FETCH);
        reserved += n;
        const fails = batch.filter((o) => !o.ok);
        const acks = batch.filter((o) => o.ok);
        const reqs = [];
        if (fails.length) {
          reqs.push(['fail', fails, fails.map((o) => put({ id: o.job.id, lease: o.job.lease, error: o.text, retry: o.retry }, { snooze: o.snooze }))]);
        }
        if (acks.length) {
          reqs.push(['ack', acks, acks.map((o) => put({ id: o.job.id, lease: o.job.lease }, { result: o.text }))]);
        }
        for (let i = 0; i < reqs.length; i++) {
          const [op, outs, entries] = reqs[i];
          let fetch = n > 0 && i === reqs.length - 1 ? fetchFields(this.queues, n, 0, this.name) : undefined;
          for (let pause = 100; ;) {
            try {
              const r = await this.client.call(op, { jobs: entries, fetch });
              for (const res of r.results || []) if (!res.ok) this.onError('outcome_refused', res.error);
              take(r.jobs);
              break;
            } catch (e) {
              this.onError('outcomes_failed', e);
              if (FATAL.has(e.code)) {
                fail(e);
                if (fetch) { // the fetch part may be what was refused: the leases are valid
                  fetch = undefined;
                  continue;
                }
                break;
              }
              fetch = undefined; // sent again without it, until every lease would have ended
              if (Date.now() >= Math.max(...outs.map((o) => o.job.expires))) break;
              await sleep(pause);
              pause = Math.min(pause * 2, 5000);
            }
          }
        }
        for (const o of batch) {
          clearTimeout(o.job.hb);
          leased.delete(o.job.id);
        }
        reserved -= n;
        sending = false;
        pump();
      };

      pump();
    });
  }
}

/** resultText: a handler's value as a job's result. */
function resultText(v) {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return JSON.stringify(v);
}

module.exports = { Client, Worker, JobqError, TransportError, Permanent, Snooze, durationMs };
