// Never more than the person chose, across the edges between the page, the
// SDK and the service: a withdrawal made elsewhere, consentd unreachable, a
// first visit offline, two tabs, the newsletter pattern. Real Chromium, a
// real consentd and Redis, the page on another origin.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { api, cookies, openBrowser, sdkState, shopPage, startEnv, subjectId, waitFor } from './harness.mjs';

const banner = '[data-consent-banner]';
const prefs = '[data-consent-preferences]';

/** What the consent-gated parts of the shop page did on this page view. */
function gated(page) {
  return page.evaluate(() => ({
    analytics: Boolean(window.demoAnalytics),
    inline: Boolean(window.inlineAnalyticsRan),
    adSrc: document.getElementById('ad')?.getAttribute('src') ?? null,
  }));
}

/** Records the page's requests for gated resources (scripts, frames). */
function watchGated(page) {
  const seen = [];
  page.on('request', (r) => { if (/\/demo\/(analytics\.js|ad\.html)/.test(r.url())) seen.push(new URL(r.url()).pathname); });
  return seen;
}

/** Accepts all on a first visit and waits until the service has it. */
async function acceptAll(env, page) {
  await page.goto(shopPage(env));
  await page.locator(banner).waitFor({ state: 'visible' });
  const id = await subjectId(page);
  await page.click(`${banner} [data-consent-action="accept-all"]`);
  await waitFor(() => page.evaluate(() => window.demoAnalytics && !window.consentd.consent.get().pending), { what: 'accepted and stored' });
  return id;
}

describe('consent integrity', () => {
  let env;
  before(async () => { env = await startEnv(); });
  after(async () => { await env?.stopAll(); });

  test('a withdrawal made elsewhere wins on the next page view: nothing gated runs, no tracker cookie comes back', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    const id = await acceptAll(env, page);
    assert.ok('_demo_analytics' in await cookies(page), 'the tracker set its cookie while allowed');

    // A backend (or the person on another device) withdraws.
    const withdrawn = await api(env, 'POST', `/v1/subjects/${id}/consent:withdraw`, {});
    assert.equal(withdrawn.status, 200);

    const requested = watchGated(page);
    const answered = page.waitForResponse((r) => new URL(r.url()).pathname.endsWith('/consent') && r.request().method() === 'GET');
    await page.reload();
    await answered; // the service's answer to the page's revalidation
    await page.waitForLoadState('load');
    await waitFor(async () => (await sdkState(page)).purposes.analytics?.allowed === false, { what: 'the page to take the withdrawal' });
    const state = await sdkState(page);
    assert.equal(state.purposes.analytics.allowed, false);
    assert.equal(state.purposes.ads.allowed, false);
    assert.deepEqual(requested, [], 'no gated script or frame was even requested');
    assert.deepEqual(await gated(page), { analytics: false, inline: false, adSrc: null });
    const jar = await cookies(page);
    assert.ok(!('_demo_analytics' in jar) && !('_demo_ads_id' in jar), `tracker cookies cleared and not set again: ${JSON.stringify(jar)}`);
    const updates = await page.evaluate(() => (window.dataLayer || []).map((e) => Array.from(e))
      .filter((e) => e[0] === 'consent' && e[1] === 'update'));
    assert.ok(updates.every((u) => u[2].analytics_storage === 'denied'), `no Consent Mode update granted analytics: ${JSON.stringify(updates)}`);
  });

  test('a returning visitor whose choice stands: the granted tag runs once the service confirms it (304)', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await acceptAll(env, page);
    const statuses = [];
    page.on('response', (r) => { if (new URL(r.url()).pathname.endsWith('/consent') && r.request().method() === 'GET') statuses.push(r.status()); });
    await page.reload();
    await waitFor(() => page.evaluate(() => window.demoAnalytics && window.inlineAnalyticsRan), { what: 'analytics to run' });
    assert.deepEqual(statuses, [304], 'revalidated without a body');
    await waitFor(() => page.frames().some((f) => f.url().endsWith('/demo/ad.html')), { what: 'the ad frame' });
  });

  test('consentd unreachable for a returning visitor: the preferences open from the cached policy, a rejection is queued and delivered once', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    const id = await acceptAll(env, page);
    const before = await env.consentd.consent(id);

    await env.consentd.stop();
    const requested = watchGated(page);
    await page.reload();
    await page.waitForLoadState('load');
    assert.equal(await page.locator(banner).isVisible(), false, 'decided: no banner');
    await page.click('main [data-consent-open]');
    await page.locator(prefs).waitFor({ state: 'visible' });
    await page.click(`${prefs} [data-consent-action="reject-all"]`);
    await page.locator(prefs).waitFor({ state: 'hidden' });
    const state = await sdkState(page);
    assert.equal(state.pending, true);
    assert.equal(state.purposes.analytics.allowed, false);
    assert.deepEqual(requested, [], 'fail closed: the cached grants were not used while unconfirmed');

    await env.consentd.start();
    const after = await waitFor(async () => {
      const c = await env.consentd.consent(id);
      return c.revision !== before.revision && c;
    }, { ms: 45_000, every: 250, what: 'the queued rejection at the service' });
    assert.equal(Number(after.revision), Number(before.revision) + 1, 'delivered once');
    const by = Object.fromEntries(after.purposes.map((p) => [p.purpose, p]));
    assert.deepEqual([by.analytics.allowed, by.analytics.reason], [false, 'REASON_EXPLICIT']);
    await waitFor(async () => !(await sdkState(page)).pending, { ms: 45_000, what: 'nothing pending' });
  });

  test('a first visit while consentd is unreachable: everything non-necessary denied, then the banner as soon as consentd answers', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await env.consentd.stop();
    const requested = watchGated(page);
    await page.goto(shopPage(env));
    await page.waitForLoadState('load');
    assert.equal(await page.locator(banner).isVisible(), false);
    assert.equal(await page.evaluate(() => ['analytics', 'ads', 'functional'].some((p) => window.consentd.consent.has(p))), false);

    await env.consentd.start();
    await page.locator(banner).waitFor({ state: 'visible', timeout: 45_000 });
    assert.deepEqual(requested, []);
    await subjectId(page);
  });

  test('two tabs keep in step: a choice in one is obeyed in the other, which does not show it pending', async (t) => {
    const { context, page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(shopPage(env));
    await page.locator(banner).waitFor({ state: 'visible' });
    await subjectId(page);
    const other = await context.newPage();
    await other.goto(shopPage(env));
    await other.locator(banner).waitFor({ state: 'visible' });

    await page.click(`${banner} [data-consent-action="accept-all"]`);
    await waitFor(() => other.evaluate(() => Boolean(window.demoAnalytics)), { what: 'the other tab to run analytics' });
    await other.locator(banner).waitFor({ state: 'hidden' });
    await waitFor(async () => !(await sdkState(other)).pending, { what: 'the other tab to see the choice stored' });

    await other.click('main [data-consent-open]');
    await other.click(`${prefs} [data-consent-action="reject-all"]`);
    await waitFor(async () => (await sdkState(page)).purposes.ads.allowed === false, { what: 'the first tab to see the rejection' });
    await waitFor(async () => !(await sdkState(page)).pending, { what: 'and not as pending' });
  });
});
