// peer.js: compare.sh's load generator for the Node job queues, BullMQ (on a local
// redis-server) and graphile-worker (on a local PostgreSQL), through their own public APIs,
// with the shapes of work bench/peer_load.c drives beanstalkd, Redis and jobqd with.
//
// usage: node peer.js bullmq|graphile submit|batch|drain|mixed [OPTIONS]
//   --redis PORT       bullmq: the redis-server on 127.0.0.1:PORT
//   --pg URL           graphile: postgres://USER@127.0.0.1:PORT/DB
//   --seconds S        submit, batch, mixed: how long (default 5); drain: the most it waits
//   --jobs N           drain: the backlog (default 20000)
//   --producers N      submit, mixed: producers with one request in flight each (default 16)
//   --workers N        drain, mixed: worker processes (default 4)
//   --concurrency N    drain, mixed: jobs each worker process runs at once (default 4)
//   --batch N          batch, drain's preload: jobs per request (default 1000)
// Prints one line "result target=... workload=... jobs_per_s=X p50_us=Y p99_us=Z errors=E":
// submit: submits/s, latency per submit; batch: jobs/s, latency per request; drain: jobs
// started/s from the first worker's go to the last job's start; mixed: jobs started/s by the
// deadline, latency from a job's submit to its handler's start (one monotonic clock).
'use strict';

const { fork } = require('child_process');

const BODY_PAD = 'x'.repeat(160); // with t and seq, about the 200 bytes the C peers send
const READY_TIMEOUT_MS = 30000; // a worker process that is not ready by then fails the run
const REPORT_MS = 10;
const WATCHDOG_S = 90; // the run fails this long past its own --seconds // how often worker processes report their counts

function parseArgs(argv) {
  const o = {
    target: argv[0],
    workload: argv[1],
    redis: 0,
    pg: '',
    seconds: 5,
    jobs: 20000,
    producers: 16,
    workers: 4,
    concurrency: 4,
    batch: 1000,
  };
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    const v = argv[i + 1];
    if (!(k in o) || v === undefined) {
      throw new Error(`unknown option or missing value: ${argv[i]}`);
    }
    o[k] = typeof o[k] === 'number' ? Number(v) : v;
  }
  return o;
}

const nowNs = () => process.hrtime.bigint(); // CLOCK_MONOTONIC: one clock for all processes

function body(seq) {
  return { t: nowNs().toString(), seq, pad: BODY_PAD };
}

function pct(sorted, p) {
  if (sorted.length === 0) {
    return -1;
  }
  const rank = Math.ceil(p * sorted.length);
  return sorted[Math.min(Math.max(rank - 1, 0), sorted.length - 1)];
}

function result(o, secs, jobs, lat, errors, extra) {
  lat.sort((a, b) => a - b);
  const rate = secs > 0 ? jobs / secs : 0;
  console.log(
    `result target=${o.target} workload=${o.workload} seconds=${secs.toFixed(3)} ` +
      `jobs=${jobs} jobs_per_s=${rate.toFixed(1)} p50_us=${pct(lat, 0.5).toFixed(1)} ` +
      `p99_us=${pct(lat, 0.99).toFixed(1)} errors=${errors}${extra || ''}`,
  );
}

// ---- the two queues behind one small interface ----

function bullmqDriver(o) {
  const { Queue, Worker } = require('bullmq');
  const connection = { host: '127.0.0.1', port: o.redis, maxRetriesPerRequest: null };
  const name = 'bench';
  return {
    async producer() {
      const q = new Queue(name, { connection });
      await q.waitUntilReady();
      return {
        add: (data) => q.add('j', data),
        addMany: (datas) => q.addBulk(datas.map((data) => ({ name: 'j', data }))),
        close: () => q.close(),
      };
    },
    // setup: an empty queue, whatever an earlier workload left.
    async setup() {
      const q = new Queue(name, { connection });
      await q.obliterate({ force: true });
      await q.close();
    },
    // worker: a BullMQ Worker running handler with concurrency; started by run().
    async worker(handler) {
      const w = new Worker(name, async (job) => handler(job.data), {
        connection,
        concurrency: o.concurrency,
        autorun: false,
      });
      w.on('error', (e) => console.error(`peer.js: bullmq worker: ${e.message}`));
      await w.waitUntilReady();
      return { run: () => w.run(), close: () => w.close() };
    },
  };
}

