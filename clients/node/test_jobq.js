'use strict';
/**
 * test_jobq.js: jobq.js against a real jobqd (run by tests/it_client_node.sh).
 *
 * Modes (argv[2]):
 *   main          every producer op over ipc:// and tcp://, error codes, pipelining (a held
 *                 wait and many requests in flight on one connection), cancel, a Worker of
 *                 concurrency 4 draining 200 jobs (some failing once), heartbeats over a job
 *                 longer than its lease, a worker killed mid-job (its job comes back after the
 *                 lease); needs $JOBQ_URL (ipc://) and $JOBQ_TCP_URL
 *   auth          jobqd with auth_token = $JOBQ_TEST_TOKEN: the right token works (a large
 *                 request too), a wrong or missing one is unauthorized
 *   block-worker  a worker whose handler prints "started ID" and never returns (to be killed)
 *   reconnect     a Worker and a Client across a restart of jobqd: prints "restart me", reads
 *                 a line once jobqd is back, then both must go on by themselves
 *
 * Synchronisation is by events (replies, waits, lines read from a pipe), with bounds; a sleep
 * happens only as a handler's simulated work.
 */
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const readline = require('node:readline');
const { Client, Worker, JobqError, Permanent, Snooze } = require('./jobq');

const URL = process.env.JOBQ_URL;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ok = (what) => console.log(`ok - ${what}`);

async function expectError(code, promise) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof JobqError, `not a JobqError: ${e}`);
    assert.equal(e.code, code, `got ${e.code} (${e.message}), want ${code}`);
    return e;
  }
  assert.fail(`no error, want ${code}`);
}

