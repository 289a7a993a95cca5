// A choice made while consentd is down is kept in the browser and reaches
// the service when it is back: a real Chromium, a real consentd killed and
// restarted on the same ports, a real Redis that keeps running.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openBrowser, shopPage, startEnv, subjectId, waitFor } from './harness.mjs';

const banner = '[data-consent-banner]';

describe('service down', () => {
  let env;
  before(async () => { env = await startEnv(); });
  after(async () => { await env?.stopAll(); });

  test('a choice made while the service is down is kept and sent when it returns', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(shopPage(env));
    await page.locator(banner).waitFor({ state: 'visible' });
    const id = await subjectId(page);

    await env.consentd.stop();
    await page.click(`${banner} [data-consent-action="reject-all"]`);
    await page.locator(banner).waitFor({ state: 'hidden' });

    // Kept: the page obeys it at once, and it waits in localStorage.
    const state = await waitFor(async () => {
      const s = await page.evaluate(() => window.consentd.consent.get());
      return s.pending && s;
    }, { what: 'the choice to be pending' });
    assert.equal(state.purposes.analytics.allowed, false);
    assert.equal(state.purposes.ads.allowed, false);
    const stored = await page.evaluate(() => Object.keys(localStorage).map((k) => `${k}=${localStorage.getItem(k)}`).join('\n'));
    assert.match(stored, /analytics/, `the queued choice is in localStorage:\n${stored}`);
    assert.equal(await page.evaluate(() => Boolean(window.demoAnalytics)), false);

    // Back: the queue is flushed (backoff or the online event) without a reload.
    await env.consentd.start();
    const c = await waitFor(async () => {
      const c = await env.consentd.consent(id);
      return c.revision !== '0' && c;
    }, { ms: 45_000, every: 250, what: 'the queued choice to reach the service' });
    const by = Object.fromEntries(c.purposes.map((p) => [p.purpose, p]));
    assert.deepEqual([by.analytics.allowed, by.analytics.reason], [false, 'REASON_EXPLICIT']);
    assert.deepEqual([by.ads.allowed, by.ads.reason], [false, 'REASON_EXPLICIT']);
    await waitFor(() => page.evaluate(() => !window.consentd.consent.get().pending), { what: 'nothing pending any more' });
  });
});
