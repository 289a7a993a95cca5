// Withdrawing on the page takes back what it can, in a real Chromium against
// a real consentd and Redis: gated iframes and images unload at once and load
// again when granted again; a purpose whose script already ran reloads the
// page (unless data-reload="false").

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cookies, openBrowser, shopPage, startEnv, subjectId, waitFor } from './harness.mjs';

const banner = '[data-consent-banner]';
const prefs = '[data-consent-preferences]';
const pixel = '<p><img id="pixel" data-consent="ads" data-consent-src="/demo/favicon.svg" alt="" width="16" height="16"></p>\n';

/** Whether the ad frame's document is loaded: a frame of the page at /demo/ad.html. */
const adLoaded = (page) => page.frames().some((f) => f.url().endsWith('/demo/ad.html'));

/** Records the page's navigations as the Navigation API reports them (a reload fires "navigate" at once). */
function watchNavigations(page) {
  return page.evaluate(() => {
    window.__navigations = [];
    navigation.addEventListener('navigate', (e) => window.__navigations.push(e.navigationType));
  });
}

/** Opens the preference center, sets one switch, saves. */
async function saveSwitch(page, purpose, on) {
  await page.click('main [data-consent-open]');
  await page.locator(prefs).waitFor({ state: 'visible' });
  await page.setChecked(`${prefs} input[data-consent-purpose="${purpose}"]`, on);
  await page.click(`${prefs} [data-consent-action="save"]`);
}

async function acceptAll(page) {
  await page.locator(banner).waitFor({ state: 'visible' });
  await page.click(`${banner} [data-consent-action="accept-all"]`);
  await waitFor(() => page.evaluate(() => window.demoAnalytics && window.inlineAnalyticsRan), { what: 'the analytics scripts to run' });
  await waitFor(() => adLoaded(page), { what: 'the ad frame to load' });
  await waitFor(() => page.evaluate(() => document.getElementById('pixel').complete && document.getElementById('pixel').naturalWidth > 0),
    { what: 'the gated image to load' });
}

describe('enforcement on withdrawal', () => {
  let env;
  before(async () => { env = await startEnv(); });
  after(async () => { await env?.stopAll(); });

  test('withdrawing ads unloads the iframe (its document goes) and the image at once, no reload; granting again loads them again', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(shopPage(env, { body: pixel, name: 'pixel' }));
    await subjectId(page);
    await acceptAll(page);
    await watchNavigations(page);
    // The page holds references to the gated elements, and hears the ad's document go.
    await page.evaluate(() => {
      window.__ad = document.getElementById('ad');
      window.__pixel = document.getElementById('pixel');
      window.__adGone = false;
      window.__ad.contentWindow.addEventListener('pagehide', () => { window.__adGone = true; });
    });

    await saveSwitch(page, 'ads', false);
    await waitFor(() => page.evaluate(() => window.__adGone), { what: "the ad frame's document to go (pagehide)" });
    await waitFor(() => !adLoaded(page), { what: 'no frame at /demo/ad.html any more' });
    const after = await page.evaluate(() => ({
      sameFrame: window.__ad === document.getElementById('ad'),
      samePixel: window.__pixel === document.getElementById('pixel'),
      frameSrc: window.__ad.getAttribute('src'),
      pixelSrc: window.__pixel.getAttribute('src'),
      pixelShown: window.__pixel.currentSrc,
      navigations: window.__navigations,
      analytics: Boolean(window.demoAnalytics),
    }));
    assert.deepEqual(after, {
      sameFrame: true, samePixel: true, frameSrc: null, pixelSrc: null, pixelShown: '',
      navigations: [], // no reload: no ads script ran on this page
      analytics: true,
    });

    await saveSwitch(page, 'ads', true);
    await waitFor(() => adLoaded(page), { what: 'the ad frame to load again' });
    await waitFor(() => page.evaluate(() => window.__pixel.getAttribute('src') === '/demo/favicon.svg' && window.__pixel.complete),
      { what: 'the image to load again' });
    assert.deepEqual(await page.evaluate(() => window.__navigations), []);
  });

  test('withdrawing analytics after its scripts ran reloads the page once the choice is stored: they do not run again, the service gets the denial', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(shopPage(env, { body: pixel, name: 'pixel' }));
    const id = await subjectId(page);
    await acceptAll(page);
    await watchNavigations(page);
    await page.evaluate(() => { window.__beforeReload = true; });

    await saveSwitch(page, 'analytics', false);
    // A new page: the old window's marker is gone.
    await waitFor(() => page.evaluate(() => window.consentd && !window.__beforeReload), { what: 'the page to reload' });
    await waitFor(() => page.evaluate(() => window.consentd.consent.get().confirmed), { what: 'the new page to sync' });
    const s = await page.evaluate(() => ({
      analytics: window.consentd.consent.get().purposes.analytics,
      ran: Boolean(window.demoAnalytics || window.inlineAnalyticsRan),
    }));
    assert.deepEqual(s, { analytics: { allowed: false, reason: 'explicit' }, ran: false });
    assert.ok(!('_demo_analytics' in await cookies(page)), "the analytics script's cookie is cleared");
    await waitFor(async () => {
      const p = await env.consentd.purpose(id, 'analytics');
      return !p.allowed && p.reason === 'REASON_EXPLICIT';
    }, { what: 'the denial at the service' });
    await waitFor(() => adLoaded(page), { what: 'ads still allowed after the reload' });
  });

  test('data-reload="false": no reload; the page hears the change, the cookies are cleared', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(shopPage(env, { body: pixel, attrs: 'data-reload="false"', name: 'noreload' }));
    await subjectId(page);
    await acceptAll(page);
    await watchNavigations(page);
    // The page's own listener, after the SDK's: a reload would have started by then.
    await page.evaluate(() => {
      window.__heard = null;
      window.consentd.consent.on('change', ({ state }) => {
        if (!state.purposes.analytics.allowed) window.__heard = { navigations: [...window.__navigations], cookie: document.cookie };
      });
    });

    await saveSwitch(page, 'analytics', false);
    const heard = await waitFor(() => page.evaluate(() => window.__heard), { what: 'the change on the page' });
    assert.deepEqual(heard.navigations, [], 'no reload');
    assert.doesNotMatch(heard.cookie, /_demo_analytics=/, 'the analytics cookie is cleared');
    assert.equal(await page.evaluate(() => Boolean(window.demoAnalytics)), true, 'the same page: the script that ran is the page\'s to stop');
  });
});
