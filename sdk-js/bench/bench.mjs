// make bench-sdk: what the SDK costs a page, in headless Chromium at 4x CPU
// throttling. The test shop page (test/browser/harness.mjs shopPage) with
// the SDK's script tag and the same page without it, against a real Redis
// and consentd (another origin: the SDK calls it through CORS), each
// condition loaded RUNS times:
//
//   without SDK, first visit   a fresh profile (a new browser context)
//   without SDK, returning     the same profile, loaded again
//   with SDK, first visit      a fresh profile; after measuring, "Accept all"
//   with SDK, returning        the same profile: grants in the SDK's cookie
//   with SDK, after withdrawal the same profile after POST
//                              /v1/subjects/{id}/consent:withdraw (API key)
//
// Every measured load is a new tab in its profile, with
// Emulation.setCPUThrottlingRate and Performance.enable on its own CDP
// session before navigating. Figures, in ms from navigation start (the
// document's performance.now() origin):
//
//   banner    the first paint of [data-consent-banner]'s text (Element Timing:
//             an init script marks the banner's elements with elementtiming
//             when the SDK adds them); without the SDK: first-contentful-paint
//             of the same content
//   tag       a gated inline tag (type="text/plain" data-consent="analytics")
//             records performance.now() when it runs; without the SDK an
//             ungated copy of it does
//   answer    the SDK's state (window.consentd.consent, public API only):
//             confirmed by the service; after a withdrawal, the withdrawal's
//             revision with analytics denied
//   script    CDP Performance.getMetrics ScriptDuration once the page is
//             network-idle: all JavaScript run on the page's main thread, as
//             the thread's CPU time (threadTicks). Chromium's throttler keeps
//             the throttled thread busy, so this is the 4x slower CPU's time
//             (a fixed loop reads ~4x at rate 4), but, unlike wall time, not
//             the time the thread waited for a core behind other processes
//             (a shared machine) or blocked on IPC. Wall time (timeTicks, a
//             second CDP session) is reported next to it.
//
// Report: .bench/sdk/report.md and report.json (repository root), also
// printed. Settings (environment): BENCH_SDK_RUNS (7), BENCH_SDK_THROTTLE
// (4), BENCH_SDK_OUT, BENCH_SDK_TIMEOUT (300 s for the whole run),
// CONSENTD_BIN (else consentd is built), SDK_DIST (another build of the SDK).
// Exit 1 when a run failed, the whole run timed out, or a gated tag ran
// after a withdrawal; a missed performance aim is reported, not an error.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { chromiumFlags, chromiumPath, distDir, repoDir, shopPage, startEnv } from '../test/browser/harness.mjs';

const RUNS = int('BENCH_SDK_RUNS', 7, 1);
const RATE = int('BENCH_SDK_THROTTLE', 4, 1);
const TIMEOUT_S = int('BENCH_SDK_TIMEOUT', 300, 10);
const OUT = resolve(process.env.BENCH_SDK_OUT || join(repoDir, '.bench/sdk'));
const WAIT_MS = 15_000; // any one thing a load waits for
const IDLE_MS = 10_000; // network idle after it (Playwright: 500 ms without requests)

// The aims from the issue.
const AIM_BANNER_OVER_BASELINE = 150;
const AIM_SCRIPT_MS = 25;

function int(name, def, min) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    console.error(`bench-sdk: ${name}=${raw}: want an integer >= ${min}`);
    process.exit(2);
  }
  return n;
}

