// Analytics: a scripted mix of traffic through the API (sources, regions,
// purposes, a withdrawal) and banner events, then the console's tables
// against numbers this test computes itself from what it sent; the charts'
// canvases drawn; a 501 from a server without statistics shown as such; a
// range over 90 days refused in the console.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { api, openBrowser, problems, screenshot, signIn, startEnv, tableRows, waitFor, withoutExpectedStatuses } from './harness.mjs';

let env;
let browser;
let policy;
const today = new Date().toISOString().slice(0, 10);

// The test's own model of the counting (consent.proto, DecisionCounts and
// ConsentMethod): every decision of a write counts once, as granted, as
// withdrawn (denied, granted before) or denied; a write counts once under
// its method, in the region its code falls in (the code itself when the
// policy lists it).
const model = { decisions: {}, methods: {}, banner: {}, state: {} };
const bump = (obj, key, n = 1) => { obj[key] = (obj[key] || 0) + n; };

async function write(subject, decisions, { source, region, withdraw = false } = {}) {
  const path = withdraw ? `/v1/subjects/${subject}/consent:withdraw` : `/v1/subjects/${subject}/consent`;
  const body = withdraw ? { region, source } : { decisions, region, source };
  const r = await api(env, 'write', withdraw ? 'POST' : 'PATCH', path, body);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  count(subject, decisions, { source, region, withdraw });
}

/** What a write counts, by the contract: a banner write is accept all / reject all when it grants / denies every purpose it decides. */
function count(subject, decisions, { source, region, withdraw = false }) {
  const st = (model.state[subject] ||= { region: '', granted: {} });
  if (region) st.region = region;
  const nonNecessary = policy.purposes.filter((p) => !p.necessary).map((p) => p.id);
  const decided = withdraw ? Object.fromEntries(nonNecessary.map((p) => [p, false])) : decisions;
  for (const [p, granted] of Object.entries(decided)) {
    const outcome = granted ? 'granted' : st.granted[p] ? 'withdrawn' : 'denied';
    bump((model.decisions[`${p}|${st.region}`] ||= {}), outcome);
    st.granted[p] = granted;
  }
  let method = 'API';
  if (source === 'SOURCE_BANNER') {
    const vals = Object.values(decided);
    method = vals.every((v) => v === true) ? 'Banner: accept all' : vals.every((v) => v === false) ? 'Banner: reject all' : 'Banner: other';
  } else if (source === 'SOURCE_PREFERENCE_CENTER') method = 'Preference center';
  bump(model.methods, `${method}|${st.region}`);
}

async function bannerEvent(step, region, times) {
  for (let i = 0; i < times; i++) {
    const r = await fetch(env.url + '/v1/banner-events', { method: 'POST', body: JSON.stringify({ step, region }) });
    assert.equal(r.status, 200, await r.text());
    bump(model.banner, `${step}|${region}`);
  }
}

const sumDecisions = (f) => {
  const t = { granted: 0, denied: 0, withdrawn: 0 };
  for (const [k, v] of Object.entries(model.decisions)) {
    const [p, region] = k.split('|');
    if ((f.purpose && p !== f.purpose) || (f.region && region !== f.region)) continue;
    for (const o of Object.keys(t)) t[o] += v[o] || 0;
  }
  return t;
};
const rate = (t) => {
  const n = t.granted + t.denied + t.withdrawn;
  return n ? (Math.round((t.granted / n) * 1000) / 10).toFixed(1) + '%' : '–';
};

