// The console's pure logic, bundled from src/ by esbuild in memory (no
// browser): business days, the analytics numbers, and the policy preview's
// answers for a first visitor against what consentd itself answers for a
// subject it never saw, in every region.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { build } from 'esbuild';
import { api, consoleDir, startEnv } from './harness.mjs';

async function load(entry) {
  const out = await build({ absWorkingDir: consoleDir, entryPoints: [entry], bundle: true, write: false, format: 'esm', platform: 'neutral', logLevel: 'error' });
  return import('data:text/javascript;base64,' + Buffer.from(out.outputFiles[0].text).toString('base64'));
}

let dates;
let stats;
let preview;
let env;
before(async () => {
  [dates, stats, preview] = await Promise.all([load('src/dates.ts'), load('src/stats.ts'), load('src/preview.ts')]);
  env = await startEnv();
});
after(() => env?.stopAll());

test('business days: Monday to Friday, UTC, counted from the day after', () => {
  const t = (s) => Date.parse(s);
  const cases = [
    ['2026-12-04T23:00:00Z', '2026-12-04T23:59:00Z', 0], // Friday, same day
    ['2026-12-04T10:00:00Z', '2026-12-05T10:00:00Z', 0], // Friday -> Saturday
    ['2026-12-04T10:00:00Z', '2026-12-07T00:00:00Z', 1], // Friday -> Monday
    ['2026-12-01T10:00:00Z', '2026-12-15T09:00:00Z', 10], // Tuesday -> Tuesday two weeks on
    ['2026-12-05T10:00:00Z', '2026-12-06T10:00:00Z', 0], // Saturday -> Sunday
  ];
  for (const [from, now, want] of cases) assert.equal(dates.businessDaysSince(t(from), t(now)), want, `${from} -> ${now}`);
  assert.equal(dates.spanDays('2026-11-03', '2026-12-02'), 30);
  assert.equal(dates.addDays('2026-03-01', -1), '2026-02-28');
});

test('the analytics numbers: filters, opt-in rate, methods and funnel', () => {
  const days = [
    { day: '2026-12-01', decisions: [], methods: [], banner: [] },
    {
      day: '2026-12-02',
      decisions: [
        { purpose: 'analytics', region: 'DE', granted: '3', denied: '1', withdrawn: '0' },
        { purpose: 'ads', region: 'DE', granted: '0', denied: '2', withdrawn: '2' },
        { purpose: 'analytics', region: 'US-CA', granted: '1', denied: '0', withdrawn: '1' },
      ],
      methods: [{ region: 'DE', method: 'CONSENT_METHOD_API', count: '2' }, { region: 'US-CA', method: 'CONSENT_METHOD_API', count: '1' }],
      banner: [{ region: 'DE', step: 'BANNER_STEP_SHOWN', count: '4' }, { region: 'DE', step: 'BANNER_STEP_CLOSED', count: '1' }],
    },
  ];
  const all = stats.decisionsByDay(days, { purpose: '', region: '' });
  assert.deepEqual(all, [
    { day: '2026-12-01', granted: 0, denied: 0, withdrawn: 0, rate: null },
    { day: '2026-12-02', granted: 4, denied: 3, withdrawn: 3, rate: 0.4 },
  ]);
  assert.deepEqual(stats.decisionTotals(stats.decisionsByDay(days, { purpose: 'analytics', region: '' })), { granted: 4, denied: 1, withdrawn: 1, rate: 4 / 6 });
  assert.deepEqual(stats.decisionsByDay(days, { purpose: 'analytics', region: 'US-CA' })[1], { day: '2026-12-02', granted: 1, denied: 0, withdrawn: 1, rate: 0.5 });
  assert.equal(stats.percent(4 / 6), '66.7%');
  assert.equal(stats.percent(null), '–');
  assert.equal(stats.methodsByDay(days, { purpose: 'ads', region: '' })[1].counts.CONSENT_METHOD_API, 3, 'the purpose filter does not apply to methods');
  assert.equal(stats.methodsByDay(days, { purpose: '', region: 'DE' })[1].counts.CONSENT_METHOD_API, 2);
  assert.deepEqual(stats.funnel(days, { purpose: '', region: 'US-CA' }), { BANNER_STEP_SHOWN: 0, BANNER_STEP_ACCEPT_ALL: 0, BANNER_STEP_REJECT_ALL: 0, BANNER_STEP_CUSTOMISED: 0, BANNER_STEP_CLOSED: 0 });
  assert.equal(stats.funnel(days, { purpose: '', region: '' }).BANNER_STEP_SHOWN, 4);
  assert.deepEqual(stats.regionsIn(days), ['DE', 'US-CA']);
});

test('the preview answers as consentd does for a first visitor, in every region', async () => {
  const policy = (await api(env, 'read', 'GET', '/v1/policy')).body.policy;
  const codes = [...policy.regions.map((r) => r.codes[0]).filter(Boolean), 'US-WA', 'ZZ'];
  for (const code of codes) {
    const served = (await api(env, 'read', 'GET', `/v1/subjects/never-seen/consent?region=${code}`)).body.consent;
    const want = Object.fromEntries(served.purposes.map((p) => [p.purpose, { allowed: p.allowed, reason: p.reason.replace('REASON_', '').toLowerCase() }]));
    assert.deepEqual(preview.defaults(policy, code), want, code);
    assert.equal(preview.regionOf(policy, code).id, served.region_id, code);
  }
  // The banner shows where something needs asking (opt-in regions), not in opt-out ones.
  const note = [];
  assert.deepEqual(preview.previewConsent(policy, 'DE', (w) => note.push(w)).get().needsPrompt, ['functional', 'analytics', 'ads']);
  assert.deepEqual(preview.previewConsent(policy, 'US-CA', () => {}).get().needsPrompt, []);
  const c = preview.previewConsent(policy, 'DE', (w) => note.push(w));
  await c.acceptAll('banner');
  await c.set({ analytics: true }, 'preference_center');
  assert.deepEqual(note, ['accept all (banner)', 'save: analytics on (preference center)']);
  assert.equal(c.get().revision, 0, 'nothing was recorded');
});