function graphileDriver(o) {
  const { Pool } = require('pg');
  const { run, makeWorkerUtils, Logger } = require('graphile-worker');
  // graphile-worker logs every completed job at info; keep warnings and errors only, as a
  // deployment tuned for throughput would.
  const logger = new Logger(() => (level, message) => {
    if (level === 'error' || level === 'warning') {
      console.error(`peer.js: graphile-worker ${level}: ${message}`);
    }
  });
  const BULK_SQL =
    'select graphile_worker.add_jobs(array(select json_populate_recordset(' +
    'null::graphile_worker.job_spec, $1::json)))';
  return {
    async setup() {
      const utils = await makeWorkerUtils({ connectionString: o.pg, logger });
      await utils.migrate();
      await utils.withPgClient((c) => c.query('truncate graphile_worker._private_jobs cascade'));
      await utils.release();
    },
    async producer() {
      const pool = new Pool({ connectionString: o.pg, max: 1 });
      const utils = await makeWorkerUtils({ pgPool: pool, logger });
      return {
        add: (data) => utils.addJob('t', data),
        addMany: (datas) =>
          pool.query(BULK_SQL, [JSON.stringify(datas.map((payload) => ({ identifier: 't', payload })))]),
        close: async () => {
          await utils.release();
          await pool.end();
        },
      };
    },
    async worker(handler) {
      let runner = null;
      return {
        run: async () => {
          runner = await run({
            connectionString: o.pg,
            concurrency: o.concurrency,
            noHandleSignals: true,
            logger,
            pollInterval: 1000,
            taskList: { t: async (payload) => handler(payload) },
          });
        },
        close: async () => {
          if (runner) {
            await runner.stop();
          }
        },
      };
    },
  };
}

function driver(o) {
  if (o.target === 'bullmq') {
    return bullmqDriver(o);
  }
  if (o.target === 'graphile') {
    return graphileDriver(o);
  }
  throw new Error(`unknown target ${o.target}`);
}

// ---- a worker process ----

async function childMain(o) {
  const d = driver(o);
  let deadline = 0n;
  let count = 0;
  let sent = 0;
  const lat = [];
  const w = await d.worker(async (data) => {
    const t = nowNs();
    if (deadline !== 0n && t > deadline) {
      return;
    }
    count++;
    if (data && data.t) {
      lat.push(Number(t - BigInt(data.t)) / 1e3);
    }
  });
  const timer = setInterval(() => {
    if (count !== sent) {
      process.send({ type: 'count', n: count - sent });
      sent = count;
    }
  }, REPORT_MS);
  process.on('message', async (m) => {
    if (m.type === 'go') {
      deadline = BigInt(m.deadline);
      w.run().catch((e) => {
        console.error(`peer.js: worker: ${e.message}`);
        process.exit(1);
      });
    } else if (m.type === 'stop') {
      clearInterval(timer);
      await w.close();
      process.send({ type: 'done', n: count - sent, lat }, () => process.exit(0));
    }
  });
  process.send({ type: 'ready' });
}

// startWorkers: forks o.workers worker processes and resolves once each is ready.
function startWorkers(o, onCount) {
  const args = process.argv.slice(2);
  const kids = [];
  const ready = [];
  for (let i = 0; i < o.workers; i++) {
    const k = fork(__filename, ['--child', ...args], { stdio: 'inherit' });
    kids.push(k);
    ready.push(
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('a worker process was not ready in 30 s')), READY_TIMEOUT_MS);
        k.on('exit', (code) => reject(new Error(`a worker process exited with ${code}`)));
        k.on('message', (m) => {
          if (m.type === 'ready') {
            clearTimeout(timer);
            resolve();
          } else if (m.type === 'count') {
            onCount(m.n);
          }
        });
      }),
    );
  }
  return { kids, ready: Promise.all(ready) };
}

// stopWorkers: asks each worker process to stop; resolves with their late counts and latencies.
function stopWorkers(kids) {
  return Promise.all(
    kids.map(
      (k) =>
        new Promise((resolve) => {
          const timer = setTimeout(() => {
            k.kill('SIGKILL');
            resolve({ n: 0, lat: [] });
          }, 20000);
          k.on('message', (m) => {
            if (m.type === 'done') {
              clearTimeout(timer);
              resolve(m);
            }
          });
          k.send({ type: 'stop' });
        }),
    ),
  );
}

// ---- the workloads ----

async function submit(o, d) {
  const prods = await Promise.all(Array.from({ length: o.producers }, () => d.producer()));
  const lat = [];
  let jobs = 0;
  let errors = 0;
  const start = nowNs();
  const deadline = start + BigInt(Math.round(o.seconds * 1e9));
  await Promise.all(
    prods.map(async (p, i) => {
      let seq = i * 1e9;
      for (;;) {
        const t0 = nowNs();
        if (t0 >= deadline) {
          return;
        }
        try {
          await p.add(body(++seq));
        } catch (e) {
          if (errors++ === 0) {
            console.error(`peer.js: submit: ${e.message}`);
          }
          return;
        }
        const t1 = nowNs();
        if (t1 <= deadline) {
          jobs++;
          lat.push(Number(t1 - t0) / 1e3);
        }
      }
    }),
  );
  await Promise.all(prods.map((p) => p.close()));
  result(o, Number(deadline - start) / 1e9, jobs, lat, errors);
  return errors;
}

