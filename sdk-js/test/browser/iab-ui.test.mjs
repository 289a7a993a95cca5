// The TCF layer of the preference center (src/iab/ui.ts) in a real Chromium
// against a real consentd and Redis: the texts the TCF v2.2 policies ask of
// the first layer, every switch's effect (decisions at the service, per-vendor
// calls to the signals part), a keyboard-only session, axe-core at desktop and
// phone widths, and a strict CSP. The signals part is a fake (fixtures/
// iab-ui-page.mjs); consentd runs the IAB test policy and vendor list
// (server/domain/testdata/iab/policy.yaml and vendor-list.json, GVL v3). The
// last test runs the IAB script tag with the real signals part.
//
// Run: npm run build && node --test test/browser/iab-ui.test.mjs

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { build } from 'esbuild';
import { api, axePath, distDir, openBrowser, screenshot, sdkDir, startEnv, subjectId, waitFor } from './harness.mjs';

const banner = '[data-consent-banner]';
const prefs = '[data-consent-preferences]';
const desktop = { width: 1280, height: 800 };
const purposeNames = ['Store and/or access information on a device', 'Use limited data to select advertising',
  'Create profiles for personalised advertising', 'Use profiles to select personalised advertising', 'Create profiles to personalise content',
  'Use profiles to select personalised content', 'Measure advertising performance', 'Measure content performance',
  'Understand audiences through statistics or combinations of data from different sources', 'Develop and improve services',
  'Use limited data to select content', 'Use precise geolocation data', 'Actively scan device characteristics for identification'];
const phone = { width: 375, height: 740 };

async function bundle() {
  const [js, css] = await Promise.all([
    build({
      absWorkingDir: sdkDir, entryPoints: ['test/browser/fixtures/iab-ui-page.mjs'], bundle: true, write: false,
      format: 'iife', target: 'es2020', minify: true, logLevel: 'warning',
    }),
    build({
      absWorkingDir: sdkDir, entryPoints: ['src/iab/ui.css'], bundle: true, write: false, minify: true,
      loader: { '.css': 'css' }, logLevel: 'warning',
    }),
  ]);
  return { js: js.outputFiles[0].text, css: css.outputFiles[0].text };
}

let pages = 0;
/** A page with the TCF layer, served under a strict CSP (scripts by nonce, no inline styles). */
function tcfPage(env, { lang = 'en', region = 'DE', opener = true } = {}) {
  const nonce = 'n' + ++pages + Math.random().toString(36).slice(2);
  const html = `<!doctype html>
<html lang="${lang}">
<head>
<meta charset="utf-8">
<title>Trail shoes review</title>
<script nonce="${nonce}" src="/tcf/page.js" data-endpoint="${env.consentd.url}" data-region="${region}" data-lang="${lang}" data-stylesheet="/tcf/consentd-iab.css"></script>
</head>
<body>
<header><nav aria-label="Site"><a href="#article">Article</a></nav></header>
<main id="article">
<h1>Trail shoes review</h1>
<p>A fixture page for the TCF layer's tests.</p>
${opener ? '<p><button type="button" id="opener" data-consent-open>Privacy choices</button></p>\n' : ''}</main>
</body>
</html>`;
  return env.site.page(`/tcf-${pages}.html`, html, {
    'Content-Security-Policy': `default-src 'self'; script-src 'self' 'nonce-${nonce}'; style-src 'self'; `
      + `connect-src 'self' ${env.consentd.url}; img-src 'self'`,
  });
}

/** The text as rendered (playwright's innerText: what is visible, laid out), not the DOM's textContent. */
function shown(locator) {
  // biome-ignore lint/performance/useDomNodeTextContent: playwright's API, and the visible text is the point
  return locator.innerText();
}

async function audit(page, selector) {
  const result = await page.evaluate(async (include) => window.axe.run({ include: [include] }, { resultTypes: ['violations'] }), selector);
  for (const v of result.violations) {
    console.log(`axe ${v.impact}: ${v.id}: ${v.help}\n${v.nodes.map((n) => `  ${n.target.join(' ')}: ${n.failureSummary}`).join('\n')}`);
  }
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
}

