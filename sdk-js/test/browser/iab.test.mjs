// The IAB signals in a real Chromium against a real consentd and Redis
// running the IAB test policy and vendor list (server/domain/testdata/iab/):
// ad tags calling __tcfapi and __gpp before the SDK has loaded (the stub
// queues them) and after, each choice's strings decoded by the IAB's own
// libraries (@iabtechlabtcf/core's TCString, @iabgpp/cmpapi's GppModel) to
// the expected fields, and consentd returning and keeping the same strings
// (GetConsent's ad_signals, the signals event in the history and export).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GppModel } from '@iabgpp/cmpapi';
import { TCString } from '@iabtechlabtcf/core';
import { api, openBrowser, repoDir, startEnv, subjectId, waitFor } from './harness.mjs';

const testdata = join(repoDir, 'server/domain/testdata/iab');
const banner = '[data-consent-banner]';
const inBanner = (action) => `${banner} [data-consent-action="${action}"]`;
const ALL = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const VENDORS = [1, 2, 10, 25, 755];

let env;
before(async () => {
  env = await startEnv({ args: ['--policy', join(testdata, 'policy.yaml'), '--gvl', join(testdata, 'vendor-list.json')] });
});
after(async () => { await env?.stopAll(); });

/**
 * A page with ad tags. stub: the IAB stub first and an ad tag calling
 * __tcfapi and __gpp at once, before the SDK, which is added 300 ms later
 * (so those calls are surely made first). Without stub the SDK is a plain
 * <script> and the ad tags call once the page has loaded.
 */
function iabPage({ region = 'DE', stub = true, nonce = 'n0nce', name = '', body = '' } = {}) {
  const n = ` nonce="${nonce}"`;
  const sdkAttrs = { endpoint: env.consentd.url, region, lang: 'en' };
  const early = `window.early = { tcf: [], gpp: [] };
__tcfapi('ping', 2, function (d) { early.tcfPing = d; });
__tcfapi('addEventListener', 2, function (d, ok) { if (ok) early.tcf.push({ status: d.eventStatus, tc: d.tcString, gdprApplies: d.gdprApplies }); });
__gpp('ping', function (d) { early.gppPing = d; });
__gpp('addEventListener', function (e) { early.gpp.push({ name: e.eventName, data: e.data, gpp: e.pingData.gppString, signal: e.pingData.signalStatus }); });
__gpp('hasSection', function (d) { early.hasUsnat = d; }, 'usnat');
setTimeout(function () {
  var s = document.createElement('script');
  s.src = '/sdk/consentd-iab.iife.js';
  s.nonce = '${nonce}';
${Object.entries(sdkAttrs).map(([k, v]) => `  s.dataset.${k} = '${v}';`).join('\n')}
  document.head.appendChild(s);
}, 300);`;
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Ad-supported article</title>
${stub ? `<script${n} src="/sdk/consentd-iab-stub.js"></script>
<script${n}>${early}</script>` : `<script${n} src="/sdk/consentd-iab.iife.js" ${Object.entries(sdkAttrs).map(([k, v]) => `data-${k}="${v}"`).join(' ')}></script>`}
</head>
<body>
<main><h1>An article with ads</h1><p>Fixture page.</p><button type="button" data-consent-open>Privacy choices</button></main>
${body}</body>
</html>`;
  const headers = {
    'Content-Security-Policy': `default-src 'self'; script-src 'self' 'nonce-${nonce}'; style-src 'self'; `
      + `connect-src 'self' ${env.consentd.url}; frame-src 'self'; img-src 'self'`,
  };
  return env.site.page(`/iab-${region}-${stub ? 'stub' : 'plain'}${name ? '-' + name : ''}.html`, html, headers);
}

/** The ids set in a decoded Vector. */
function ids(vector) {
  const out = [];
  vector.forEach((v, id) => {
    if (v) out.push(id);
  });
  return out;
}

function decodeTC(s) {
  const m = TCString.decode(s);
  return {
    cmpId: m.cmpId, cmpVersion: m.cmpVersion, isServiceSpecific: m.isServiceSpecific,
    publisherCountryCode: m.publisherCountryCode, vendorListVersion: m.vendorListVersion,
    purposeConsents: ids(m.purposeConsents),
    purposeLegitimateInterests: ids(m.purposeLegitimateInterests),
    specialFeatureOptins: ids(m.specialFeatureOptins),
    vendorConsents: ids(m.vendorConsents),
    vendorLegitimateInterests: ids(m.vendorLegitimateInterests),
    vendorsDisclosed: ids(m.vendorsDisclosed),
  };
}

const tcHeader = { cmpId: 300, cmpVersion: 1, isServiceSpecific: true, publisherCountryCode: 'DE', vendorListVersion: 150, vendorsDisclosed: VENDORS };

/** getTCData as an ad tag calls it once the SDK is there. */
function getTCData(page) {
  return page.evaluate(() => new Promise((resolve) => window.__tcfapi('getTCData', 2, (d, ok) => resolve({ ...d, ok }))));
}

/** A __gpp command's answer. */
function gpp(page, command, parameter) {
  return page.evaluate(([c, p]) => new Promise((resolve) => window.__gpp(c, (d, ok) => resolve({ d, ok }), p)), [command, parameter]);
}

/** The strings the page's SDK holds now. */
function signals(page) {
  return page.evaluate(() => window.consentd.iab.signals());
}

/** Waits until consentd returns the page's current strings for region in GetConsent, and returns them. */
async function stored(page, id, region) {
  let last;
  return waitFor(async () => {
    const s = await signals(page);
    const r = await api(env, 'GET', `/v1/subjects/${id}/consent?region=${region}`);
    last = r.body?.consent?.ad_signals;
    return last && last.tc_string === s.tcString && last.gpp_string === s.gppString && s.revision > 0 ? { ...last, page: s } : null;
  }, { ms: 10_000, what: `consentd to return the page's strings (last: ${JSON.stringify(last)})` });
}