async function batch(o, d) {
  const p = await d.producer();
  const lat = [];
  let jobs = 0;
  let errors = 0;
  let seq = 0;
  const start = nowNs();
  const deadline = start + BigInt(Math.round(o.seconds * 1e9));
  let end = start;
  while (nowNs() < deadline) {
    const datas = [];
    for (let i = 0; i < o.batch; i++) {
      datas.push(body(++seq));
    }
    const t0 = nowNs();
    try {
      await p.addMany(datas);
    } catch (e) {
      console.error(`peer.js: batch: ${e.message}`);
      errors++;
      break;
    }
    end = nowNs();
    jobs += o.batch;
    lat.push(Number(end - t0) / 1e3);
  }
  await p.close();
  result(o, Number(end - start) / 1e9, jobs, lat, errors);
  return errors;
}

async function drain(o, d) {
  const p = await d.producer();
  for (let n = 0; n < o.jobs; n += o.batch) {
    const datas = [];
    for (let i = 0; i < Math.min(o.batch, o.jobs - n); i++) {
      datas.push({ seq: n + i, pad: BODY_PAD });
    }
    await p.addMany(datas);
  }
  await p.close();
  let done = 0;
  let finish = null;
  const all = new Promise((resolve) => {
    finish = resolve;
  });
  const { kids, ready } = startWorkers(o, (n) => {
    done += n;
    if (done >= o.jobs) {
      finish();
    }
  });
  await ready;
  const start = nowNs();
  const limit = start + BigInt(Math.round(o.seconds * 1e9));
  for (const k of kids) {
    k.send({ type: 'go', deadline: '0' });
  }
  const timer = setTimeout(finish, o.seconds * 1000);
  await all;
  clearTimeout(timer);
  const end = nowNs();
  const secs = Number((end < limit ? end : limit) - start) / 1e9;
  const seen = done;
  await stopWorkers(kids);
  const note = seen < o.jobs ? ` unfinished=${o.jobs - seen}` : '';
  result(o, secs, seen, [], 0, ` backlog=${o.jobs}${note}`);
  return 0;
}

async function mixed(o, d) {
  const { kids, ready } = startWorkers(o, () => {});
  await ready;
  const prods = await Promise.all(Array.from({ length: o.producers }, () => d.producer()));
  const start = nowNs();
  const deadline = start + BigInt(Math.round(o.seconds * 1e9));
  for (const k of kids) {
    k.send({ type: 'go', deadline: deadline.toString() });
  }
  let puts = 0;
  let errors = 0;
  await Promise.all(
    prods.map(async (p, i) => {
      let seq = i * 1e9;
      while (nowNs() < deadline) {
        try {
          await p.add(body(++seq));
        } catch (e) {
          if (errors++ === 0) {
            console.error(`peer.js: submit: ${e.message}`);
          }
          return;
        }
        if (nowNs() <= deadline) {
          puts++;
        }
      }
    }),
  );
  await Promise.all(prods.map((p) => p.close()));
  const outs = await stopWorkers(kids);
  let jobs = 0;
  const lat = [];
  for (const m of outs) {
    jobs += m.n;
    for (const v of m.lat) {
      lat.push(v);
    }
  }
  jobs = lat.length; // every job started by the deadline left one sample
  const secs = Number(deadline - start) / 1e9;
  result(o, secs, jobs, lat, errors, ` puts=${puts} put_per_s=${(puts / secs).toFixed(1)}`);
  return errors;
}

async function main() {
  const argv = process.argv.slice(2);
  const child = argv[0] === '--child';
  const o = parseArgs(child ? argv.slice(1) : argv);
  if (child) {
    process.on('disconnect', () => process.exit(1)); // the parent is gone
    return childMain(o);
  }
  // Every wait below is bounded: a queue that does not answer fails the run instead of hanging.
  setTimeout(() => {
    console.error(`peer.js: ${o.target} ${o.workload}: no result after ${WATCHDOG_S + o.seconds} s`);
    process.exit(1);
  }, (WATCHDOG_S + o.seconds) * 1000).unref();
  const d = driver(o);
  await d.setup();
  const w = { submit, batch, drain, mixed }[o.workload];
  if (!w) {
    throw new Error(`unknown workload ${o.workload}`);
  }
  const errors = await w(o, d);
  process.exit(errors > 0 ? 1 : 0);
}

main().catch((e) => {
  console.error(`peer.js: ${e.stack || e.message}`);
  process.exit(1);
});