async function clean(page) {
  assert.deepEqual(await page.evaluate(() => window.__cspViolations), [], 'no CSP violations');
  assert.deepEqual(page.problems.filter((p) => !p.includes('/favicon.ico')), [], 'no console errors or page errors');
  // (axe's checks and playwright's screenshots leave empty style attributes behind: checked before them.)
  if (!await page.evaluate(() => Boolean(window.axe))) await noInlineStyle(page);
}

async function noInlineStyle(page) {
  assert.deepEqual(await page.evaluate(() => Array.from(document.querySelectorAll('.consentd [style]'), (e) => e.id + ': ' + e.getAttribute('style'))), [], 'no inline style');
}

/** The service's answers by purpose: { allowed, reason, source }. */
async function decisions(env, id) {
  const c = await env.consentd.consent(id);
  return Object.fromEntries(c.purposes.map((p) => [p.purpose, { allowed: p.allowed, reason: p.reason, source: p.decision?.source }]));
}

const calls = (page) => page.evaluate(() => window.consentd.controller.calls);

async function openFirstLayer(env, options = {}) {
  const b = await openBrowser(env, options);
  // The banner funnel's steps the page reports.
  const steps = [];
  b.page.on('request', (r) => { if (r.url().endsWith('/v1/banner-events')) steps.push(JSON.parse(r.postData()).step); });
  await b.page.goto(tcfPage(env, options));
  await b.page.locator(banner).waitFor({ state: 'visible' });
  const id = await subjectId(b.page);
  return { ...b, id, steps };
}

// consentd runs the IAB test policy and vendor list of the server's tests.
const testdata = join(sdkDir, '../server/domain/testdata/iab');

function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    return {
      action: el?.getAttribute('data-consent-action') ?? null,
      purpose: el?.getAttribute('data-consent-purpose') ?? null,
      kind: el?.getAttribute('data-tcf-kind') ?? null,
      vendor: el?.getAttribute('data-tcf-vendor') ?? null,
      view: el?.getAttribute('data-tcf-view') ?? null,
      inPrefs: Boolean(el?.closest('[data-consent-preferences]')),
      inBanner: Boolean(el?.closest('[data-consent-banner]')),
      outside: !document.hasFocus(),
      visibleFocus: el ? getComputedStyle(el).outlineStyle !== 'none' : false,
    };
  });
}

async function tabTo(page, want, what, max = 80) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const f = await focused(page);
    if (want(f)) return f;
  }
  throw new Error(`Tab never reached ${what}`);
}