// Runs in every document before its own scripts. Reports through a CDP
// binding (Runtime.addBinding: no console message, no stack trace), so
// nothing polls the page from outside while it is measured.
function instrument() {
  const marks = {};
  const send = (m) => {
    if (typeof window.__benchSignal === 'function') window.__benchSignal(JSON.stringify(m));
  };
  const mark = (name, t) => {
    if (name in marks) return;
    marks[name] = t === undefined ? performance.now() : t;
    send({ name, t: marks[name] });
  };
  window.__benchMark = mark;
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.name === 'first-contentful-paint') mark('fcp', e.startTime);
    }).observe({ type: 'paint', buffered: true });
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.identifier === 'consentd-banner') mark('banner', e.renderTime || e.loadTime);
    }).observe({ type: 'element', buffered: true });
  } catch (e) {
    send({ name: 'error', message: String(e) });
  }
  // Element Timing reports elements carrying elementtiming when first
  // painted; the banner is added hidden, so marking it on insertion is in
  // time. bannerFrame (the animation frame after it lost its hidden
  // ancestors) is the fallback where Element Timing reports nothing. Cheap
  // on purpose (it runs on the measured main thread): one querySelector per
  // batch of mutations until the banner is there, then only [hidden] changes,
  // and no style or layout is forced.
  let banner = null;
  let framed = false;
  const observer = new MutationObserver(() => {
    if (!banner) {
      banner = document.querySelector('[data-consent-banner]');
      if (!banner) return;
      for (const el of [banner, ...banner.querySelectorAll('*')]) el.setAttribute('elementtiming', 'consentd-banner');
      observer.disconnect();
      observer.observe(document, { subtree: true, attributes: true, attributeFilter: ['hidden'] });
    }
    if (!framed && banner.isConnected && !banner.closest('[hidden]')) {
      framed = true;
      requestAnimationFrame(() => mark('bannerFrame'));
    }
  });
  observer.observe(document, { childList: true, subtree: true });
  // The SDK's public object, window.consentd = { consent, ui }: its state on
  // every change.
  let sdk;
  Object.defineProperty(window, 'consentd', {
    configurable: true,
    enumerable: true,
    get: () => sdk,
    set(value) {
      sdk = value;
      const consent = value?.consent;
      if (!consent || typeof consent.get !== 'function') return;
      const report = (s) => send({
        name: 'state', t: performance.now(), subjectId: s.subjectId, revision: s.revision,
        analytics: !!s.purposes.analytics?.allowed, has: consent.has('analytics'),
        confirmed: s.confirmed, pending: s.pending, needsPrompt: s.needsPrompt.length,
      });
      report(consent.get());
      consent.on('change', (e) => report(e.state));
    },
  });
}

// The tag: records when it runs.
const tagCode = "window.__benchMark && window.__benchMark('tag', performance.now());";

/** Waits for pred(events) to be truthy (returned); rejects after ms. */
function waitEvents(load, pred, ms, what) {
  return new Promise((resolve_, reject) => {
    const check = () => {
      let v;
      try {
        v = pred(load.events);
      } catch (e) {
        done(); reject(e); return;
      }
      if (v) { done(); resolve_(v); }
    };
    const timer = setTimeout(() => { done(); reject(new Error(`timed out after ${ms} ms waiting for ${what}`)); }, ms);
    const done = () => { clearTimeout(timer); load.waiters.delete(check); };
    load.waiters.add(check);
    check();
  });
}

const markOf = (name) => (events) => events.find((e) => e.name === name);
const states = (events) => events.filter((e) => e.name === 'state');

/**
 * One measured load: a new tab in context, throttled, navigated to url;
 * waits for until(events), then for the network to be idle, then reads the
 * metrics. after(page, load) runs after the measurement (not measured).
 */
