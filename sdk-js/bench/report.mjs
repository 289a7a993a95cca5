// The bench's figures: medians and ranges of the runs, the aims met or
// missed, and the report (report.md; report.json has the same and every run).

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { distDir, repoDir } from '../test/browser/harness.mjs';
import { AIM_BANNER_OVER_BASELINE, AIM_SCRIPT_MS } from './settings.mjs';

function stats(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median: round(median), min: round(v[0]), max: round(v[v.length - 1]), n: v.length };
}

export const round = (x) => Math.round(x * 10) / 10;
const cell = (s) => (s ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})` : '–');
export const fmt = (x) => (Math.abs(x) >= 100 ? String(Math.round(x)) : x.toFixed(1));

export function summarise(runs) {
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

export function markdown({ meta, summary }) {
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

export function describeSdk() {
  const git = (...a) => execFileSync('git', a, { cwd: repoDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  let sdk = 'unknown';
  try {
    sdk = git('rev-parse', '--short', 'HEAD') + (git('status', '--porcelain', '--', 'sdk-js/src') ? ' + uncommitted sdk-js/src changes' : '');
  } catch { /* not a git checkout */ }
  const iife = readFileSync(join(distDir, 'consentd.iife.js'));
  return { sdk, dist: `consentd.iife.js sha256 ${createHash('sha256').update(iife).digest('hex').slice(0, 12)}` };
}