/** The signals events of the subject's history. */
async function signalsEvents(id) {
  const r = await api(env, 'GET', `/v1/subjects/${id}/events?page_size=100&reason=test`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body.events || []).filter((e) => e.type === 'EVENT_TYPE_SIGNALS');
}

describe('iab: TCF in the EEA', () => {
  test('ad tags calling before the SDK (stub) are answered; accept all in the TCF banner; consentd keeps the same strings', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(iabPage());
    // The stub answered ping at once.
    const stubPing = await page.evaluate(() => window.early.tcfPing);
    assert.equal(stubPing.cmpStatus, 'stub');
    assert.equal(stubPing.cmpLoaded, false);
    assert.equal((await page.evaluate(() => window.early.gppPing)).cmpStatus, 'stub');

    // The SDK loaded: the queued listener hears cmpuishown (the banner asks).
    await page.locator(inBanner('accept-all')).waitFor({ state: 'visible' });
    const shown = await waitFor(() => page.evaluate(() => window.early.tcf.find((e) => e.status === 'cmpuishown')), { what: 'cmpuishown' });
    assert.equal(shown.gdprApplies, true);
    assert.deepEqual(decodeTC(shown.tc), {
      ...tcHeader, purposeConsents: [], purposeLegitimateInterests: [2, 7, 8, 9, 10, 11], specialFeatureOptins: [],
      vendorConsents: [], vendorLegitimateInterests: [1, 2, 25, 755],
    });
    assert.equal(await page.evaluate(() => window.early.hasUsnat), false, 'no usnat section in the EEA');
    const id = await subjectId(page);

    await page.click(inBanner('accept-all'));
    const done = await waitFor(() => page.evaluate(() => window.early.tcf.find((e) => e.status === 'useractioncomplete')), { what: 'useractioncomplete' });
    const want = {
      ...tcHeader, purposeConsents: ALL, purposeLegitimateInterests: [2, 7, 8, 9, 10, 11], specialFeatureOptins: [1, 2],
      vendorConsents: VENDORS, vendorLegitimateInterests: [1, 2, 25, 755],
    };
    assert.deepEqual(decodeTC(done.tc), want);

    // GPP in a TCF region: the tcfeuv2 section, the same TC string's fields.
    const gppEvents = await page.evaluate(() => window.early.gpp);
    assert.ok(gppEvents.some((e) => e.name === 'listenerRegistered'), 'the stub registered the listener');
    assert.ok(gppEvents.some((e) => e.name === 'signalStatus' && e.data === 'ready'), 'the queued GPP listener heard signalStatus ready');
    const ping = (await gpp(page, 'ping')).d;
    assert.equal(ping.cmpStatus, 'loaded');
    assert.deepEqual(ping.applicableSections, [2]);
    const g = new GppModel(ping.gppString);
    assert.deepEqual(g.getHeader().SectionIds, [2]);
    assert.deepEqual(g.getFieldValue('tcfeuv2', 'VendorConsents'), VENDORS);

    // consentd keeps and returns the same strings, and the history has the signals event.
    const s = await stored(page, id, 'DE');
    assert.equal(s.tc_string, done.tc);
    assert.equal(s.gpp_string, ping.gppString);
    assert.equal(s.region, 'DE');
    // A reload sends nothing again (before the history is read below: reading
    // it with a reason is itself recorded, which moves the revision on).
    await page.reload();
    await waitFor(() => page.evaluate(() => window.consentd?.iab.signals().tcString), { what: 'the strings after the reload' });
    assert.deepEqual(decodeTC((await getTCData(page)).tcString), want);
    await new Promise((r) => setTimeout(r, 1000));
    const after = (await api(env, 'GET', `/v1/subjects/${id}/consent?region=DE`)).body.consent;
    assert.equal(after.ad_signals?.tc_string, done.tc, 'the signals are still the current ones: nothing was written since');
    assert.equal(after.revision, String(Number(s.revision) + 1), 'the signals event is the latest');

    const events = await signalsEvents(id);
    assert.equal(events.length, 1, `one signals event: ${JSON.stringify(events)}`);
    assert.equal(events[0].ad_signals.tc_string, done.tc);
    assert.equal(events[0].ad_signals.gpp_string, ping.gppString);
    const exp = await api(env, 'GET', `/v1/subjects/${id}:export?reason=test`);
    assert.equal(exp.status, 200, JSON.stringify(exp.body));
    assert.ok(JSON.stringify(exp.body).includes(done.tc), 'the export holds the TC string');
    assert.deepEqual(page.problems.filter((p) => !p.includes('/favicon.ico')), []);
    assert.deepEqual(await page.evaluate(() => window.__cspViolations), [], 'the stub and the SDK work under a strict CSP');
  });

  test('ad tags calling after the SDK loaded (no stub); reject all', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(iabPage({ stub: false }));
    await page.locator(inBanner('reject-all')).waitFor({ state: 'visible' });
    const id = await subjectId(page);
    await page.click(inBanner('reject-all'));
    await waitFor(async () => (await getTCData(page)).eventStatus === 'useractioncomplete', { what: 'useractioncomplete' });
    const d = await getTCData(page);
    assert.equal(d.gdprApplies, true);
    assert.equal(d.cmpId, 300);
    assert.deepEqual(decodeTC(d.tcString), {
      ...tcHeader, purposeConsents: [], purposeLegitimateInterests: [], specialFeatureOptins: [], vendorConsents: [], vendorLegitimateInterests: [],
    });
    const ping = await page.evaluate(() => new Promise((r) => window.__tcfapi('ping', 2, r)));
    assert.equal(ping.cmpLoaded, true);
    assert.equal(ping.cmpStatus, 'loaded');
    const s = await stored(page, id, 'DE');
    assert.equal(s.tc_string, d.tcString);
    assert.deepEqual(page.problems.filter((p) => !p.includes('/favicon.ico')), []);
  });

  test('per purpose, per vendor and withdrawal', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(iabPage({ stub: false, name: 'choices' }));
    await page.locator(inBanner('accept-all')).waitFor({ state: 'visible' });
    const id = await subjectId(page);

    // Per purpose: ads granted, analytics and functional denied.
    await page.evaluate(() => window.consentd.consent.set({ ads: true, analytics: false, functional: false }, 'preference_center'));
    let s = await stored(page, id, 'DE');
    assert.deepEqual(decodeTC(s.tc_string), {
      ...tcHeader, purposeConsents: [2, 3, 4, 7], purposeLegitimateInterests: [2], specialFeatureOptins: [1, 2],
      vendorConsents: [1, 10, 755], vendorLegitimateInterests: [25, 755],
    });
    assert.deepEqual(decodeTC((await getTCData(page)).tcString), decodeTC(s.tc_string));

    // Per vendor: all purposes granted, vendor 10 refused, vendor 755's legitimate interest objected to.
    await page.evaluate(() => window.consentd.consent.acceptAll('preference_center'));
    await stored(page, id, 'DE');
    await page.evaluate(() => window.consentd.iab.setVendors({ 10: false }, { 755: true }));
    s = await stored(page, id, 'DE');
    assert.deepEqual(decodeTC(s.tc_string), {
      ...tcHeader, purposeConsents: ALL, purposeLegitimateInterests: [2, 7, 8, 9, 10, 11], specialFeatureOptins: [1, 2],
      vendorConsents: [1, 2, 25, 755], vendorLegitimateInterests: [1, 2, 25],
    });

    // Withdrawal: nothing consented, every legitimate interest objected to, the per-vendor choices forgotten.
    await page.evaluate(() => window.consentd.consent.withdraw('preference_center'));
    s = await stored(page, id, 'DE');
    assert.deepEqual(decodeTC(s.tc_string), {
      ...tcHeader, purposeConsents: [], purposeLegitimateInterests: [], specialFeatureOptins: [], vendorConsents: [], vendorLegitimateInterests: [],
    });
    assert.deepEqual(await page.evaluate(() => window.consentd.iab.vendorConsents()), {});
    assert.ok((await signalsEvents(id)).length >= 4, 'one signals event per change');
    assert.deepEqual(page.problems.filter((p) => !p.includes('/favicon.ico')), []);
  });
});