/** within: p, or a failure after ms. */
function within(ms, p, what) {
  let t;
  return Promise.race([p, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(t));
}

async function main() {
  const c = new Client(URL);
  const tcp = new Client(process.env.JOBQ_TCP_URL);

  // ---- transports ----
  for (const cl of [c, tcp]) {
    assert.ok((await cl.ping()).version);
    const r = await cl.submit('echo', { hello: cl.url.slice(0, 3) });
    assert.equal(r.state, 'ready');
    assert.equal(r.duplicate, false);
    const done = await cl.wait(r.id, { timeout: '20s' });
    assert.ok(done.done);
    assert.equal(done.jobs[0].state, 'succeeded');
    assert.equal(done.jobs[0].result, `{"hello":"${cl.url.slice(0, 3)}"}`);
  }
  ok('ping, submit, wait over ipc:// and tcp://');

  // ---- submit's options ----
  let r = await c.submit('work', { n: 1 }, { delay: '1h', priority: 5, maxAttempts: 3, timeout: '5s' });
  let j = await c.get(r.id);
  assert.equal(r.state, 'scheduled');
  assert.equal(j.priority, 5);
  assert.equal(j.max_attempts, 3);
  assert.equal(j.timeout, 5000);
  assert.deepEqual(j.payload, { n: 1 });
  assert.equal((await c.promote(r.id)).state, 'ready');
  await c.cancel(r.id);
  const k1 = await c.submit('work', { k: 1 }, { key: 'order-7' });
  const k2 = await c.submit('work', { k: 1 }, { key: 'order-7' });
  assert.ok(k2.duplicate);
  assert.equal(k2.id, k1.id);
  await expectError('key_conflict', c.submit('work', { k: 2 }, { key: 'order-7' }));
  await c.cancel(k1.id);
  r = await c.submit('work', 'at', { runAt: new Date(Date.now() + 3600e3) });
  assert.equal(r.state, 'scheduled');
  await c.cancel(r.id);
  ok('submit with delay, runAt, priority, maxAttempts, timeout, key; promote');

  // ---- batches ----
  const b = await c.submitBatch([0, 1, 2, 3, 4].map((i) => ({ payload: i })).concat([{ queue: 'echo', payload: 'x' }]),
    { queue: 'work' });
  assert.equal(b.ids.length, 6);
  assert.deepEqual(b.duplicates, []);
  assert.equal((await c.wait(b.ids[5], { timeout: '20s' })).jobs[0].queue, 'echo');
  const before = (await c.stats({ queues: ['work'] })).work.ready;
  await expectError('invalid_argument', c.submitBatch([{ payload: 1 }, { payload: 2, priority: 'high' }], { queue: 'work' }));
  assert.equal((await c.stats({ queues: ['work'] })).work.ready, before, 'a refused batch stored nothing');
  const g = await c.submitBatch([{ payload: 1 }, { payload: 2 }],
    { queue: 'echo', group: true, onComplete: { queue: 'work', payload: 'all done' } });
  const gw = await c.wait(null, { group: g.group, timeout: '20s' });
  assert.ok(gw.done && gw.group.on_complete.id);
  assert.equal((await c.get(gw.group.on_complete.id)).payload.payload, 'all done');
  for (const id of b.ids.slice(0, 5)) await c.cancel(id);
  await c.cancel(gw.group.on_complete.id);
  ok('submitBatch: atomic; a group with onComplete');

  // ---- errors with their wire codes ----
  await expectError('unknown_queue', c.submit('no-such-queue', 1));
  await expectError('invalid_argument', c.submit('work', 1, { priority: 'high' }));
  await expectError('invalid_argument', c.submit('work', 1, { delay: 'ten seconds' }));
  await expectError('not_found', c.get(999999));
  await expectError('not_found', c.cancel(999999));
  await expectError('invalid_state', c.cancel(b.ids[5]));
  await expectError('unknown_op', c.call('no_such_op'));
  ok('unknown_queue, invalid_argument, not_found, invalid_state, unknown_op');

  // ---- pipelining: a held wait does not delay what follows it on the connection ----
  let jid = (await c.submit('work', 'held')).id;
  const t0 = Date.now();
  r = await c.wait(jid, { timeout: '300ms' });
  assert.ok(!r.done && r.jobs[0].state === 'ready');
  assert.ok(Date.now() - t0 >= 290, 'a wait on a pending job is held until its timeout');
  const dials = c.dials;
  let waitDone = false;
  const waiting = c.wait(jid, { timeout: '30s' }).then((x) => { waitDone = true; return x; });
  assert.ok((await c.ping()).version);
  assert.equal(waitDone, false, 'the ping sent after the wait was answered first');
  let [f] = await c.fetch('work', { timeout: '5s' });
  while (f.id !== jid) { // older jobs of the queue come first: fail them for good
    await c.fail(f.id, f.lease, 'not this one', false);
    [f] = await c.fetch('work', { timeout: '5s' });
  }
  await c.ack(f.id, f.lease, 'acked');
  r = await within(10000, waiting, 'the held wait');
  assert.ok(r.done);
  assert.equal(r.jobs[0].result, 'acked');
  // 300 submits in flight at once on the one connection, each reply to its own request.
  const many = await Promise.all(Array.from({ length: 300 }, (_, i) => c.submit('work', { i })));
  assert.equal(new Set(many.map((x) => x.id)).size, 300);
  const got = await Promise.all(many.slice(0, 50).map((x) => c.get(x.id)));
  got.forEach((x, i) => assert.deepEqual(x.payload, { i }));
  assert.equal(c.dials, dials, 'every call went on the same connection');
  for (const x of many) await c.cancel(x.id);
  ok('pipelining: a ping answered before the held wait sent ahead of it; 300 submits in flight on one connection');

  // ---- cancel, retry, list ----
  jid = (await c.submit('work', 'to cancel')).id;
  assert.equal((await c.cancel(jid)).state, 'cancelled');
  await expectError('invalid_state', c.cancel(jid));
  assert.equal((await c.retry(jid)).state, 'ready');
  assert.equal((await c.cancel(jid)).state, 'cancelled');
  const page = await c.list({ queue: 'work', state: 'cancelled', limit: 2 });
  assert.equal(page.jobs.length, 2);
  assert.notEqual(page.next, null);
  const rest = await c.list({ queue: 'work', state: 'cancelled', after: page.next, limit: 1000 });
  assert.ok(rest.jobs.every((x) => x.id > page.next) && rest.next === null);
  ok('cancel, invalid_state on a second cancel, retry, list with paging');

  // ---- a worker of concurrency 4 drains 200 jobs, some failing once ----
  let running = 0;
  let most = 0;
  let runs = 0;
  const handler = async (job) => {
    const n = job.payload.n;
    running++;
    most = Math.max(most, running);
    runs++;
    try {
      await sleep(5); // the job's work
      if (n % 50 === 7) throw new Permanent(`bad input ${n}`);
      if (n % 10 === 3 && job.attempt === 1) throw new Error(`flaky ${n}`);
      return `done ${n}`;
    } finally {
      running--;
    }
  };
  const ids = (await c.submitBatch(Array.from({ length: 200 }, (_, n) => ({ payload: { n } })), { queue: 'drain' })).ids;
  let w = new Worker(process.env.JOBQ_TCP_URL, ['drain'], handler, { concurrency: 4 });
  let t1 = Date.now();
  let run = w.run();
  r = await c.wait(ids, { timeout: '120s' });
  const drained = (Date.now() - t1) / 1000;
  assert.ok(r.done, '200 jobs drained within 120 s');
  w.stop();
  await within(30000, run, 'the worker stopping');
  r.jobs.forEach((x, n) => {
    if (n % 50 === 7) {
      assert.equal(x.state, 'dead');
      assert.equal(x.attempt, 1);
      assert.equal(x.error, `bad input ${n}`);
    } else if (n % 10 === 3) {
      assert.equal(x.state, 'succeeded');
      assert.equal(x.attempt, 2);
      assert.equal(x.result, `done ${n}`);
    } else {
      assert.equal(x.state, 'succeeded', JSON.stringify(x));
      assert.equal(x.attempt, 1);
    }
  });
  const h = (await c.get(ids[3])).attempts;
  assert.deepEqual(h.map((a) => a.kind), ['error', 'success']);
  assert.equal(h[0].error, 'Error: flaky 3');
  assert.equal(most, 4, `handlers at once: ${most}, want 4`);
  assert.equal(runs, 220);
  ok(`a Worker of concurrency 4 drained 200 jobs (${drained.toFixed(2)} s), 20 retried once, 4 dead by Permanent`);

  // ---- groupKey, a replaced waiting job, expiry, a snooze and a parent's result ----
  const rep1 = await c.submit('drain', 'v1', { key: 'only-one', dedupe: 'replace', delay: '1h' });
  const rep2 = await c.submit('drain', 'v2', { key: 'only-one', dedupe: 'replace', delay: '1h' });
  assert.equal(rep2.id, rep1.id);
  assert.equal(rep2.replaced, true);
  assert.equal((await c.get(rep1.id)).payload, 'v2');
  await c.cancel(rep1.id);
  const late = (await c.submit('drain', 'too late', { delay: '300ms', expiresIn: '100ms' })).id;
  const parent = (await c.submit('drain', { step: 'parent' }, { groupKey: 'tenant-1' })).id;
  const child = (await c.submit('drain', { step: 'child' }, { after: [parent] })).id;
  const nap = (await c.submit('drain', { step: 'snooze' })).id;
  const seen = {};
  w = new Worker(URL, 'drain', async (job) => {
    const step = job.payload.step;
    (seen[step] = seen[step] || []).push(job);
    if (step === 'snooze' && seen[step].length === 1) throw new Snooze('100ms', 'not yet');
    return `${step} done`;
  }, { concurrency: 2 });
  run = w.run();
  r = await c.wait([parent, child, nap, late], { timeout: '30s' });
  w.stop();
  await within(30000, run, 'the worker stopping');
  assert.ok(r.done);
  const st = Object.fromEntries(r.jobs.map((x) => [x.id, x.state]));
  assert.deepEqual([st[parent], st[child], st[nap]], ['succeeded', 'succeeded', 'succeeded']);
  assert.equal(st[late], 'cancelled');
  assert.equal((await c.get(late)).error, 'expired');
  assert.equal(seen.parent[0].groupKey, 'tenant-1');
  assert.equal((await c.get(parent)).group_key, 'tenant-1');
  assert.deepEqual(seen.child[0].parentResults, { [String(parent)]: 'parent done' });
  const napped = await c.get(nap);
  assert.equal(napped.attempt, 1);
  assert.deepEqual(napped.attempts.map((a) => a.kind), ['snoozed', 'success']);
  ok('groupKey on a job, dedupe replace of a waiting job, expiry, a Snooze that spent no attempt, and a child handed its parent\'s result');

  // ---- heartbeats keep a lease (2 s) over a job of 3.5 s; a cancel reaches the handler ----
  let started;
  const startedP = new Promise((res) => { started = res; });
  const slow = async (job) => {
    if (job.payload === 'cancel me') {
      started();
      await within(20000, new Promise((res) => job.signal.addEventListener('abort', res)), 'the cancel');
      return 'saw the cancel';
    }
    await sleep(3500); // the job's work, longer than its lease
    return 'slow done';
  };
  w = new Worker(URL, 'lease', slow, { concurrency: 2 });
  run = w.run();
  jid = (await c.submit('lease', 'long')).id;
  r = await c.wait(jid, { timeout: '30s' });
  j = r.jobs[0];
  assert.ok(r.done);
  assert.equal(j.state, 'succeeded');
  assert.equal(j.attempt, 1);
  assert.equal(j.result, 'slow done');
  assert.deepEqual((await c.get(jid)).attempts.map((a) => a.kind), ['success']);
  const cid = (await c.submit('lease', 'cancel me')).id;
  await within(20000, startedP, 'the handler starting');
  await c.cancel(cid);
  w.stop();
  await within(30000, run, 'the worker stopping');
  assert.equal((await c.get(cid)).state, 'cancelled');
  ok('heartbeats hold a 2 s lease over a 3.5 s job; a cancel reaches the running handler');

  // ---- a worker killed mid-job: its job comes back after the lease ----
  jid = (await c.submit('lease', 'block')).id;
  const p = spawn(process.execPath, [__filename, 'block-worker'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((res) => p.on('exit', res));
  try {
    const line = await within(20000, new Promise((res) => readline.createInterface({ input: p.stdout }).once('line', res)),
      'the blocking worker starting its job');
    assert.equal(line, `started ${jid}`);
  } finally {
    p.kill('SIGKILL');
    await exited;
  }
  t1 = Date.now();
  w = new Worker(URL, 'lease', (job) => `second ${job.attempt}`);
  run = w.run();
  r = await c.wait(jid, { timeout: '30s' });
  const back = (Date.now() - t1) / 1000;
  w.stop();
  await within(30000, run, 'the worker stopping');
  j = await c.get(jid);
  assert.ok(r.done);
  assert.equal(j.state, 'succeeded');
  assert.equal(j.result, 'second 2');
  assert.deepEqual(j.attempts.map((a) => a.kind), ['lease', 'success']);
  ok(`a worker killed mid-job: its job ran again after its lease (${back.toFixed(2)} s)`);
  c.close();
  tcp.close();
}

async function blockWorker() {
  await new Worker(URL, 'lease', (job) => {
    console.log(`started ${job.id}`);
    return new Promise(() => {}); // until killed
  }).run();
}

async function reconnect() {
  const c = new Client(URL);
  const w = new Worker(URL, 'drain', (job) => `r ${job.payload}`, { concurrency: 2 });
  const run = w.run();
  let jid = (await c.submit('drain', 1)).id;
  assert.equal((await c.wait(jid, { timeout: '20s' })).jobs[0].result, 'r 1');
  console.log('restart me');
  const line = await new Promise((res) => readline.createInterface({ input: process.stdin }).once('line', res));
  assert.equal(line, 'back', 'the test restarted jobqd');
  // The connection died with the old jobqd: the next call dials again.
  jid = (await c.submit('drain', 2)).id;
  const r = await c.wait(jid, { timeout: '30s' });
  assert.ok(r.done);
  assert.equal(r.jobs[0].result, 'r 2');
  w.stop();
  await within(30000, run, 'the worker stopping');
  c.close();
  ok('a Client and a Worker go on by themselves after jobqd restarted');
  process.exit(0); // stdin's reader would keep the process alive
}

async function auth() {
  const token = process.env.JOBQ_TEST_TOKEN;
  delete process.env.JOBQ_TOKEN;
  const good = new Client(URL, { token });
  assert.ok((await good.ping()).version);
  const big = 'x'.repeat(100 * 1024); // over max_unauthenticated_message: needs the ping first
  const jid = (await good.submit('work', big)).id;
  assert.equal((await good.get(jid)).payload, big);
  good.close();
  const wrong = new Client(URL, { token: `${token}x` });
  await expectError('unauthorized', wrong.ping());
  await expectError('unauthorized', wrong.submit('work', big));
  wrong.close();
  const none = new Client(URL);
  await expectError('unauthorized', none.ping());
  none.close();
  const w = new Worker(URL, 'work', () => null, { token: 'wrong' });
  await expectError('unauthorized', within(20000, w.run(), 'a worker with a wrong token ending'));
  ok("auth_token: the right token (and a 100 KiB request) works; wrong, missing and a worker's wrong token are unauthorized");
}

const modes = { main, auth, 'block-worker': blockWorker, reconnect };
modes[process.argv[2]]().catch((e) => {
  console.error(e);
  process.exit(1);
});