before(async () => {
  env = await startEnv({ site: true });
  policy = (await api(env, 'read', 'GET', '/v1/policy')).body.policy;
  const all = (v) => Object.fromEntries(policy.purposes.filter((p) => !p.necessary).map((p) => [p.id, v]));
  await write('a-accept', all(true), { source: 'SOURCE_BANNER', region: 'DE' });
  await write('a-reject', all(false), { source: 'SOURCE_BANNER', region: 'DE' });
  await write('a-other', { analytics: true, ads: false }, { source: 'SOURCE_BANNER', region: 'FR' });
  await write('a-pc', { analytics: true, ads: true, 'marketing.email': true }, { source: 'SOURCE_PREFERENCE_CENTER', region: 'US-CA' });
  await write('a-api', { 'marketing.email': false }, { source: 'SOURCE_API', region: 'US-CA' });
  await write('a-gb', { functional: true }, { region: 'GB' });
  await write('a-gb', { functional: false, analytics: true }, { source: 'SOURCE_PREFERENCE_CENTER' }); // a withdrawal of functional, region kept
  await write('a-pc', null, { withdraw: true }); // withdraws analytics, ads, marketing.email; denies the rest
  await bannerEvent('BANNER_STEP_SHOWN', 'DE', 5);
  await bannerEvent('BANNER_STEP_ACCEPT_ALL', 'DE', 2);
  await bannerEvent('BANNER_STEP_REJECT_ALL', 'DE', 1);
  await bannerEvent('BANNER_STEP_CUSTOMISED', 'DE', 1);
  await bannerEvent('BANNER_STEP_CLOSED', 'DE', 1);
  await bannerEvent('BANNER_STEP_SHOWN', 'US-CA', 2);
  await bannerEvent('BANNER_STEP_ACCEPT_ALL', 'US-CA', 1);
  browser = await openBrowser(env);

  // Visitors on a shop page with the SDK (another origin): real banners,
  // real clicks; the SDK reports the funnel and writes the choices.
  const asked = ['functional', 'analytics', 'ads']; // the SDK's default: non-necessary purposes without a dot
  for (const [region, action] of [['DE', 'accept-all'], ['DE', 'reject-all'], ['FR', 'customise'], ['DE', 'close'], ['US-CA', null]]) {
    const page = await browser.newPage();
    await page.goto(env.shopUrl(region));
    const state = () => page.evaluate(() => window.consentd.consent.get());
    if (!action) {
      // Opt-out region: nothing to ask, no banner, nothing reported.
      await waitFor(async () => (await state()).confirmed, { what: 'the SDK in US-CA' });
      assert.equal(await page.isVisible('[data-consent-banner]'), false);
      await page.context().close();
      continue;
    }
    await page.waitForSelector('[data-consent-banner]:not([hidden])');
    await waitFor(async () => (await page.evaluate(() => document.visibilityState)) === 'visible', { what: 'a visible page' });
    bump(model.banner, `BANNER_STEP_SHOWN|${region}`);
    await page.click(`[data-consent-banner] [data-consent-action="${action}"]`);
    bump(model.banner, `BANNER_STEP_${{ 'accept-all': 'ACCEPT_ALL', 'reject-all': 'REJECT_ALL', customise: 'CUSTOMISED', close: 'CLOSED' }[action]}|${region}`);
    if (action === 'customise') {
      await page.waitForSelector('dialog[open]');
      await page.click('dialog [data-consent-purpose="analytics"]');
      await page.click('dialog [data-consent-action="save"]');
    }
    if (action !== 'close') {
      await waitFor(async () => { const s = await state(); return s.revision > 0 && !s.pending; }, { what: `the ${action} choice stored` });
      const id = (await state()).subjectId;
      const decisions = action === 'customise' ? { functional: false, analytics: true, ads: false } : Object.fromEntries(asked.map((p) => [p, action === 'accept-all']));
      count(id, decisions, { source: action === 'customise' ? 'SOURCE_PREFERENCE_CENTER' : 'SOURCE_BANNER', region });
    }
    assert.deepEqual(await problems(page), []);
    await page.context().close();
  }
  // The funnel's reports are fire and forget: wait until the API counted them all.
  const sent = Object.values(model.banner).reduce((a, b) => a + b, 0);
  await waitFor(async () => {
    const days = (await api(env, 'read', 'GET', `/v1/stats?start_day=${today}&end_day=${today}`)).body.days;
    return days[0].banner.reduce((a, b) => a + Number(b.count), 0) === sent;
  }, { what: `${sent} banner events counted` });
});
after(async () => {
  await browser?.close();
  await env?.stopAll();
});

/** The methods table's row for today, and what the model expects: { head, want, got }. */
async function methodsToday(page, f) {
  const head = await page.$$eval('#table-methods thead th', (th) => th.slice(1).map((x) => x.textContent.trim()));
  const want = head.map((m) => String(Object.entries(model.methods).filter(([k]) => k.split('|')[0] === m && (!f.region || k.split('|')[1] === f.region)).reduce((a, [, v]) => a + v, 0)));
  return { head, want, got: (await tableRows(page, '#table-methods'))[today] };
}