async function measure(context, url, { until, what, after }) {
  const page = await context.newPage();
  const load = { events: [], waiters: new Set(), problems: [] };
  page.on('console', (m) => {
    if (m.type() === 'error') load.problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => load.problems.push(`page error: ${e.message}`));
  try {
    // Two sessions: Performance metrics come in one time domain per session.
    const cdp = await context.newCDPSession(page);
    const wall = await context.newCDPSession(page);
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: RATE });
    await cdp.send('Performance.enable', { timeDomain: 'threadTicks' });
    await wall.send('Performance.enable', { timeDomain: 'timeTicks' });
    cdp.on('Runtime.bindingCalled', (e) => {
      if (e.name !== '__benchSignal') return;
      load.events.push(JSON.parse(e.payload));
      for (const w of [...load.waiters]) w();
    });
    await cdp.send('Runtime.enable');
    await cdp.send('Runtime.addBinding', { name: '__benchSignal' });
    await page.goto(url, { waitUntil: 'load', timeout: WAIT_MS });
    await waitEvents(load, until, WAIT_MS, what);
    const idle = await page.waitForLoadState('networkidle', { timeout: IDLE_MS }).then(() => true, () => false);
    const metrics = async (session) => Object.fromEntries((await session.send('Performance.getMetrics')).metrics.map((x) => [x.name, x.value]));
    const [m, w] = await Promise.all([metrics(cdp), metrics(wall)]);
    const result = {
      scriptMs: m.ScriptDuration * 1000,
      scriptWallMs: w.ScriptDuration * 1000,
      taskMs: m.TaskDuration * 1000,
      idle,
      events: [...load.events],
      problems: load.problems,
    };
    if (after) Object.assign(result, await after(page, load));
    return result;
  } finally {
    await page.close().catch(() => {});
  }
}

const t = (events, name) => markOf(name)(events)?.t ?? null;
const cost = (l) => ({ scriptMs: l.scriptMs, scriptWallMs: l.scriptWallMs, taskMs: l.taskMs, idle: l.idle, problems: l.problems });

async function withdraw(env, subjectId) {
  const r = await fetch(`${env.consentd.url}/v1/subjects/${encodeURIComponent(subjectId)}/consent:withdraw`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${env.consentd.apiKey}`, 'Content-Type': 'application/json' },
    body: '{}',
    signal: AbortSignal.timeout(5000),
  });
  const body = await r.json().catch(() => ({}));
  if (r.status !== 200) throw new Error(`POST consent:withdraw: ${r.status} ${JSON.stringify(body)}`);
  const analytics = body.consent.purposes.find((p) => p.purpose === 'analytics');
  if (analytics?.allowed) throw new Error('consent:withdraw left analytics allowed');
  return Number(body.consent.revision);
}

async function baselineRun(browser, url) {
  const context = await newProfile(browser);
  try {
    const both = (events) => markOf('fcp')(events) && markOf('tag')(events);
    const first = await measure(context, url, { until: both, what: 'first contentful paint and the tag' });
    const returning = await measure(context, url, { until: both, what: 'first contentful paint and the tag' });
    const pick = (l) => ({ fcp: t(l.events, 'fcp'), tag: t(l.events, 'tag'), ...cost(l) });
    return { first: pick(first), returning: pick(returning) };
  } finally {
    await context.close().catch(() => {});
  }
}

async function sdkRun(env, browser, url) {
  const context = await newProfile(browser);
  try {
    // First visit: the banner; then accept all (not measured) and wait
    // until the service stored it.
    const first = await measure(context, url, {
      until: (ev) => markOf('banner')(ev) || markOf('bannerFrame')(ev),
      what: 'the banner to be painted',
      async after(page, load) {
        await page.click('[data-consent-banner] [data-consent-action="accept-all"]', { timeout: 5000 }).catch(async () => {
          await page.evaluate(() => window.consentd.consent.acceptAll('banner'));
        });
        const stored = await waitEvents(load, (ev) => states(ev).find((s) => s.analytics && !s.pending && s.revision > 0),
          WAIT_MS, 'accept all to be stored');
        await waitEvents(load, markOf('tag'), WAIT_MS, 'the tag to run after accept all');
        return { subjectId: stored.subjectId };
      },
    });
    // Returning visitor: grants in the cookie.
    const returning = await measure(context, url, { until: markOf('tag'), what: 'the granted tag to run' });
    // Withdrawn at the service (another device, the site's backend).
    const revision = await withdraw(env, first.subjectId);
    const answered = (ev) => states(ev).find((s) => s.revision >= revision && !s.analytics);
    const withdrawn = await measure(context, url, {
      until: answered,
      what: `the SDK's answer after the withdrawal (revision ${revision}, analytics denied)`,
      async after(page) {
        return { gatedRan: await page.evaluate(() => Boolean(window.demoAnalytics || window.inlineAnalyticsRan)) };
      },
    });
    const confirmedAt = (ev) => states(ev).find((s) => s.confirmed === true)?.t ?? null;
    return {
      first: {
        banner: t(first.events, 'banner') ?? t(first.events, 'bannerFrame'),
        bannerBy: t(first.events, 'banner') !== null ? 'element timing' : 'animation frame',
        bannerFrame: t(first.events, 'bannerFrame'),
        fcp: t(first.events, 'fcp'),
        answer: confirmedAt(first.events),
        ...cost(first),
      },
      returning: {
        tag: t(returning.events, 'tag'),
        answer: confirmedAt(returning.events),
        fcp: t(returning.events, 'fcp'),
        ...cost(returning),
      },
      withdrawn: {
        revision,
        answer: answered(withdrawn.events).t,
        tagRan: t(withdrawn.events, 'tag') !== null,
        tag: t(withdrawn.events, 'tag'),
        otherGatedRan: withdrawn.gatedRan,
        fcp: t(withdrawn.events, 'fcp'),
        ...cost(withdrawn),
      },
    };
  } finally {
    await context.close().catch(() => {});
  }
}

