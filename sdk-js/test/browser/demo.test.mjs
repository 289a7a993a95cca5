// The demo page as `make run` serves it: consentd in demo mode serving
// /demo/ and /sdk/ itself, a real Redis, a real Chromium.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openBrowser, screenshot, startEnv, subjectId, waitFor } from './harness.mjs';

describe('demo page', () => {
  let env;
  before(async () => { env = await startEnv({ demo: true }); });
  after(async () => { await env?.stopAll(); });

  test('the demo shop article shows the banner, obeys the choice, and binds the newsletter box', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    // The demo has no inline script or style: it works under a strict CSP.
    await page.route(`${env.consentd.url}/demo/`, async (route) => {
      const response = await route.fetch();
      await route.fulfill({ response, headers: { ...response.headers(), 'content-security-policy': "default-src 'self'" } });
    });
    const response = await page.goto(`${env.consentd.url}/demo/`);
    assert.equal(response.headers()['content-security-policy'], "default-src 'self'");
    await page.locator('[data-consent-banner]').waitFor({ state: 'visible' });
    const id = await subjectId(page);
    await waitFor(async () => (await page.textContent('#state-subject')) === id, { what: 'the status panel to show the subject' });
    assert.match(await page.textContent('#gcm-log'), /consent default/);
    assert.match(await page.textContent('#analytics-status'), /not running/);
    await screenshot(page, 'demo-banner.png');

    await page.click('[data-consent-banner] [data-consent-action="accept-all"]');
    await waitFor(async () => /Analytics is running/.test(await page.textContent('#analytics-status')), { what: 'analytics to run' });
    await waitFor(() => page.frames().some((f) => f.url().endsWith('/demo/ad.html')), { what: 'the ad frame' });
    assert.ok(await page.locator('.ad-frame').isVisible(), 'the ad slot shows the frame');
    assert.match(await page.textContent('#gcm-log'), /consent update/);
    await waitFor(async () => (await page.textContent('#state-revision')) !== '0', { what: 'the revision in the status panel' });

    // The newsletter checkbox records marketing.email from the preference center.
    await page.check('#newsletter');
    await waitFor(async () => {
      const p = await env.consentd.purpose(id, 'marketing.email');
      return p.allowed && p.reason === 'REASON_EXPLICIT' && p.decision.source === 'SOURCE_PREFERENCE_CENTER';
    }, { what: 'marketing.email granted at the service' });
    await waitFor(async () => /Thanks/.test(await page.textContent('#newsletter-note')), { what: 'the newsletter note' });

    // The footer link reopens the preferences: the cookie purposes the site
    // asks about, not the newsletter (asked where one subscribes).
    await page.click('footer [data-consent-open]');
    await page.locator('[data-consent-preferences]').waitFor({ state: 'visible' });
    assert.deepEqual(await page.locator('[data-consent-preferences] input').evaluateAll((l) => l.map((i) => [i.getAttribute('data-consent-purpose'), i.checked])),
      [['necessary', true], ['functional', true], ['analytics', true], ['ads', true]]);
    await page.keyboard.press('Escape');
    await screenshot(page, 'demo-accepted.png');
    assert.deepEqual(await page.evaluate(() => window.__cspViolations), [], 'no CSP violations');
    assert.deepEqual(page.problems, [], 'no console errors');
  });
});
