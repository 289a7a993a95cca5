// "Never more than the person chose", in a real Chromium against a real
// consentd and Redis, the page on another origin: the preference center
// records only what the person did.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openBrowser, screenshot, shopPage, startEnv, subjectId, waitFor } from './harness.mjs';

const banner = '[data-consent-banner]';
const prefs = '[data-consent-preferences]';

/** The SDK has the service's answer and the policy: the UI has rendered from them. */
function synced(page) {
  return waitFor(() => page.evaluate(() => {
    const c = window.consentd?.consent;
    return c && c.policy() && c.get().confirmed;
  }), { what: 'the policy and the consent from the service' });
}

/** The switches in the preference center: [purpose, checked]. */
function switches(page) {
  return page.locator(`${prefs} input`).evaluateAll((l) => l.map((i) => [i.getAttribute('data-consent-purpose'), i.checked]));
}

describe('preferences', () => {
  let env;
  before(async () => { env = await startEnv(); });
  after(async () => { await env?.stopAll(); });

  test('US-CA: the preference center lists what the site asks about; Save records only what the person did', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(shopPage(env, { region: 'US-CA' }));
    const id = await subjectId(page);
    await synced(page);
    assert.equal(await page.locator(banner).isVisible(), false, 'an opt-out region shows no banner');

    await page.click('main [data-consent-open]');
    await page.locator(prefs).waitFor({ state: 'visible' });
    const listed = await switches(page);
    await screenshot(page, 'preferences-us-ca.png');
    // One click on Save with nothing changed: nothing is the person's, nothing is recorded.
    await page.click(`${prefs} [data-consent-action="save"]`);
    await page.locator(prefs).waitFor({ state: 'hidden' });

    // Then one switch off: a denial, and only that.
    await page.click('main [data-consent-open]');
    await page.locator(prefs).waitFor({ state: 'visible' });
    await page.uncheck(`${prefs} input[data-consent-purpose="functional"]`);
    await page.click(`${prefs} [data-consent-action="save"]`);
    const c = await waitFor(async () => {
      const c = await env.consentd.consent(id);
      return c.revision !== '0' && c;
    }, { what: 'the choice at the service' });
    const recorded = c.purposes.filter((p) => p.reason === 'REASON_EXPLICIT').map((p) => [p.purpose, p.allowed]);
    assert.deepEqual({ listed, recorded }, {
      // Allowed by the region's default; no SMS or phone marketing on a cookie dialog.
      listed: [['necessary', true], ['functional', true], ['analytics', true], ['ads', true]],
      // The one switch the person turned off, nothing else.
      recorded: [['functional', false]],
    });
    const analytics = c.purposes.find((p) => p.purpose === 'analytics');
    assert.deepEqual([analytics.allowed, analytics.reason], [true, 'REASON_DEFAULT']);
  });
});