async function newProfile(browser) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  context.setDefaultTimeout(WAIT_MS);
  await context.addInitScript(instrument);
  return context;
}

// --- statistics and report ----------------------------------------------------

function stats(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median: round(median), min: round(v[0]), max: round(v[v.length - 1]), n: v.length };
}

const round = (x) => Math.round(x * 10) / 10;
const cell = (s) => (s ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})` : '–');
const fmt = (x) => (Math.abs(x) >= 100 ? String(Math.round(x)) : x.toFixed(1));

function summarise(runs) {
  const ok = runs.filter((r) => !r.error);
  const fields = {
    baseline: { first: ['fcp', 'tag'], returning: ['fcp', 'tag'] },
    sdk: { first: ['banner', 'fcp', 'answer'], returning: ['tag', 'answer', 'fcp'], withdrawn: ['answer', 'fcp'] },
  };
  const s = {};
  for (const [side, conds] of Object.entries(fields)) {
    s[side] = {};
    for (const [cond, keys] of Object.entries(conds)) {
      s[side][cond] = {};
      for (const key of [...keys, 'scriptMs', 'scriptWallMs']) s[side][cond][key] = stats(ok.map((r) => r[side][cond][key]));
    }
  }
  Object.assign(s.sdk.withdrawn, {
    tagRan: ok.filter((r) => r.sdk.withdrawn.tagRan).length,
    otherGatedRan: ok.filter((r) => r.sdk.withdrawn.otherGatedRan).length,
    runs: ok.length,
  });
  // The SDK's share of main-thread script: median with it minus median
  // without (a withdrawal's load against the returning load without).
  const share = (sdk, base) => (sdk && base ? round(sdk.median - base.median) : null);
  const aims = {
    banner: {
      limit: s.baseline.first.fcp ? round(s.baseline.first.fcp.median + AIM_BANNER_OVER_BASELINE) : null,
      value: s.sdk.first.banner?.median ?? null,
    },
    scriptFirst: { limit: AIM_SCRIPT_MS, value: share(s.sdk.first.scriptMs, s.baseline.first.scriptMs) },
    scriptReturning: { limit: AIM_SCRIPT_MS, value: share(s.sdk.returning.scriptMs, s.baseline.returning.scriptMs) },
    scriptWithdrawn: { limit: AIM_SCRIPT_MS, value: share(s.sdk.withdrawn.scriptMs, s.baseline.returning.scriptMs) },
  };
  for (const a of Object.values(aims)) a.met = a.value !== null && a.limit !== null && a.value <= a.limit;
  aims.noTagAfterWithdrawal = { limit: 0, value: s.sdk.withdrawn.tagRan, met: ok.length > 0 && s.sdk.withdrawn.tagRan === 0 };
  const wallShares = {
    first: share(s.sdk.first.scriptWallMs, s.baseline.first.scriptWallMs),
    returning: share(s.sdk.returning.scriptWallMs, s.baseline.returning.scriptWallMs),
    withdrawn: share(s.sdk.withdrawn.scriptWallMs, s.baseline.returning.scriptWallMs),
  };
  return { stats: s, aims, wallShares };
}

function markdown({ meta, summary }) {
  const { stats: s, aims, wallShares } = summary;
  const verdict = (a) => (a.value === null ? 'no data' : a.met ? 'met' : '**missed**');
  const share = (a) => (a.value === null ? '–' : `SDK's share ${fmt(a.value)} ≤ ${a.limit}`);
  const wallShare = (v) => (v === null ? '' : `SDK's share ${fmt(v)}`);
  const w = s.sdk.withdrawn;
  const rows = [
    ['**First visit** (fresh profile)', '', '', '', ''],
    ['banner visible; without SDK: the content\'s first paint', cell(s.baseline.first.fcp), cell(s.sdk.first.banner),
      aims.banner.limit === null ? '–' : `≤ ${fmt(s.baseline.first.fcp.median)} + ${AIM_BANNER_OVER_BASELINE} = ${fmt(aims.banner.limit)}`, verdict(aims.banner)],
    ['first contentful paint', cell(s.baseline.first.fcp), cell(s.sdk.first.fcp), '', ''],
    ['SDK has the service\'s answer (state.confirmed)', '', cell(s.sdk.first.answer), '', ''],
    ['main-thread script, CPU ms', cell(s.baseline.first.scriptMs), cell(s.sdk.first.scriptMs), share(aims.scriptFirst), verdict(aims.scriptFirst)],
    ['main-thread script, wall ms', cell(s.baseline.first.scriptWallMs), cell(s.sdk.first.scriptWallMs), wallShare(wallShares.first), ''],
    ['**Returning visitor** (accepted all on a previous load)', '', '', '', ''],
    ['granted tag runs; without SDK: an ungated copy', cell(s.baseline.returning.tag), cell(s.sdk.returning.tag), 'none set', ''],
    ['SDK has the service\'s answer (state.confirmed)', '', cell(s.sdk.returning.answer), '', ''],
    ['first contentful paint', cell(s.baseline.returning.fcp), cell(s.sdk.returning.fcp), '', ''],
    ['main-thread script, CPU ms', cell(s.baseline.returning.scriptMs), cell(s.sdk.returning.scriptMs), share(aims.scriptReturning), verdict(aims.scriptReturning)],
    ['main-thread script, wall ms', cell(s.baseline.returning.scriptWallMs), cell(s.sdk.returning.scriptWallMs), wallShare(wallShares.returning), ''],
    ['**Returning visitor after a server-side withdrawal**', '', '', '', ''],
    ['SDK has its answer (the withdrawal\'s revision, analytics denied)', '', cell(w.answer), '', ''],
    ['gated tag ran', '', `${w.tagRan} of ${w.runs} loads`, 'never', verdict(aims.noTagAfterWithdrawal)],
    ['main-thread script, CPU ms (without SDK: the returning load)', cell(s.baseline.returning.scriptMs), cell(w.scriptMs), share(aims.scriptWithdrawn), verdict(aims.scriptWithdrawn)],
    ['main-thread script, wall ms', cell(s.baseline.returning.scriptWallMs), cell(w.scriptWallMs), wallShare(wallShares.withdrawn), ''],
  ];
  const lines = [
    `# SDK bench: ${meta.date}`,
    '',
    `Headless Chromium ${meta.chromium}, CPU throttled ${meta.throttle}x (CDP Emulation.setCPUThrottlingRate) on every measured load; ` +
      `${meta.runsOk} of ${meta.runs} runs; ms from navigation start, median (min–max). SDK ${meta.sdk}, built ${meta.dist}. ` +
      `Run time ${meta.seconds} s on ${meta.machine.cpus} CPUs, load average ${meta.machine.loadStart} at the start, ${meta.machine.loadEnd} at the end.`,
    '',
    '| measure | without SDK | with SDK | aim | |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
    'Main-thread script: CDP Performance.getMetrics ScriptDuration from navigation to network idle, all JavaScript on the page\'s ' +
      'main thread. CPU ms (threadTicks, the aim\'s figure): the throttled thread\'s CPU time, which Chromium\'s throttler inflates ' +
      `${meta.throttle}x and other processes do not; wall ms (timeTicks) also counts waiting for a core and blocking IPC. ` +
      'The aim applies to the SDK\'s share: median with SDK minus median without.',
    `Banner: ${meta.bannerBy}.`,
  ];
  if (meta.machine.loadStart > meta.machine.cpus || meta.machine.loadEnd > meta.machine.cpus) {
    lines.push(`The machine was busy (load above its ${meta.machine.cpus} CPUs): the times from navigation start and the wall ms are noisy.`);
  }
  if (w.otherGatedRan) lines.push(`After the withdrawal the page's other gated scripts ran in ${w.otherGatedRan} of ${w.runs} loads.`);
  if (meta.problems.length) lines.push(`Errors on the pages (${meta.problems.length}, see report.json): ${meta.problems[0]}`);
  if (meta.failures.length) lines.push('', `Failed runs: ${meta.failures.map((f) => `run ${f.run}: ${f.error}`).join('; ')}`);
  return lines.join('\n') + '\n';
}