describe('iab: GPP in the US', () => {
  const optOuts = (section, m) => ['SaleOptOut', 'SharingOptOut', 'TargetedAdvertisingOptOut'].map((f) => m.getFieldValue(section, f));

  test('US-CA with GPC: queued ad tags answered, usca opted out with Gpc set; consentd keeps the string', async (t) => {
    const { page, close } = await openBrowser(env, { gpc: true });
    t.after(close);
    await page.goto(iabPage({ region: 'US-CA' }));
    const id = await subjectId(page);
    await waitFor(() => page.evaluate(() => window.early.gpp.some((e) => e.name === 'signalStatus' && e.data === 'ready')), { what: 'signalStatus ready' });
    const ping = (await gpp(page, 'ping')).d;
    assert.deepEqual(ping.applicableSections, [8]);
    assert.equal(ping.cmpId, 300);
    assert.equal((await gpp(page, 'hasSection', 'usca')).d, true);
    assert.equal((await gpp(page, 'getField', 'usca.SaleOptOut')).d, 1);
    assert.equal((await gpp(page, 'getField', 'usca.Gpc')).d, true);
    const s = await stored(page, id, 'US-CA');
    assert.equal(s.tc_string, '');
    const m = new GppModel(s.gpp_string);
    assert.deepEqual(m.getHeader().SectionIds, [8]);
    const usca = m.getSection('usca');
    assert.deepEqual([usca.SaleOptOut, usca.SharingOptOut, usca.SaleOptOutNotice, usca.SharingOptOutNotice, usca.MspaCoveredTransaction, usca.Gpc], [1, 1, 1, 1, 2, true]);
    // __tcfapi says GDPR does not apply here.
    const tc = await page.evaluate(() => new Promise((r) => window.__tcfapi('getTCData', 2, (d) => r(d))));
    assert.equal(tc.gdprApplies, false);
    assert.deepEqual(page.problems.filter((p) => !p.includes('/favicon.ico')), []);
  });

  test('an ad tag in an iframe reaches both APIs through the locator frames (postMessage), before and after the SDK loads', async (t) => {
    // The frame looks for the locator frames up its parents, as the specs say, and calls at once.
    env.site.page('/iab-ad-frame.html', `<!doctype html><html><body><script>
window.answers = { tcf: [], gpp: [] };
addEventListener('message', function (e) {
  var d = typeof e.data === 'string' ? JSON.parse(e.data) : e.data;
  if (d && d.__tcfapiReturn) answers.tcf.push(d.__tcfapiReturn);
  if (d && d.__gppReturn) answers.gpp.push(d.__gppReturn);
});
function find(name) {
  for (var w = window; w; w = w.parent) {
    try { if (w.frames[name]) return w; } catch (e) {}
    if (w === window.top) return null;
  }
  return null;
}
(function call() {
  var tcf = find('__tcfapiLocator'), gpp = find('__gppLocator');
  if (!tcf || !gpp) return setTimeout(call, 10);
  tcf.postMessage({ __tcfapiCall: { command: 'ping', version: 2, callId: 'tping' } }, '*');
  tcf.postMessage({ __tcfapiCall: { command: 'getTCData', version: 2, callId: 'tdata' } }, '*');
  gpp.postMessage(JSON.stringify({ __gppCall: { command: 'ping', version: '1.1', callId: 'gping' } }), '*');
  gpp.postMessage({ __gppCall: { command: 'getField', parameter: 'usnat.SaleOptOut', version: '1.1', callId: 'gfield' } }, '*');
})();
</script></body></html>`);
    const { page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(iabPage({ region: 'US', name: 'frame', body: '<iframe id="ad" title="Advertisement" src="/iab-ad-frame.html"></iframe>\n' }));
    const answers = () => page.evaluate(() => document.getElementById('ad').contentWindow.answers);
    let last;
    const a = await waitFor(async () => {
      const x = (last = await answers());
      return x && x.tcf.length === 2 && x.gpp.length === 2 ? x : null;
    }, { what: 'the frame\'s four answers' }).catch((e) => { throw new Error(`${e.message}: ${JSON.stringify(last)}`); });
    const by = (list, id) => list.find((r) => r.callId === id);
    assert.equal(by(a.tcf, 'tping').returnValue.cmpStatus, 'stub', 'the stub answered the early ping');
    assert.equal(by(a.gpp, 'gping').returnValue.cmpStatus, 'stub', 'the stub answered the early ping');
    // Queued by the stubs, answered by the SDK once loaded.
    const tcData = by(a.tcf, 'tdata');
    assert.equal(tcData.success, true);
    assert.equal(tcData.returnValue.gdprApplies, false, 'no GDPR in the US');
    const field = by(a.gpp, 'gfield');
    assert.equal(field.success, true);
    assert.equal(field.returnValue, 2, 'the US default: not opted out');
    // The stub's frames and its messages under the page's strict CSP.
    assert.equal(await page.evaluate(() => Boolean(window.frames.__tcfapiLocator && window.frames.__gppLocator)), true);
    assert.deepEqual(await page.evaluate(() => window.__cspViolations), []);
    assert.deepEqual(page.problems.filter((p) => !p.includes('/favicon.ico')), []);
  });

  test('US: ads denied then granted through the API: usnat opt-outs 1 then 2; consentd keeps each', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(iabPage({ region: 'US', stub: false }));
    const id = await subjectId(page);
    await page.evaluate(() => window.consentd.consent.set({ ads: false }, 'preference_center'));
    let s = await stored(page, id, 'US');
    let m = new GppModel(s.gpp_string);
    assert.deepEqual(m.getHeader().SectionIds, [7]);
    assert.deepEqual(optOuts('usnat', m), [1, 1, 1]);
    assert.equal(m.getFieldValue('usnat', 'Gpc'), false);
    assert.equal((await gpp(page, 'getField', 'usnat.TargetedAdvertisingOptOut')).d, 1);

    await page.evaluate(() => window.consentd.consent.set({ ads: true }, 'preference_center'));
    s = await stored(page, id, 'US');
    m = new GppModel(s.gpp_string);
    assert.deepEqual(optOuts('usnat', m), [2, 2, 2]);
    assert.equal((await gpp(page, 'getField', 'usnat.SaleOptOut')).d, 2);
    assert.deepEqual(page.problems.filter((p) => !p.includes('/favicon.ico')), []);
  });
});
