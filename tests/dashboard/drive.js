// drive.js: the dashboard in headless Chromium with real clicks (puppeteer-core driving
// Debian's chromium), against the jobqd that tests/it_dashboard.sh started and filled:
// filter the list and page through it, find a job by id and by key, open it, retry a dead
// one, run a scheduled one now, cancel one (and back out of a cancel), bulk-cancel by filter
// after its preview (when jobqd has mutate), the counts beside `jobq stats`, and the read
// token's pages without actions. Every wait is on DOM state, never a fixed sleep.
//
// Environment: JOBQ_HTTP (http://127.0.0.1:PORT), JOBQ_ADMIN and JOBQ_READER (tokens),
// JOBQ_SEED (the ids it_dashboard.sh made), JOBQ_EXPECT_MUTATE (1: jobqd has mutate),
// JOBQ_CLI (a command line running `jobq --json` against the same jobqd), CHROMIUM (the
// browser), JOBQ_SHOTS (where screenshots go), JOBQ_DOCS_SHOT (optional: the README's copy).
'use strict';
const puppeteer = require('puppeteer-core');
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const HTTP = need('JOBQ_HTTP');
const ADMIN = need('JOBQ_ADMIN');
const READER = need('JOBQ_READER');
const SHOTS = need('JOBQ_SHOTS');
const WAIT = { timeout: Number(process.env.JOBQ_UI_TIMEOUT || 30000) };

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}
function ok(msg) { console.log('ok - ' + msg); }
function fail(msg) { throw new Error(msg); }
function expectEq(what, got, want) {
  if (JSON.stringify(got) !== JSON.stringify(want)) fail(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

// api: one op over POST /v1/ops with the admin token, for setting up and checking, apart
// from the browser.
async function api(req) {
  const r = await fetch(HTTP + '/v1/ops', {
    method: 'POST', body: JSON.stringify(req),
    headers: { Authorization: 'Bearer ' + ADMIN, 'Content-Type': 'application/json' },
  });
  const j = await r.json();
  if (j.ok !== true) fail(`${JSON.stringify(req)}: ${JSON.stringify(j.error)}`);
  return j;
}
async function listAll(filter) {
  const out = [];
  let after = 0;
  for (;;) {
    const r = await api({ op: 'list', ...filter, limit: 1000, ...(after ? { after } : {}) });
    out.push(...r.jobs);
    if (r.next === null) return out;
    after = r.next;
  }
}
// cliStats: `jobq --json stats`, the CLI's view of the counts.
function cliStats() {
  const [cmd, ...args] = JSON.parse(need('JOBQ_CLI'));
  return JSON.parse(execFileSync(cmd, [...args, 'stats'], { encoding: 'utf8' }));
}

// ---- page helpers ----
async function rowsOf(page) {
  return page.$$eval('#jobs-table tbody tr', (trs) => trs.map((tr) => ({
    id: Number(tr.dataset.jobId), state: tr.dataset.state,
    key: tr.querySelector('td.key').textContent, error: tr.querySelector('td.err').title,
    actions: [...tr.querySelectorAll('button.act')].map((b) => b.dataset.action),
  })));
}
// listLoaded: waits for the list to finish a load begun after the table left "ready".
async function waitList(page) {
  await page.waitForFunction(() => {
    const t = document.getElementById('jobs-table');
    return document.body.dataset.view === 'jobs' && t.dataset.state === 'ready' && !t.hasAttribute('aria-busy');
  }, WAIT);
}
// clickAndReload: clicks sel and waits until the list loaded again (it marks itself loading
// at once on a click, so the wait cannot see the old page as the new one).
async function clickAndReload(page, sel) {
  await page.evaluate(() => { document.getElementById('jobs-table').dataset.state = 'clicked'; });
  await page.click(sel);
  await waitList(page);
}
async function setField(page, sel, value) {
  await page.click(sel, { clickCount: 3 });
  await page.keyboard.press('Backspace');
  if (value) await page.type(sel, value);
}
async function filterList(page, f) {
  await page.select('#f-queue', f.queue || '');
  await page.select('#f-state', f.state || '');
  await setField(page, '#f-key', f.key || '');
  await setField(page, '#f-error', f.error || '');
  await clickAndReload(page, '#f-apply');
}
async function search(page, text) {
  await setField(page, '#search-q', text);
  await page.keyboard.press('Enter');
}
async function openJob(page, id) {
  await search(page, String(id));
  await page.waitForFunction((id) => document.body.dataset.view === 'job' &&
    document.getElementById('job-title').textContent.startsWith(`Job #${id} `), WAIT, id);
}
async function confirmDialog(page, yes) {
  await page.waitForSelector('#confirm[open]', { visible: true, ...WAIT });
  const text = await page.$eval('#confirm', (d) => d.textContent.replace(/\s+/g, ' ').trim());
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  expectEq('the button focused in the confirmation', focused, 'confirm-no');
  await page.click(yes ? '#confirm-yes' : '#confirm-no');
  await page.waitForSelector('#confirm:not([open])', WAIT);
  return text;
}
async function overviewCounts(page) {
  return page.$$eval('section[data-queue]', (cards) => Object.fromEntries(cards.map((c) => [c.dataset.queue,
    Object.fromEntries([...c.querySelectorAll('[data-count]')].map((n) => [n.dataset.count, Number(n.dataset.value)]))])));
}

async function main() {
  const seed = JSON.parse(fs.readFileSync(need('JOBQ_SEED'), 'utf8'));
  const browser = await puppeteer.launch({
    executablePath: need('CHROMIUM'), headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--hide-scrollbars', '--window-size=1400,1000'],
    defaultViewport: { width: 1400, height: 1000 },
  });
  const t0 = Date.now();
  const foreign = [];
  const pageErrors = [];
  const watch = (page) => {
    page.on('request', (r) => { if (!r.url().startsWith(HTTP) && !r.url().startsWith('data:')) foreign.push(r.url()); });
    page.on('pageerror', (e) => pageErrors.push(String(e)));
  };
  try {
    const page = await browser.newPage();
    watch(page);
    // The browser's login: the admin token as the password of any user name.
    await page.authenticate({ username: 'admin', password: ADMIN });
    await page.goto(HTTP + '/', { waitUntil: 'load' });
    await page.waitForSelector('body[data-loaded="1"][data-rights="write"]:not([data-mutate="unknown"])', WAIT);
    const hasMutate = await page.$eval('body', (b) => b.dataset.mutate === 'yes');
    if (process.env.JOBQ_EXPECT_MUTATE === '1' && !hasMutate) fail('jobqd has the mutate op, but the page took it for one without');
    ok(`the dashboard signed in with the admin token can act (mutate: ${hasMutate ? 'yes' : 'no'})`);

    // ---- the job list: a count of the overview opens it filtered ----
    await page.click('section[data-queue="work"] a.count.dead');
    await waitList(page);
    const wantDead = (await listAll({ queue: 'work', state: 'dead' })).map((j) => j.id);
    let rows = await rowsOf(page);
    expectEq('the dead jobs of work from the overview link', rows.map((r) => r.id), wantDead);
    expectEq('the total beside the list', await page.$eval('#jobs-summary .total', (e) => Number(e.dataset.total)), wantDead.length);
    if (!rows.every((r) => r.state === 'dead' && r.actions.includes('retry') && !r.actions.includes('cancel'))) {
      fail('a dead row without Retry, or with Cancel: ' + JSON.stringify(rows[0]));
    }
    ok(`the overview's dead count of queue work opens the list of its ${rows.length} dead jobs, each with Retry`);
    if (hasMutate) {
      // A bulk retry's preview over them: a dry run, nothing changes (the README's screenshot).
      await page.click('#bulk summary');
      await page.select('#bulk-action', 'retry');
      await page.click('#bulk-preview-btn');
      await page.waitForSelector('#bulk-preview[data-matched]', WAIT);
      expectEq('retry preview', await page.$eval('#bulk-preview', (p) => [Number(p.dataset.matched), Number(p.dataset.changed)]),
        [wantDead.length, wantDead.length]);
      expectEq('apply button', await page.$eval('#bulk-apply', (b) => [b.disabled, b.textContent]), [false, `Retry ${wantDead.length} jobs…`]);
      expectEq('dead jobs after the preview', (await listAll({ queue: 'work', state: 'dead' })).length, wantDead.length);
      await page.screenshot({ path: path.join(SHOTS, 'dashboard-jobs.png') });
      if (process.env.JOBQ_DOCS_SHOT) fs.copyFileSync(path.join(SHOTS, 'dashboard-jobs.png'), process.env.JOBQ_DOCS_SHOT);
      ok(`a bulk retry's preview counts the ${wantDead.length} dead jobs and changes nothing`);
    }

    // Filters: queue, state, key prefix and error text (the last two filtered in the page).
    const all = await listAll({ queue: 'work' });
    await filterList(page, { queue: 'work', state: 'dead', error: 'refused job 1' });
    rows = await rowsOf(page);
    const byError = rows.length;
    expectEq('dead jobs of work whose error contains "refused job 1"', rows.map((r) => r.id),
      all.filter((j) => j.state === 'dead' && (j.error || '').includes('refused job 1')).map((j) => j.id));
    if (rows.length < 2) fail(`the error filter matched ${rows.length} jobs: the test needs more`);
    await filterList(page, { queue: 'work', key: 'order-1' });
    rows = await rowsOf(page);
    expectEq('jobs of work whose key starts with order-1', rows.map((r) => r.id),
      all.filter((j) => (j.key || '').startsWith('order-1')).map((j) => j.id));
    ok(`filters as the API lists them: queue work, state dead, error containing "refused job 1" (${byError} jobs); key starting with order-1 (${rows.length} jobs)`);

    // Paging: every job of work, 50 a page.
    await filterList(page, { queue: 'work' });
    const p1 = (await rowsOf(page)).map((r) => r.id);
    expectEq('page 1', p1, all.slice(0, 50).map((j) => j.id));
    await clickAndReload(page, '#page-next');
    const p2 = (await rowsOf(page)).map((r) => r.id);
    expectEq('page 2', p2, all.slice(50, 100).map((j) => j.id));
    expectEq('Next on the last page', await page.$eval('#page-next', (b) => b.disabled), all.length <= 100);
    await clickAndReload(page, '#page-prev');
    expectEq('Previous: page 1 again', (await rowsOf(page)).map((r) => r.id), p1);
    ok(`paging: ${all.length} jobs of work, 50 a page, Next and Previous`);

    // ---- a dead job's page, then Retry: it becomes ready and succeeds ----
    const dead = seed.dead;
    await openJob(page, dead);
    const pg = await page.evaluate(() => ({
      state: document.body.dataset.jobState, explain: document.getElementById('job-explain').textContent,
      reason: document.getElementById('job-explain').dataset.reason,
      payload: document.getElementById('job-payload').textContent, error: document.getElementById('job-error').textContent,
      attempts: [...document.querySelectorAll('#job-attempts tbody tr')].map((tr) => ({
        kind: tr.dataset.kind, cells: [...tr.cells].map((c) => c.textContent),
        tail: (tr.querySelector('pre.tail') || {}).textContent })),
      actions: [...document.querySelectorAll('#job-actions button.act')].map((b) => b.dataset.action),
    }));
    expectEq('job page state', pg.state, 'dead');
    expectEq('explain reason', pg.reason, 'finished');
    if (!pg.explain.startsWith('finished: dead after 1 attempt')) fail('explain line: ' + pg.explain);
    expectEq('payload', JSON.parse(pg.payload), seed.deadPayload);
    expectEq('attempts', pg.attempts.length, 1);
    expectEq('attempt kind', pg.attempts[0].kind, 'exit');
    if (!/ms$/.test(pg.attempts[0].cells[3])) fail('attempt duration: ' + pg.attempts[0].cells[3]);
    if (!(pg.attempts[0].tail || '').includes(`downstream refused job ${dead}`)) fail('stderr tail: ' + JSON.stringify(pg.attempts[0]));
    if (!pg.error.includes(`downstream refused job ${dead}`)) fail('error: ' + pg.error);
    if (!pg.actions.includes('retry') || pg.actions.includes('cancel') || pg.actions.includes('promote')) fail('actions of a dead job: ' + pg.actions);
    await page.screenshot({ path: path.join(SHOTS, 'dashboard-job-dead.png') });
    await page.click('#job-actions button[data-action="retry"]');
    await page.waitForSelector('#notice[data-kind="ok"]', WAIT);
    await page.waitForFunction(() => document.body.dataset.jobState === 'succeeded' && document.body.dataset.jobAttempts === '2', WAIT);
    const kinds = await page.$$eval('#job-attempts tbody tr', (trs) => trs.map((tr) => tr.dataset.kind));
    expectEq('attempts after the retry', kinds, ['exit', 'success']);
    expectEq('the job by the API', (await api({ op: 'get', id: dead })).job.state, 'succeeded');
    expectEq('result on the page', await page.$eval('#job-result', (e) => e.textContent), `done ${dead}\n`);
    // The line the handler wrote to its control pipe (the logs op), with its attempt.
    await page.waitForSelector('#job-logs[data-lines="1"]', WAIT);
    const log = await page.$eval('#job-logs', (e) => e.textContent);
    // A retry starts a fresh attempt budget: the run after it is attempt 1 again.
    if (!log.startsWith('[1] ') || !log.endsWith('order done on attempt 1')) fail('log: ' + log);
    ok(`job #${dead}: payload, explain's line, its exit attempt with the stderr tail; Retry made it run again and succeed, its log line shown`);

    // ---- search by key, then Run now on a scheduled job ----
    await search(page, 'later-');
    await waitList(page);
    rows = await rowsOf(page);
    expectEq('search by key later-', rows.map((r) => [r.id, r.state]), [[seed.scheduled, 'scheduled']]);
    expectEq('a scheduled row\'s actions', rows[0].actions, ['promote', 'cancel']);
    await page.click(`#jobs-table tr[data-job-id="${seed.scheduled}"] a`);
    await page.waitForFunction(() => document.body.dataset.jobState === 'scheduled', WAIT);
    expectEq('explain of the scheduled job', await page.$eval('#job-explain', (e) => e.dataset.reason), 'scheduled');
    await page.click('#job-actions button[data-action="promote"]');
    await page.waitForFunction(() => document.body.dataset.jobState === 'succeeded', WAIT);
    const sj = (await api({ op: 'get', id: seed.scheduled })).job;
    expectEq('the scheduled job by the API', [sj.state, sj.attempts.length], ['succeeded', 1]);
    ok(`search by key found scheduled job #${seed.scheduled}; Run now ran it at once (succeeded)`);

    // ---- cancel from a list row, after backing out once ----
    await page.click('#nav-overview');
    await page.waitForSelector('body[data-view="overview"]', WAIT);
    await page.click('section[data-queue="idle"] a.count.ready');
    await waitList(page);
    const keep = seed.keep[0];
    await page.click(`#jobs-table tr[data-job-id="${keep}"] button[data-action="cancel"]`);
    const asked = await confirmDialog(page, false);
    if (!asked.includes(`Cancel job #${keep}?`)) fail('confirmation text: ' + asked);
    expectEq('after Back', (await api({ op: 'get', id: keep })).job.state, 'ready');
    // The row's buttons are disabled while the confirmation is open and enabled again once
    // the dialog's close event has run (after [open] is gone): click only then.
    await page.waitForSelector(`#jobs-table tr[data-job-id="${keep}"] button[data-action="cancel"]:not([disabled])`, WAIT);
    await page.click(`#jobs-table tr[data-job-id="${keep}"] button[data-action="cancel"]`);
    await confirmDialog(page, true);
    await page.waitForSelector(`#jobs-table tr[data-job-id="${keep}"][data-state="cancelled"]`, WAIT);
    expectEq('the cancelled job by the API', (await api({ op: 'get', id: keep })).job.state, 'cancelled');
    const keptRow = (await rowsOf(page)).find((r) => r.id === keep);
    expectEq('actions of the cancelled row', keptRow.actions, ['retry']);
    ok(`cancel from the list asks first (Back changed nothing), then cancelled job #${keep}`);

    // ---- bulk cancel by filter with its preview ----
    await filterList(page, { queue: 'idle', key: 'bulk-' });
    if (!await page.$eval('#bulk', (d) => d.open)) await page.click('#bulk summary');
    if (hasMutate) {
      await page.waitForSelector('#bulk-form', { visible: true, ...WAIT });
      await page.select('#bulk-action', 'cancel');
      await page.click('#bulk-preview-btn');
      await page.waitForSelector('#bulk-preview[data-matched]', WAIT);
      const pv = await page.$eval('#bulk-preview', (p) => ({ m: Number(p.dataset.matched), c: Number(p.dataset.changed), t: p.textContent }));
      expectEq('preview matched', pv.m, seed.bulk.length);
      expectEq('preview changes', pv.c, seed.bulk.length);
      expectEq('nothing changed by the preview', (await listAll({ queue: 'idle', state: 'cancelled' })).length, 1);
      await page.screenshot({ path: path.join(SHOTS, 'dashboard-bulk-cancel.png') });
      await page.click('#bulk-apply');
      const asked2 = await confirmDialog(page, true);
      if (!asked2.includes(`Cancel ${seed.bulk.length} jobs?`)) fail('bulk confirmation: ' + asked2);
      await page.waitForSelector('#bulk-preview[data-applied]', WAIT);
      expectEq('applied', await page.$eval('#bulk-preview', (p) => Number(p.dataset.applied)), seed.bulk.length);
      await waitList(page);
      rows = await rowsOf(page);
      expectEq('the bulk rows after', rows.map((r) => [r.id, r.state]), seed.bulk.map((id) => [id, 'cancelled']));
      const idle = await listAll({ queue: 'idle' });
      expectEq('idle jobs by the API', idle.map((j) => [j.id, j.state]),
        idle.map((j) => [j.id, seed.bulk.includes(j.id) || j.id === keep ? 'cancelled' : 'ready']));
      ok(`bulk cancel by filter (queue idle, key bulk-): the preview counted ${pv.m} ("${pv.t}"), Apply cancelled them after a confirmation, the others untouched`);

      // One job's priority and its deletion, through mutate with its id.
      const gone = seed.keep[2];
      await openJob(page, gone);
      await page.waitForSelector('#job-priority', WAIT);
      await setField(page, '#job-priority', '7');
      await page.click('#job-actions button[data-action="set_priority"]');
      await page.waitForFunction(() => document.getElementById('job-fields').textContent.includes('Priority7'), WAIT);
      expectEq('priority by the API', (await api({ op: 'get', id: gone })).job.priority, 7);
      expectEq('Delete on a ready job', await page.$('#job-actions button[data-action="delete"]'), null);
      await page.click('#job-actions button[data-action="cancel"]');
      await confirmDialog(page, true);
      await page.waitForFunction(() => document.body.dataset.jobState === 'cancelled', WAIT);
      await page.click('#job-actions button[data-action="delete"]');
      const asked3 = await confirmDialog(page, true);
      if (!asked3.includes(`Delete job #${gone}?`)) fail('delete confirmation: ' + asked3);
      await page.waitForSelector('body[data-view="jobs"]', WAIT);
      const r = await (await fetch(HTTP + '/v1/ops', { method: 'POST', body: JSON.stringify({ op: 'get', id: gone }),
        headers: { Authorization: 'Bearer ' + ADMIN } })).json();
      expectEq('the deleted job by the API', r.error && r.error.code, 'not_found');
      ok(`job #${gone}'s page: priority set to 7, cancelled, then deleted, each destructive step confirmed (mutate with its id)`);
    } else {
      await page.waitForSelector('#bulk-unavailable', { visible: true, ...WAIT });
      const t = await page.$eval('#bulk-unavailable', (e) => e.textContent);
      if (!t.includes('need a newer jobqd')) fail('no "newer jobqd" line: ' + t);
      await page.screenshot({ path: path.join(SHOTS, 'dashboard-jobs.png') });
      if (process.env.JOBQ_DOCS_SHOT) fs.copyFileSync(path.join(SHOTS, 'dashboard-jobs.png'), process.env.JOBQ_DOCS_SHOT);
      console.log('SKIP-BULK bulk actions need a newer jobqd: this one has no mutate op');
      ok('without mutate the bulk panel says bulk actions need a newer jobqd');
    }

    // ---- the counts shown agree with `jobq stats` ----
    await api({ op: 'wait', ids: seed.work, timeout: '30s' });
    const before = Date.now();
    await page.click('#nav-overview');
    await page.waitForFunction((t) => Number(document.body.dataset.statsTime) > t, WAIT, before);
    const shown = await overviewCounts(page);
    const st = cliStats();
    for (const q of ['work', 'idle']) {
      for (const s of ['scheduled', 'ready', 'running', 'retrying', 'succeeded', 'dead', 'cancelled']) {
        expectEq(`overview ${q} ${s} vs jobq stats`, shown[q][s], st.queues[q][s]);
      }
    }
    ok(`the overview's counts agree with jobq stats: ${JSON.stringify(shown.idle)}`);

    // ---- keyboard: the actions are buttons reached with Tab and pressed with Enter ----
    await search(page, 'keep-2');
    await waitList(page);
    const keep2 = seed.keep[1];
    await page.focus('#search-q');
    let reached = false;
    for (let i = 0; i < 60 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate((id) => {
        const a = document.activeElement;
        return !!a && a.dataset.action === 'cancel' && !!a.closest('tr') && a.closest('tr').dataset.jobId === String(id);
      }, keep2);
    }
    if (!reached) fail('Tab never reached the Cancel button of a row');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#confirm[open]', WAIT);
    await page.keyboard.press('Escape');
    await page.waitForSelector('#confirm:not([open])', WAIT);
    expectEq('after Escape', (await api({ op: 'get', id: keep2 })).job.state, 'ready');
    const unnamed = await page.$$eval('button', (bs) => bs.filter((b) => !b.hidden && b.offsetParent !== null &&
      !(b.getAttribute('aria-label') || b.textContent.trim())).length);
    expectEq('buttons without a name', unnamed, 0);
    ok('keyboard: Tab reaches a row\'s Cancel, Enter asks, Escape backs out; every visible button has a name');

    // ---- the read token: the same pages, no actions ----
    const ctx = await browser.createBrowserContext();
    const rp = await ctx.newPage();
    watch(rp);
    await rp.authenticate({ username: 'viewer', password: READER });
    await rp.goto(HTTP + '/#/jobs?queue=work&state=dead', { waitUntil: 'load' });
    await rp.waitForSelector('body[data-rights="read"]', WAIT);
    await waitList(rp);
    rows = await rowsOf(rp);
    const deadNow = (await listAll({ queue: 'work', state: 'dead' })).map((j) => j.id);
    expectEq('the read token\'s list', rows.map((r) => r.id), deadNow);
    expectEq('action buttons for the read token', await rp.$$eval('button.act', (b) => b.length), 0);
    expectEq('bulk panel for the read token', await rp.$eval('#bulk', (b) => b.hidden), true);
    await rp.click(`#jobs-table tr[data-job-id="${deadNow[0]}"] a`);
    await rp.waitForFunction(() => document.body.dataset.jobState === 'dead', WAIT);
    expectEq('job page actions for the read token', await rp.$$eval('#job-actions button', (b) => b.length), 0);
    expectEq('the read-only line', await rp.$eval('#job-actions', (e) => e.textContent), 'Read-only login: no actions.');
    expectEq('the rights badge', await rp.$eval('#rights', (e) => e.textContent), 'read-only');
    ok('the read token sees the list and the job page with no action buttons and no bulk panel');

    expectEq('requests to other origins', foreign, []);
    expectEq('page errors', pageErrors, []);
    ok(`no request left jobqd, no script error; the browser part took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } catch (e) {
    // What the page showed when it failed: a screenshot and its state, for the log.
    for (const p of await browser.pages()) {
      try {
        const d = await p.evaluate(() => ({ url: location.href, body: { ...document.body.dataset },
          notice: document.getElementById('notice').textContent, summary: document.getElementById('jobs-summary').textContent }));
        console.error('page at failure: ' + JSON.stringify(d));
        await p.screenshot({ path: path.join(SHOTS, 'dashboard-failure.png') });
      } catch (_) { /* the page is gone */ }
    }
    throw e;
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error('FAIL [drive.js]: ' + (e && e.stack || e));
  process.exit(1);
});