function describeSdk() {
  const git = (...a) => execFileSync('git', a, { cwd: repoDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  let sdk = 'unknown';
  try {
    sdk = git('rev-parse', '--short', 'HEAD') + (git('status', '--porcelain', '--', 'sdk-js/src') ? ' + uncommitted sdk-js/src changes' : '');
  } catch { /* not a git checkout */ }
  const iife = readFileSync(join(distDir, 'consentd.iife.js'));
  return { sdk, dist: `consentd.iife.js sha256 ${createHash('sha256').update(iife).digest('hex').slice(0, 12)}` };
}

// --- main ------------------------------------------------------------------------

const started = Date.now();
const loadStart = round(loadavg()[0]);
let env = null;
let browser = null;
const cleanup = async () => {
  await browser?.close().catch(() => {});
  await env?.stopAll().catch(() => {});
};
const watchdog = setTimeout(async () => {
  console.error(`bench-sdk: the whole run took over ${TIMEOUT_S} s: stopped (BENCH_SDK_TIMEOUT)`);
  await cleanup();
  process.exit(1);
}, TIMEOUT_S * 1000);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, async () => { await cleanup(); process.exit(130); });

try {
  console.log(`bench-sdk: ${RUNS} runs, CPU ${RATE}x; starting Redis, consentd, the site and Chromium`);
  env = await startEnv();
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumFlags });
  const bench = `<script type="text/plain" data-consent="analytics">${tagCode}</script>\n`;
  const withSdk = shopPage(env, { name: 'bench', body: bench });
  const withoutSdk = shopPage(env, { sdk: false, name: 'bench', body: `<script>${tagCode}</script>\n` });

  // A warm-up of each, not counted: the browser's first context pays
  // one-time start-up costs a visitor's running browser has paid long ago.
  await baselineRun(browser, withoutSdk);
  await sdkRun(env, browser, withSdk);

  const runs = [];
  for (let i = 1; i <= RUNS; i++) {
    const run = { run: i };
    try {
      // Alternate the order, so drift on a shared machine falls on both.
      if (i % 2) {
        run.baseline = await baselineRun(browser, withoutSdk);
        run.sdk = await sdkRun(env, browser, withSdk);
      } else {
        run.sdk = await sdkRun(env, browser, withSdk);
        run.baseline = await baselineRun(browser, withoutSdk);
      }
      const f = run.sdk.first, r = run.sdk.returning, w = run.sdk.withdrawn;
      console.log(`  run ${i}: first banner ${fmt(f.banner)} (without SDK ${fmt(run.baseline.first.fcp)}), ` +
        `returning tag ${fmt(r.tag)} (${fmt(run.baseline.returning.tag)}), withdrawn answer ${fmt(w.answer)} tag ${w.tagRan ? 'RAN' : 'did not run'}, ` +
        `script ${fmt(f.scriptMs)}/${fmt(r.scriptMs)}/${fmt(w.scriptMs)} (${fmt(run.baseline.first.scriptMs)}/${fmt(run.baseline.returning.scriptMs)}) ms`);
    } catch (e) {
      run.error = e.message;
      console.log(`  run ${i}: FAILED: ${e.message}`);
    }
    runs.push(run);
  }

  const ok = runs.filter((r) => !r.error);
  const bys = [...new Set(ok.map((r) => r.sdk.first.bannerBy))];
  const meta = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    chromium: browser.version(),
    throttle: RATE,
    runs: RUNS,
    runsOk: ok.length,
    ...describeSdk(),
    bannerBy: bys.length ? `first paint of its text by ${bys.join(' / ')}` : 'no data',
    failures: runs.filter((r) => r.error).map((r) => ({ run: r.run, error: r.error })),
    problems: ok.flatMap((r) => [r.baseline, r.sdk].flatMap((side) => Object.values(side).flatMap((l) => l.problems))),
    seconds: Math.round((Date.now() - started) / 1000),
    machine: { cpus: cpus().length, loadStart, loadEnd: round(loadavg()[0]) },
    aims: { bannerOverBaselineMs: AIM_BANNER_OVER_BASELINE, scriptMs: AIM_SCRIPT_MS },
    method: {
      banner: 'Element Timing renderTime of [data-consent-banner] text (fallback: first animation frame with it visible); without SDK: first-contentful-paint',
      tag: 'performance.now() recorded by an inline tag gated with data-consent="analytics" (without SDK: an ungated copy)',
      answer: 'window.consentd.consent state: confirmed true; after a withdrawal: revision >= the withdrawal\'s and analytics denied',
      script: 'CDP Performance.getMetrics ScriptDuration read at network idle, new tab per load: scriptMs in threadTicks (CPU), scriptWallMs in timeTicks (wall)',
    },
  };
  const summary = summarise(runs);
  const report = markdown({ meta, summary });
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, 'report.md'), report);
  const tenths = (_, v) => (typeof v === 'number' && !Number.isInteger(v) ? round(v) : v);
  writeFileSync(join(OUT, 'report.json'), JSON.stringify({ meta, summary, runs }, tenths, 2) + '\n');
  console.log('\n' + report);
  console.log(`bench-sdk: report in ${join(OUT, 'report.md')} and report.json (${meta.seconds} s)`);
  const bad = [];
  if (meta.failures.length) bad.push(`${meta.failures.length} of ${RUNS} runs failed`);
  if (!summary.aims.noTagAfterWithdrawal.met) bad.push('a gated tag ran after a withdrawal');
  if (bad.length) {
    console.log(`bench-sdk: FAIL (${bad.join('; ')})`);
    process.exitCode = 1;
  }
} catch (e) {
  console.error(`bench-sdk: ${e.stack || e.message}`);
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  await cleanup();
}