describe('TCF layer', () => {
  let env;
  let assets;
  before(async () => {
    assets = await bundle();
    env = await startEnv({ args: ['--policy', join(testdata, 'policy.yaml'), '--gvl', join(testdata, 'vendor-list.json')] });
    env.site.file('/tcf/page.js', assets.js);
    env.site.file('/tcf/consentd-iab.css', assets.css);
    env.site.file('/tcf/axe.js', readFileSync(axePath, 'utf8'));
  });
  after(async () => { await env?.stopAll(); });

  test('first layer: the texts the TCF policies ask for, equal accept and reject, axe-clean at 1280 and 375 px', async (t) => {
    for (const [name, viewport] of [['1280', desktop], ['375', phone]]) {
      const { page, close } = await openFirstLayer(env, { viewport });
      t.after(close);
      const text = await shown(page.locator(banner));
      // The number of partners: the policy's 5 vendors, not the vendor list's 6.
      assert.match(text, /We and our 5 partners store and access information on your device/);
      assert.match(text, /See our 5 partners/);
      // Purposes and special features by their vendor-list names, grouped by the stacks that fit
      // (42: purposes 2-11; 1: both special features), the rest by name.
      for (const p of ['Personalised advertising and content, advertising and content measurement, audience research and services development',
        'Store and/or access information on a device', 'Precise geolocation data, and identification through device scanning']) {
        assert.ok(text.includes(p), `the first layer names ${p}`);
      }
      assert.match(text, /legitimate interest/);
      assert.match(text, /right to object/);
      assert.match(text, /change your choices or withdraw your consent at any time/);
      assert.match(text, /apply to this site only/);
      // Accept all and reject all: same size, same text treatment.
      const look = (a) => page.locator(`${banner} [data-consent-action="${a}"]`).evaluate((b) => {
        const s = getComputedStyle(b);
        const r = b.getBoundingClientRect();
        return { w: Math.round(r.width), h: Math.round(r.height), font: s.font, color: s.color, bg: s.backgroundColor };
      });
      assert.deepEqual(await look('accept-all'), await look('reject-all'), 'accept all and reject all look the same');
      assert.equal(await shown(page.locator(`${banner} [data-consent-action="customise"]`)), 'Manage options');
      // A stack's purposes and a purpose's description are a disclosure away.
      await noInlineStyle(page);
      await screenshot(page, `iab-ui-first-layer-${name}.png`);
      await page.locator(`${banner} summary`, { hasText: 'Personalised advertising and content' }).click();
      assert.match(await shown(page.locator(banner)), /Create profiles to personalise content/, "the stack's disclosure names its purposes");
      await page.locator(`${banner} details`).evaluateAll((ds) => ds.forEach((d) => { d.open = true; }));
      const all = await shown(page.locator(banner));
      for (const p of purposeNames) assert.ok(all.includes(p), `the first layer's disclosures name ${p}`);
      await page.addScriptTag({ url: '/tcf/axe.js' }); // same origin: the strict CSP lets it run
      assert.deepEqual(await audit(page, banner), [], `banner at ${name} px`);
      await clean(page);
    }
  });

  test('first layer: accept all grants every purpose and clears per-vendor choices; reject all denies them', async (t) => {
    for (const action of ['accept-all', 'reject-all']) {
      const { page, close, id, steps } = await openFirstLayer(env);
      t.after(close);
      await page.click(`${banner} [data-consent-action="${action}"]`);
      await page.locator(banner).waitFor({ state: 'hidden' });
      await waitFor(async () => {
        const d = await decisions(env, id);
        return ['functional', 'analytics', 'ads'].every((p) => d[p].allowed === (action === 'accept-all')
          && d[p].reason === 'REASON_EXPLICIT' && d[p].source === 'SOURCE_BANNER');
      }, { what: `${action} at the service` });
      assert.deepEqual(await calls(page), [{ call: 'clearVendors' }]);
      // The banner's funnel, as the default banner reports it.
      await waitFor(() => steps.length === 2, { what: 'the funnel steps' });
      assert.deepEqual(steps, ['BANNER_STEP_SHOWN', action === 'accept-all' ? 'BANNER_STEP_ACCEPT_ALL' : 'BANNER_STEP_REJECT_ALL']);
      // The floating button takes the banner's place: choices can be changed at any time.
      // (Shown where the page has no [data-consent-open] element of its own; this one has.)
      assert.equal(await page.locator('.consentd-fab').evaluate((b) => b.hidden), false);
      assert.equal(await page.locator('.consentd-end').evaluate((b) => b.hidden), false);
      await clean(page);
    }
  });

  test('the floating Privacy choices button takes the banner\'s place and reopens the choices, on the keyboard too', async (t) => {
    const { page, close } = await openFirstLayer(env, { opener: false });
    t.after(close);
    const fab = page.locator('.consentd-fab');
    assert.equal(await fab.isVisible(), false, 'not while the banner is up');
    await page.focus(`${banner} [data-consent-action="reject-all"]`);
    await page.keyboard.press('Enter');
    await page.locator(banner).waitFor({ state: 'hidden' });
    await fab.waitFor({ state: 'visible' });
    assert.equal(await fab.evaluate((b) => document.activeElement === b), true, 'the focus went to it from the banner');
    await page.keyboard.press('Enter');
    await page.locator(`${prefs} [data-tcf-pane="purposes"]`).waitFor({ state: 'visible' });
    assert.equal(await page.locator(`${prefs} input[data-consent-purpose="ads"][data-tcf-kind="object"]`).isChecked(), true, 'reject all shows as objections');
    await page.keyboard.press('Escape');
    await page.locator(prefs).waitFor({ state: 'hidden' });
    assert.equal(await fab.evaluate((b) => document.activeElement === b), true, 'and back to it');
    await clean(page);
  });

  test('second layer: each switch and its effect at the service and on the signals part', async (t) => {
    const { page, close, id } = await openFirstLayer(env);
    t.after(close);
    await page.click(`${banner} [data-consent-action="customise"]`);
    await page.locator(prefs).waitFor({ state: 'visible' });
    const sw = (sel) => page.locator(`${prefs} input${sel}`);
    const text = await shown(page.locator(`${prefs} [data-tcf-pane="purposes"]`));
    // Each consentd purpose with its TCF purposes (names), legitimate interests, special features; special purposes and features for information.
    for (const p of ['Advertising', 'Analytics', 'Functional', 'Strictly necessary', ...purposeNames,
      'Ensure security, prevent and detect fraud, and fix errors', 'Deliver and present advertising and content', 'Save and communicate privacy choices',
      'Match and combine data from other data sources', 'Link different devices', 'Identify devices based on information transmitted automatically']) {
      assert.ok(text.includes(p), `the purposes pane names ${p}`);
    }
    // Descriptions from the vendor list, behind their disclosures.
    await page.locator(`${prefs} summary`, { hasText: 'Measure advertising performance' }).first().click();
    assert.ok((await shown(page.locator(`${prefs} [data-tcf-pane="purposes"]`))).includes('how well an advert has worked'));
    assert.equal(await page.getByRole('switch', { name: 'Object to legitimate interest Advertising' }).count(), 1, "an objection switch is named with its purpose");
    // Nothing decided yet: no consent, no objection.
    assert.equal(await sw('[data-consent-purpose="ads"][data-tcf-kind="consent"]').first().isChecked(), false);
    assert.equal(await sw('[data-consent-purpose="ads"][data-tcf-kind="object"]').isChecked(), false);

    // The special feature's switch is the ads decision: it turns ads on, and back off.
    await sw('[data-tcf-special-feature="1"]').click();
    assert.equal(await sw('[data-consent-purpose="ads"][data-tcf-kind="consent"]').first().isChecked(), true, 'the special feature turns ads consent on');
    assert.equal(await sw('[data-tcf-special-feature="2"]').isChecked(), true, 'and the other special feature of ads');
    // Objecting to ads' legitimate interest refuses ads (and its special features); consent to analytics; functional left off.
    await sw('[data-consent-purpose="ads"][data-tcf-kind="object"]').click();
    assert.equal(await sw('[data-consent-purpose="ads"][data-tcf-kind="consent"]').first().isChecked(), false, 'the objection refuses ads');
    assert.equal(await sw('[data-tcf-special-feature="1"]').isChecked(), false, 'and its special features');
    await sw('[data-consent-purpose="analytics"][data-tcf-kind="consent"]').click();
    assert.equal(await sw('[data-consent-purpose="analytics"][data-tcf-kind="object"]').isChecked(), false);

    // Partners: Geo Ads' consent on, Exchange's legitimate interest objected; untouched partners follow the purposes.
    await page.click(`${prefs} [data-tcf-view="vendors"]`);
    await page.locator(`${prefs} [data-tcf-pane="vendors"]`).waitFor({ state: 'visible' });
    assert.equal(await sw('[data-tcf-vendor="2"][data-tcf-kind="consent"]').isChecked(), true, 'Measurement (purposes 1, 8, 9) follows analytics, now on');
    assert.equal(await sw('[data-tcf-vendor="10"][data-tcf-kind="consent"]').isChecked(), false, 'Geo Ads (purposes 1-4) follows functional and ads, off');
    await sw('[data-tcf-vendor="10"][data-tcf-kind="consent"]').click();
    await sw('[data-tcf-vendor="1"][data-tcf-kind="object"]').click();
    await page.click(`${prefs} [data-consent-action="save"]`);
    await page.locator(prefs).waitFor({ state: 'hidden' });
    await waitFor(async () => {
      const d = await decisions(env, id);
      return d.analytics.allowed && d.analytics.reason === 'REASON_EXPLICIT' && d.analytics.source === 'SOURCE_PREFERENCE_CENTER'
        && !d.ads.allowed && d.ads.reason === 'REASON_EXPLICIT'
        && !d.functional.allowed && d.functional.reason === 'REASON_EXPLICIT';
    }, { what: 'analytics granted, ads (objected) and functional denied from the preference center' });
    await waitFor(async () => (await calls(page)).length === 1, { what: 'the per-vendor call' });
    const [c] = await calls(page);
    assert.deepEqual(c, { call: 'setVendors', consents: { 10: true }, objections: { 1: true }, revision: c.revision });
    assert.ok(c.revision > 0, 'the vendor choices are sent after the purposes were recorded');

    // Reopened: the switches show what is stored; lifting the objection by consenting grants ads.
    await page.click('#opener');
    await page.locator(prefs).waitFor({ state: 'visible' });
    assert.equal(await sw('[data-consent-purpose="ads"][data-tcf-kind="object"]').isChecked(), true, 'the objection is shown');
    assert.equal(await sw('[data-consent-purpose="analytics"][data-tcf-kind="consent"]').isChecked(), true);
    await page.click(`${prefs} [data-tcf-view="vendors"]`);
    assert.equal(await sw('[data-tcf-vendor="10"][data-tcf-kind="consent"]').isChecked(), true, "Geo Ads' own choice is shown");
    assert.equal(await sw('[data-tcf-vendor="1"][data-tcf-kind="object"]').isChecked(), true, "Exchange's objection is shown");
    await page.click(`${prefs} [data-tcf-view="purposes"]`);
    await sw('[data-consent-purpose="ads"][data-tcf-kind="consent"]').first().click();
    assert.equal(await sw('[data-consent-purpose="ads"][data-tcf-kind="object"]').isChecked(), false, 'consent lifts the objection');
    assert.equal(await sw('[data-tcf-special-feature="1"]').isChecked(), true);
    await page.click(`${prefs} [data-consent-action="save"]`);
    await waitFor(async () => {
      const d = await decisions(env, id);
      return d.ads.allowed && d.ads.reason === 'REASON_EXPLICIT' && d.analytics.allowed;
    }, { what: 'ads granted' });
    assert.equal((await calls(page)).length, 1, 'no partner touched: no per-vendor call');

    // Reject all in the preference center: every purpose denied, per-vendor choices cleared.
    await page.click('#opener');
    await page.click(`${prefs} [data-consent-action="reject-all"]`);
    await waitFor(async () => {
      const d = await decisions(env, id);
      return ['functional', 'analytics', 'ads'].every((p) => !d[p].allowed && d[p].source === 'SOURCE_PREFERENCE_CENTER');
    }, { what: 'reject all from the preference center' });
    assert.deepEqual((await calls(page)).at(-1), { call: 'clearVendors' });
    await clean(page);
  });

  test("second layer: saving refuses what is off (an objection too), except an objection the person lifted without consent", async (t) => {
    const { page, close, id } = await openFirstLayer(env);
    t.after(close);
    await page.click(`${banner} [data-consent-action="customise"]`);
    await page.locator(prefs).waitFor({ state: 'visible' });
    const sw = (sel) => page.locator(`${prefs} input${sel}`);
    // Turning consent off shows the objection it is.
    await sw('[data-consent-purpose="ads"][data-tcf-kind="consent"]').first().click();
    await sw('[data-consent-purpose="ads"][data-tcf-kind="consent"]').first().click();
    assert.equal(await sw('[data-consent-purpose="ads"][data-tcf-kind="object"]').isChecked(), true);
    // Analytics: an objection turned on, then off again: no consent, no objection.
    await sw('[data-consent-purpose="analytics"][data-tcf-kind="object"]').click();
    await sw('[data-consent-purpose="analytics"][data-tcf-kind="object"]').click();
    await page.click(`${prefs} [data-consent-action="save"]`);
    await waitFor(async () => (await decisions(env, id)).functional.reason === 'REASON_EXPLICIT', { what: 'the decisions' });
    const d = await decisions(env, id);
    assert.equal(d.functional.allowed, false);
    assert.equal(d.ads.allowed, false);
    assert.equal(d.ads.reason, 'REASON_EXPLICIT');
    assert.notEqual(d.analytics.reason, 'REASON_EXPLICIT', "analytics' legitimate interest stays: not decided");
    // Still undecided: the first layer asks again.
    await page.locator(banner).waitFor({ state: 'visible' });
    assert.deepEqual(await calls(page), []);
  });

  test('partners list: each partner with what the TCF policies ask to disclose', async (t) => {
    const { page, close } = await openFirstLayer(env);
    t.after(close);
    await page.click(`${banner} [data-consent-action="vendors"]`);
    await page.locator(`${prefs} [data-tcf-pane="vendors"]`).waitFor({ state: 'visible' });
    assert.equal(await shown(page.locator(`${prefs} [data-tcf-view="vendors"]`)), 'Partners (5)');
    const names = await page.locator(`${prefs} .consentd-vname`).allInnerTexts();
    assert.deepEqual(names, ['Example Ad Server AG', 'Example Content Personalisation BV', 'Example Exchange GmbH', 'Example Geo Ads Ltd', 'Example Measurement SAS']);
    const exchange = page.locator(`${prefs} [data-tcf-vendor-item="1"]`);
    await exchange.locator('summary').click();
    const text = await shown(exchange);
    for (const s of [
      'Purposes (consent)', 'Store and/or access information on a device (kept 365 days)', 'Measure advertising performance (kept 30 days)',
      'Purposes (legitimate interest)', 'Develop and improve services (kept 365 days)',
      'Special purposes', 'Ensure security, prevent and detect fraud, and fix errors (kept 90 days)', 'Deliver and present advertising and content (kept 365 days)',
      'Features', 'Match and combine data from other data sources', 'Identify devices based on information transmitted automatically',
      'Cookies, kept up to 365 days (renewed on each visit)', 'Also other ways of storing and accessing information on your device',
      'Data categories', 'IP addresses', 'Device characteristics', 'Device identifiers', 'Browsing and interaction data', 'Non-precise location data',
    ]) assert.ok(text.includes(s), `Exchange's details say ${s}`);
    assert.ok(!text.includes('Special features'), 'no special features where it has none');
    assert.equal(await exchange.getByRole('link', { name: 'Privacy policy' }).getAttribute('href'), 'https://exchange.example.com/privacy');
    assert.equal(await exchange.getByRole('link', { name: 'Legitimate interest at stake' }).getAttribute('href'), 'https://exchange.example.com/legitimate-interest');
    const geo = page.locator(`${prefs} [data-tcf-vendor-item="10"]`);
    await geo.locator('summary').click();
    assert.ok((await shown(geo)).includes('Use precise geolocation data'), "Geo Ads' special feature");
    // Switches: consent where a partner has consent purposes or special features, objection where it has legitimate interests.
    const kinds = await page.locator(`${prefs} input[data-tcf-vendor]`).evaluateAll((is) => is.map((i) => `${i.dataset.tcfVendor}:${i.dataset.tcfKind}`));
    assert.deepEqual(kinds.sort(), ['10:consent', '1:consent', '1:object', '25:consent', '25:object', '2:consent', '2:object', '755:consent', '755:object']);
    const content = page.locator(`${prefs} [data-tcf-vendor-item="25"]`);
    await content.locator('summary').click();
    assert.match(await shown(content), /No cookies/);
    await clean(page);
  });

  test('keyboard only: the first layer, the partners, a trapped dialog, Esc, Space and Enter', async (t) => {
    const { page, close, id } = await openFirstLayer(env);
    t.after(close);
    const seen = new Set();
    await tabTo(page, (f) => {
      if (f.inBanner && f.action) {
        seen.add(f.action);
        assert.ok(f.visibleFocus, `visible focus on ${f.action}`);
      }
      return ['vendors', 'accept-all', 'reject-all', 'customise'].every((a) => seen.has(a));
    }, 'the partners link, accept all, reject all and manage options');

    // The partners, with Enter: the dialog opens on them, focus inside.
    await page.focus(`${banner} [data-consent-action="vendors"]`);
    await page.keyboard.press('Enter');
    await page.locator(`${prefs} [data-tcf-pane="vendors"]`).waitFor({ state: 'visible' });
    await waitFor(async () => (await focused(page)).inPrefs, { what: 'focus inside the preference center' });
    // Tab and Shift+Tab stay inside (a native modal; past the last control the browser's own UI may take a turn).
    const count = await page.locator(prefs).evaluate((el) => Array.from(el.querySelectorAll('button, input, a[href], summary'))
      .filter((e) => e.getClientRects().length).length);
    for (let i = 0; i < count + 3; i++) {
      await page.keyboard.press('Tab');
      const f = await focused(page);
      assert.ok(f.inPrefs || f.outside, `Tab ${i + 1} reached the page: ${JSON.stringify(f)}`);
    }
    for (let i = 0; i < count + 3; i++) {
      await page.keyboard.press('Shift+Tab');
      const f = await focused(page);
      assert.ok(f.inPrefs || f.outside, `Shift+Tab ${i + 1} reached the page: ${JSON.stringify(f)}`);
    }
    // Esc closes it; the focus is back on the partners link.
    await page.keyboard.press('Escape');
    await page.locator(prefs).waitFor({ state: 'hidden' });
    assert.equal((await focused(page)).action, 'vendors');

    // Manage options: Space on Geo Ads' consent (Partners view), Space on analytics, Enter on Save.
    await page.focus(`${banner} [data-consent-action="customise"]`);
    await page.keyboard.press('Enter');
    await page.locator(`${prefs} [data-tcf-pane="purposes"]`).waitFor({ state: 'visible' });
    await tabTo(page, (f) => f.purpose === 'analytics' && f.kind === 'consent', 'the analytics consent switch');
    assert.ok((await focused(page)).visibleFocus, 'visible focus on a switch');
    await page.keyboard.press('Space');
    await page.keyboard.press('Shift+Tab');
    await tabTo(page, (f) => f.view === 'vendors', 'the partners tab', 120).catch(async () => {
      // The tabs come before the panes: go back up.
      for (let i = 0; i < 200; i++) {
        await page.keyboard.press('Shift+Tab');
        if ((await focused(page)).view === 'vendors') return;
      }
      throw new Error('no partners tab');
    });
    await page.keyboard.press('Enter');
    await tabTo(page, (f) => f.vendor === '10' && f.kind === 'consent', "Geo Ads' consent switch");
    await page.keyboard.press('Space');
    await tabTo(page, (f) => f.action === 'save', 'Save');
    await page.keyboard.press('Enter');
    await page.locator(prefs).waitFor({ state: 'hidden' });
    await waitFor(async () => {
      const d = await decisions(env, id);
      return d.analytics.allowed && d.analytics.source === 'SOURCE_PREFERENCE_CENTER' && !d.functional.allowed && d.functional.reason === 'REASON_EXPLICIT';
    }, { what: 'analytics granted from the keyboard' });
    await waitFor(async () => (await calls(page)).some((c) => c.call === 'setVendors' && c.consents[10] === true), { what: "Geo Ads' consent sent" });
    await clean(page);
  });

  test('second layer: axe-clean at 1280 and 375 px, both views, every disclosure open; screenshots', async (t) => {
    for (const [name, viewport] of [['1280', desktop], ['375', phone]]) {
      const { page, close } = await openFirstLayer(env, { viewport, lang: name === '375' ? 'de' : 'en' });
      t.after(close);
      await page.click(`${banner} [data-consent-action="customise"]`);
      await page.locator(prefs).waitFor({ state: 'visible' });
      // Every part drawn once (both views, every disclosure open) with no style attribute, before axe's
      // checks and playwright's screenshots (which leave empty ones behind).
      await page.click(`${prefs} [data-tcf-view="vendors"]`);
      await page.locator(`${prefs} details`).evaluateAll((ds) => ds.forEach((d) => { d.open = true; }));
      await noInlineStyle(page);
      await page.click(`${prefs} [data-tcf-view="purposes"]`);
      await page.locator(`${prefs} [data-tcf-pane="purposes"] details`).evaluateAll((ds) => ds.forEach((d) => { d.open = false; }));
      await screenshot(page, `iab-ui-purposes-${name}.png`);
      await page.locator(`${prefs} details`).evaluateAll((ds) => ds.forEach((d) => { d.open = true; }));
      if (name === '375') {
        // A German page: the vendor list's English texts say they are English (screen readers switch voice).
        assert.equal(await page.locator(`${prefs} label[for$="-sf1"]`).getAttribute('lang'), 'en');
        assert.equal(await page.locator(`${prefs} .consentd-title`).evaluate((h) => h.closest('[lang]').lang), 'de');
      }
      await page.addScriptTag({ url: '/tcf/axe.js' }); // same origin: the strict CSP lets it run
      assert.deepEqual(await audit(page, prefs), [], `purposes at ${name} px`);
      await page.click(`${prefs} [data-tcf-view="vendors"]`);
      await page.locator(`${prefs} [data-tcf-pane="vendors"]`).waitFor({ state: 'visible' });
      await page.locator(`${prefs} [data-tcf-pane="vendors"]`).evaluate((p) => p.scrollIntoView());
      await screenshot(page, `iab-ui-vendors-${name}.png`);
      assert.deepEqual(await audit(page, prefs), [], `partners at ${name} px`);
      await clean(page);
    }
  });

  test('in the IAB script tag, with the real signals part: mounted in a TCF region, its choices reach __tcfapi and consentd', async (t) => {
    if (!existsSync(join(distDir, 'consentd-iab.iife.js'))) return t.skip('no dist/consentd-iab.iife.js (the iab entry is not built)');
    const { page, close } = await openBrowser(env);
    t.after(close);
    const nonce = 'iab' + Math.random().toString(36).slice(2);
    const url = env.site.page('/tcf-iab-iife.html', `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Trail shoes review</title>
<script nonce="${nonce}" src="/sdk/consentd-iab-stub.js"></script>
<script nonce="${nonce}" src="/sdk/consentd-iab.iife.js" data-endpoint="${env.consentd.url}" data-region="DE" data-lang="en"></script>
</head><body><main><h1>Trail shoes review</h1><p>With the IAB script tag.</p></main></body></html>`, {
      'Content-Security-Policy': `default-src 'self'; script-src 'self' 'nonce-${nonce}'; style-src 'self'; connect-src 'self' ${env.consentd.url}; img-src 'self'`,
    });
    await page.goto(url);
    await page.locator(`${banner}.consentd-tcf-banner`).waitFor({ state: 'visible' });
    const id = await subjectId(page);
    assert.match(await shown(page.locator(banner)), /We and our 5 partners/);
    await page.click(`${banner} [data-consent-action="customise"]`);
    await page.locator(prefs).waitFor({ state: 'visible' });
    await page.locator(`${prefs} input[data-consent-purpose="ads"][data-tcf-kind="consent"]`).first().click();
    await page.click(`${prefs} [data-tcf-view="vendors"]`);
    await page.locator(`${prefs} input[data-tcf-vendor="10"][data-tcf-kind="consent"]`).click(); // Geo Ads: no, though ads is on
    await page.locator(`${prefs} input[data-tcf-vendor="755"][data-tcf-kind="object"]`).click(); // Ad Server: objection
    await page.click(`${prefs} [data-consent-action="save"]`);
    await waitFor(async () => {
      const d = await decisions(env, id);
      return d.ads.allowed && !d.analytics.allowed && d.analytics.reason === 'REASON_EXPLICIT';
    }, { what: 'ads granted, functional and analytics refused at the service' });
    await page.locator(banner).waitFor({ state: 'hidden' });
    const tcData = await waitFor(() => page.evaluate(() => new Promise((resolve) => {
      window.__tcfapi('addEventListener', 2, (d, ok) => {
        if (ok && d.eventStatus !== 'cmpuishown' && d.vendor.consents[10] === false && !d.vendor.legitimateInterests[755]) {
          window.__tcfapi('removeEventListener', 2, () => {}, d.listenerId);
          resolve({ purposes: d.purpose.consents, purposeLI: d.purpose.legitimateInterests, vendors: d.vendor.consents, li: d.vendor.legitimateInterests });
        } else setTimeout(() => resolve(null), 100);
      });
    })), { what: 'the TC data with the per-vendor choices' });
    assert.equal(tcData.purposes[2], true, 'purpose 2 consented (ads)');
    // (The maps end at their last set bit: absent is false.)
    assert.ok(!tcData.purposes[1], 'purpose 1 not (functional refused)');
    assert.ok(!tcData.purposes[8], 'purpose 8 not (analytics refused)');
    assert.ok(!tcData.purposeLI[10], 'purpose 10: analytics refused, its legitimate interest objected');
    assert.equal(tcData.purposeLI[2], true, 'purpose 2: ads granted, its legitimate interest stays');
    assert.equal(tcData.vendors[1], true, 'Exchange follows the purposes');
    assert.equal(tcData.vendors[10], false, "Geo Ads' own choice");
    assert.ok(!tcData.li[755], "Ad Server's objection (its purpose 2 interest is otherwise established)");
    assert.equal(tcData.li[25], true, 'Content Personalisation: its purpose 2 interest, not objected');
    assert.deepEqual(await page.evaluate(() => window.__cspViolations), [], 'no CSP violations');
    assert.deepEqual(page.problems.filter((p) => !p.includes('/favicon.ico')), [], 'no errors');
    // The strings were recorded with the decisions.
    const tc = await page.evaluate(() => new Promise((resolve) => window.__tcfapi('getTCData', 2, (d) => resolve(d.tcString))));
    await waitFor(async () => {
      const r = await api(env, 'GET', `/v1/subjects/${encodeURIComponent(id)}/consent?region=DE`);
      return r.body?.consent?.ad_signals?.tc_string === tc;
    }, { what: 'the TC string at consentd' });
  });
});
