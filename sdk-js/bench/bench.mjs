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
//
// Here the main run; settings.mjs reads the settings, page.mjs measures one
// load, runs.mjs makes the runs of each condition, report.mjs sums them up.

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { chromiumFlags, chromiumPath, shopPage, startEnv } from '../test/browser/harness.mjs';
import { tagCode } from './page.mjs';
import { describeSdk, fmt, markdown, round, summarise } from './report.mjs';
import { baselineRun, sdkRun } from './runs.mjs';
import { AIM_BANNER_OVER_BASELINE, AIM_SCRIPT_MS, OUT, RATE, RUNS, TIMEOUT_S } from './settings.mjs';

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
