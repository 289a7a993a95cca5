// Global Privacy Control and a strict Content-Security-Policy, in a real
// Chromium against a real consentd and Redis.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openBrowser, screenshot, shopPage, startEnv, subjectId, waitFor } from './harness.mjs';

const banner = '[data-consent-banner]';
const prefs = '[data-consent-preferences]';

describe('privacy signals and CSP', () => {
  let env;
  before(async () => { env = await startEnv(); });
  after(async () => { await env?.stopAll(); });

  test('GPC in California: ads denied with reason GPC at the service, and the UI says so', async (t) => {
    const { page, close } = await openBrowser(env, { gpc: true });
    t.after(close);
    const adRequests = [];
    page.on('request', (r) => { if (r.url().includes('/demo/ad')) adRequests.push(r.url()); });
    await page.goto(shopPage(env, { region: 'US-CA' }));
    assert.equal(await page.evaluate(() => navigator.globalPrivacyControl), true);
    const id = await subjectId(page);

    const ads = await waitFor(async () => {
      const p = await env.consentd.purpose(id, 'ads');
      return p.reason === 'REASON_GPC' && p;
    }, { what: 'ads denied with REASON_GPC at the service' });
    assert.equal(ads.allowed, false);
    // Opt-out region: analytics stays allowed by default; only the GPC purposes are opted out.
    const analytics = await env.consentd.purpose(id, 'analytics');
    assert.deepEqual([analytics.allowed, analytics.reason], [true, 'REASON_DEFAULT']);

    await waitFor(() => page.evaluate(() => window.consentd.consent.get().gpcHonoured), { what: 'gpcHonoured in the SDK state' });
    const state = await page.evaluate(() => window.consentd.consent.get());
    assert.equal(state.gpc, true);
    assert.deepEqual(state.purposes.ads, { allowed: false, reason: 'gpc' });
    // Never, not even for a moment before the service recorded the signal.
    assert.equal(await page.getAttribute('#ad', 'src'), null, 'the ads iframe stays blocked');
    assert.deepEqual(adRequests, [], 'nothing of the ad was loaded');
    await waitFor(() => page.evaluate(() => window.demoAnalytics), { what: 'analytics to run (allowed by default in US-CA)' });

    // The banner (if the region shows one) or the preference center says GPC was honoured.
    if (!(await page.locator(banner).isVisible())) {
      await page.click('main [data-consent-open]');
      await page.locator(prefs).waitFor({ state: 'visible' });
    }
    const notice = page.locator('[data-consent-gpc-notice]').filter({ visible: true }).first();
    await notice.waitFor({ state: 'visible' });
    assert.ok((await notice.textContent()).trim().length > 0, 'the GPC notice has text');
    if (await page.locator(prefs).isVisible()) {
      assert.equal(await page.isChecked(`${prefs} input[data-consent-purpose="ads"]`), false, 'the ads toggle shows off');
    }
    await screenshot(page, 'gpc-notice.png');
  });

  test('strict CSP page: no violations while showing the banner, the preferences, and accepting', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    const nonce = 'n0nce' + Math.random().toString(36).slice(2);
    const url = shopPage(env, { nonce });
    const response = await page.goto(url);
    assert.match(response.headers()['content-security-policy'], /script-src 'self' 'nonce-/);
    await page.locator(banner).waitFor({ state: 'visible' });
    await subjectId(page);
    assert.ok(await page.evaluate(() => [...document.styleSheets].some((s) => /consentd\.css/.test(s.href || ''))),
      'the SDK stylesheet is loaded');

    await page.click(`${banner} [data-consent-action="customise"]`);
    await page.locator(prefs).waitFor({ state: 'visible' });
    await page.click(`${prefs} [data-consent-action="accept-all"]`);
    await waitFor(() => page.evaluate(() => window.demoAnalytics && window.inlineAnalyticsRan),
      { what: 'the gated scripts (src and inline) to run with the page nonce' }).catch(async (e) => {
      e.message += `\nCSP violations: ${JSON.stringify(await page.evaluate(() => window.__cspViolations))}`;
      throw e;
    });
    await waitFor(() => page.frames().some((f) => f.url().endsWith('/demo/ad.html')), { what: 'the ad frame to load' });
    const violations = await page.evaluate(() => window.__cspViolations);
    const cspConsole = page.problems.filter((p) => /Content.Security.Policy|CSP/i.test(p));
    assert.deepEqual(violations, [], `CSP violations:\n${violations.join('\n')}`);
    assert.deepEqual(cspConsole, [], `CSP console errors:\n${cspConsole.join('\n')}`);
  });
});