async function checkTables(page, f) {
  const t = sumDecisions(f);
  const decisions = await tableRows(page, '#table-decisions');
  assert.equal(Object.keys(decisions).length, 30, 'the default range is the last 30 days');
  assert.deepEqual(decisions[today], [String(t.granted), String(t.denied), String(t.withdrawn)], `decisions today, ${JSON.stringify(f)}`);
  for (const [day, row] of Object.entries(decisions)) if (day !== today) assert.deepEqual(row, ['0', '0', '0'], day);
  assert.match(await page.textContent('#decisions-summary'), new RegExp(`granted ${t.granted}, denied ${t.denied}, withdrawn ${t.withdrawn}`));
  assert.deepEqual((await tableRows(page, '#table-rate'))[today], [rate(t)]);
  assert.match(await page.textContent('#rate-summary'), new RegExp(rate(t).replace('.', '\\.')));

  // Writes per method, the banner's accept all / reject all / other
  // included: the SDK's buttons decide the purposes the banner asks about,
  // and the server counts a banner write by what it decides.
  const { head, want, got } = await methodsToday(page, f);
  assert.deepEqual(Object.fromEntries(head.map((m, i) => [m, got[i]])), Object.fromEntries(head.map((m, i) => [m, want[i]])), `methods today, ${JSON.stringify(f)}`);

  const steps = { Shown: 'BANNER_STEP_SHOWN', 'Accept all': 'BANNER_STEP_ACCEPT_ALL', 'Reject all': 'BANNER_STEP_REJECT_ALL', Customised: 'BANNER_STEP_CUSTOMISED', Closed: 'BANNER_STEP_CLOSED' };
  const count = (step) => Object.entries(model.banner).filter(([k]) => k.split('|')[0] === step && (!f.region || k.split('|')[1] === f.region)).reduce((a, [, v]) => a + v, 0);
  const funnel = await tableRows(page, '#table-funnel');
  for (const [label, step] of Object.entries(steps)) assert.equal(funnel[label][0], String(count(step)), `funnel ${label}, ${JSON.stringify(f)}`);
}

test('the console\'s tables hold the numbers the traffic made, for every filter', async () => {
  const { page } = browser;
  await signIn(page, env, 'read');
  await page.click('#nav-analytics');
  await page.waitForSelector('#table-decisions');
  await checkTables(page, { purpose: '', region: '' });
  // The regions offered are those in the data.
  assert.deepEqual(await page.$$eval('#region-filter option', (o) => o.map((x) => x.value)), ['', 'DE', 'FR', 'GB', 'US-CA']);
  await page.selectOption('#purpose-filter', 'analytics');
  await checkTables(page, { purpose: 'analytics', region: '' });
  await page.selectOption('#region-filter', 'US-CA');
  await checkTables(page, { purpose: 'analytics', region: 'US-CA' });
  await page.selectOption('#purpose-filter', '');
  await checkTables(page, { purpose: '', region: 'US-CA' });
  await page.selectOption('#region-filter', 'DE');
  await checkTables(page, { purpose: '', region: 'DE' });
  const share = model.banner['BANNER_STEP_ACCEPT_ALL|DE'] / model.banner['BANNER_STEP_SHOWN|DE'];
  assert.equal((await tableRows(page, '#table-funnel'))['Accept all'][1], (Math.round(share * 1000) / 10).toFixed(1) + '%', 'accept all of shown, in DE');
  await page.selectOption('#region-filter', '');

  // Every chart drew on its canvas: some pixel is not transparent.
  for (const id of ['plot-decisions', 'plot-rate', 'plot-methods', 'plot-funnel']) {
    const drawn = await page.$eval(`#${id} canvas`, (c) => {
      const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let painted = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i]) painted++;
      return { w: c.width, h: c.height, painted };
    });
    assert.ok(drawn.w > 200 && drawn.h > 100 && drawn.painted > 500, `${id}: ${JSON.stringify(drawn)}`);
  }
  await screenshot(page, 'analytics-1280.png');
  // The README's picture (server/console/analytics.png is a copy of it): the screen's top, 1024 px wide.
  await page.setViewportSize({ width: 1024, height: 760 });
  await page.waitForTimeout(100);
  await screenshot(page, 'analytics-readme.png', { fullPage: false });
  await page.setViewportSize({ width: 1280, height: 900 });
  assert.deepEqual(await problems(page), []);
});

test('a range over 90 days is refused in the console; a server without statistics (501) is named', async () => {
  const { page } = browser;
  await page.fill('#start-day', '2020-01-01');
  await page.click('#stats-btn');
  await waitFor(async () => /at most 90/.test(await page.textContent('#stats-msg')), { what: 'the range message' });
  await page.route('**/v1/stats?*', (route) => route.fulfill({ status: 501, contentType: 'application/json', body: JSON.stringify({ code: 12, message: 'method GetConsentStats not implemented', details: [] }) }));
  try {
    await page.fill('#start-day', today);
    await page.click('#stats-btn');
    await waitFor(async () => /does not implement this call yet \(501 UNIMPLEMENTED/.test(await page.textContent('#stats-msg')), { what: 'the 501 message' });
    assert.equal(await page.$('#table-decisions'), null, 'no stale numbers stay on screen');
  } finally {
    await page.unroute('**/v1/stats?*');
  }
  assert.deepEqual(withoutExpectedStatuses(await problems(page), [501]), []);
});
