// The banner's main paths in a real Chromium against a real consentd and
// Redis: first visit, reject all, accept all, reload, Google Consent Mode.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cookies, openBrowser, screenshot, shopPage, startEnv, subjectId, waitFor } from './harness.mjs';

const banner = '[data-consent-banner]';
const prefs = '[data-consent-preferences]';
const inBanner = (action) => `${banner} [data-consent-action="${action}"]`;
const inPrefs = (action) => `${prefs} [data-consent-action="${action}"]`;

/** What the consent-gated parts of the shop page did. */
function gated(page) {
  return page.evaluate(() => ({
    analyticsScript: Boolean(window.demoAnalytics),
    inlineScript: Boolean(window.inlineAnalyticsRan),
    iframeSrc: document.getElementById('ad').getAttribute('src'),
    cookies: document.cookie,
  }));
}

/** dataLayer as plain arrays (gtag pushes `arguments` objects). */
function dataLayer(page) {
  return page.evaluate(() => (window.dataLayer || []).map((e) => (
    e && typeof e === 'object' && typeof e.length === 'number' ? Array.from(e) : e)));
}

// One consentd and Redis for the whole file; each test has its own browser.
let env;
before(async () => { env = await startEnv(); });
after(async () => { await env?.stopAll(); });

describe('banner: a first visit and its choice', () => {
  test('first visit shows the banner and runs nothing consent-gated', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    const fetched = [];
    page.on('request', (r) => fetched.push(new URL(r.url()).pathname));
    await page.goto(shopPage(env));
    await page.locator(banner).waitFor({ state: 'visible' });
    await subjectId(page);

    const g = await gated(page);
    assert.equal(g.analyticsScript, false, 'the analytics script must not run before consent');
    assert.equal(g.inlineScript, false, 'the inline analytics script must not run before consent');
    assert.equal(g.iframeSrc, null, 'the ads iframe must have no src before consent');
    assert.ok(!('_demo_analytics' in await cookies(page)), 'no analytics cookie before consent');
    assert.deepEqual(fetched.filter((p) => p.startsWith('/demo/')), [], 'nothing gated was even fetched');

    // Accept and reject carry equal weight on the first layer.
    const [accept, reject] = await Promise.all(['accept-all', 'reject-all'].map((a) => page.locator(inBanner(a)).evaluate((el) => {
      const s = getComputedStyle(el);
      const r = el.getBoundingClientRect();
      return { height: Math.round(r.height), fontSize: s.fontSize, fontWeight: s.fontWeight, visible: r.width > 0 };
    })));
    assert.ok(accept.visible && reject.visible, 'accept all and reject all are both visible');
    assert.deepEqual(reject, accept, 'reject all looks as weighty as accept all');
    await screenshot(page, 'banner.png');
  });

  test('reject all keeps scripts and iframe blocked, clears their cookies, and is stored', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(shopPage(env));
    await page.locator(banner).waitFor({ state: 'visible' });
    const id = await subjectId(page);
    // Cookies a tracker left from an earlier visit: rejecting must clear them.
    await page.evaluate(() => {
      document.cookie = '_demo_analytics=old; path=/';
      document.cookie = '_demo_ads_id=old; path=/';
      document.cookie = 'keep_me=1; path=/';
    });

    await page.click(inBanner('reject-all'));
    await page.locator(banner).waitFor({ state: 'hidden' });
    await waitFor(async () => {
      const c = await cookies(page);
      return !('_demo_analytics' in c) && !('_demo_ads_id' in c);
    }, { what: 'the analytics and ads cookies to be cleared' });
    assert.equal((await cookies(page)).keep_me, '1', 'cookies of no gated purpose stay');

    const g = await gated(page);
    assert.equal(g.analyticsScript, false);
    assert.equal(g.inlineScript, false);
    assert.equal(g.iframeSrc, null);

    const stored = await waitFor(async () => {
      const c = await env.consentd.consent(id);
      return c.revision !== '0' && c;
    }, { what: 'the choice at the service' });
    const by = Object.fromEntries(stored.purposes.map((p) => [p.purpose, p]));
    assert.equal(by.analytics.allowed, false);
    assert.equal(by.analytics.reason, 'REASON_EXPLICIT');
    assert.equal(by.ads.allowed, false);
    assert.equal(by.ads.reason, 'REASON_EXPLICIT');
    assert.equal(by.necessary.allowed, true);
    assert.equal(by.analytics.decision.source, 'SOURCE_BANNER');
    assert.equal((await page.evaluate(() => window.consentd.consent.get())).pending, false);
  });

  test('accept all runs the analytics scripts, loads the iframe, and is stored', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(shopPage(env));
    await page.locator(banner).waitFor({ state: 'visible' });
    const id = await subjectId(page);

    await page.click(inBanner('accept-all'));
    await page.locator(banner).waitFor({ state: 'hidden' });
    await waitFor(() => page.evaluate(() => window.demoAnalytics && window.inlineAnalyticsRan), { what: 'analytics scripts to run' });
    assert.match(await page.textContent('#analytics-status'), /Analytics is running/);
    assert.ok('_demo_analytics' in await cookies(page), 'the analytics script set its cookie');
    assert.equal(await page.getAttribute('#ad', 'src'), '/demo/ad.html');
    await waitFor(() => page.frames().some((f) => f.url().endsWith('/demo/ad.html')), { what: 'the ad frame to load' });

    await waitFor(async () => {
      const c = await env.consentd.consent(id);
      const by = Object.fromEntries(c.purposes.map((p) => [p.purpose, p]));
      return by.analytics.allowed && by.ads.allowed && by.functional.allowed
        && by.analytics.reason === 'REASON_EXPLICIT' && by.ads.reason === 'REASON_EXPLICIT'
        && by.analytics.decision.source === 'SOURCE_BANNER';
    }, { what: 'the banner purposes granted at the service' });
    // "Accept all" on a cookie banner signs nobody up for messages: channels are asked where one subscribes.
    const email = await env.consentd.purpose(id, 'marketing.email');
    assert.equal(email.allowed, false, 'accept all leaves marketing.email alone');
  });

  test('elements added later (a single-page app) wait for consent and activate when granted', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(shopPage(env));
    await page.locator(banner).waitFor({ state: 'visible' });
    await subjectId(page);

    // The page adds gated elements after the SDK started, as an SPA would.
    await page.evaluate(() => {
      const script = document.createElement('script');
      script.type = 'text/plain';
      script.dataset.consent = 'analytics';
      script.textContent = 'window.lateScriptRan = true;';
      const img = document.createElement('img');
      img.id = 'late-pixel';
      img.alt = '';
      img.dataset.consent = 'ads';
      img.dataset.consentSrc = '/demo/favicon.svg';
      document.body.append(script, img);
    });
    // Give the observer its chance to act wrongly.
    await page.evaluate(() => new Promise((r) => setTimeout(r, 100)));
    assert.equal(await page.evaluate(() => Boolean(window.lateScriptRan)), false, 'a late script must wait for consent');
    assert.equal(await page.getAttribute('#late-pixel', 'src'), null, 'a late image must wait for consent');

    await page.click(inBanner('accept-all'));
    await waitFor(() => page.evaluate(() => window.lateScriptRan === true), { what: 'the late script to run' });
    assert.equal(await page.getAttribute('#late-pixel', 'src'), '/demo/favicon.svg');

    // Once granted, elements added afterwards run at once.
    await page.evaluate(() => {
      const s = document.createElement('script');
      s.type = 'text/plain';
      s.dataset.consent = 'analytics';
      s.textContent = 'window.laterStill = true;';
      document.body.append(s);
    });
    await waitFor(() => page.evaluate(() => window.laterStill === true), { what: 'a script added after consent to run' });
  });

});

describe('banner: the choice on later pages', () => {
  test('choices survive a reload: no banner, denials from the cookie at once, grants once consentd confirms them', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    const url = shopPage(env);
    await page.goto(url);
    await page.locator(banner).waitFor({ state: 'visible' });
    const id = await subjectId(page);

    // Analytics yes, ads no, through the preference center.
    await page.click(inBanner('customise'));
    await page.locator(prefs).waitFor({ state: 'visible' });
    await page.check(`${prefs} input[data-consent-purpose="analytics"]`);
    assert.equal(await page.isChecked(`${prefs} input[data-consent-purpose="ads"]`), false);
    await page.click(inPrefs('save'));
    await page.locator(prefs).waitFor({ state: 'hidden' });
    await waitFor(async () => (await env.consentd.purpose(id, 'analytics')).allowed, { what: 'analytics granted at the service' });
    await waitFor(() => page.evaluate(() => !window.consentd.consent.get().pending), { what: 'nothing pending' });

    // Now the service is unreachable from the page: the cookie still says
    // what was chosen, but a grant it holds is not used until the service
    // confirms it (it may have been withdrawn elsewhere): fail closed.
    let blocked = 0;
    await page.route(`${env.consentd.url}/**`, (route) => { blocked++; return route.abort(); });
    await page.reload();
    await waitFor(() => blocked > 0, { what: 'the SDK to try consentd (and be blocked)' });
    const early = await page.evaluate(() => {
      const s = window.consentd.consent.get();
      return { subjectId: s.subjectId, analytics: s.purposes.analytics?.allowed, ads: s.purposes.ads?.allowed, has: window.consentd.consent.has('analytics') };
    });
    assert.deepEqual(early, { subjectId: id, analytics: true, ads: false, has: false });
    await page.waitForLoadState('load');
    assert.equal(await page.evaluate(() => Boolean(window.demoAnalytics)), false, 'the cached grant is withheld while unconfirmed');
    assert.equal(await page.getAttribute('#ad', 'src'), null, 'ads stay blocked after the reload');
    assert.equal(await page.locator(banner).isVisible(), false, 'no banner: the person has decided');

    // consentd reachable again: the SDK's retry confirms the choice and analytics runs, without a reload.
    await page.unroute(`${env.consentd.url}/**`);
    await waitFor(() => page.evaluate(() => window.demoAnalytics && window.inlineAnalyticsRan), { ms: 20_000, what: 'analytics to run once confirmed' });
    assert.equal(await page.getAttribute('#ad', 'src'), null, 'ads still blocked');
  });

  test('Google Consent Mode: default all denied but security_storage before any tag, then update after a choice', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(shopPage(env));
    await page.locator(banner).waitFor({ state: 'visible' });

    const signals = ['ad_storage', 'ad_user_data', 'ad_personalization', 'analytics_storage',
      'functionality_storage', 'personalization_storage', 'security_storage'];
    const first = await dataLayer(page);
    assert.ok(first.length >= 3, `dataLayer has the default and the tag's calls: ${JSON.stringify(first)}`);
    const [cmd, kind, values] = first[0];
    assert.deepEqual([cmd, kind], ['consent', 'default'], `the first dataLayer entry is consent default: ${JSON.stringify(first[0])}`);
    for (const s of signals) {
      // security_storage is necessary: always granted, in the default too.
      assert.equal(values[s], s === 'security_storage' ? 'granted' : 'denied', `${s} in the default`);
    }
    assert.equal(typeof values.wait_for_update, 'number', 'the default carries wait_for_update');
    assert.ok(values.wait_for_update > 0);
    const tagIndex = first.findIndex((e) => Array.isArray(e) && e[0] === 'js');
    assert.ok(tagIndex > 0, 'the Google tag ran after the default');

    // Analytics only, through the preference center.
    await page.click(inBanner('customise'));
    await page.check(`${prefs} input[data-consent-purpose="analytics"]`);
    await page.click(inPrefs('save'));
    const update = await waitFor(async () => {
      const dl = await dataLayer(page);
      return dl.slice(1).reverse().find((e) => Array.isArray(e) && e[0] === 'consent' && e[1] === 'update');
    }, { what: 'a consent update in dataLayer' });
    assert.deepEqual(update[2], {
      ad_storage: 'denied',
      ad_user_data: 'denied',
      ad_personalization: 'denied',
      analytics_storage: 'granted',
      functionality_storage: 'denied',
      personalization_storage: 'denied',
      security_storage: 'granted',
    });

    // Next page load: the default comes first; the stored choice's grants are
    // sent as an update once consentd confirms them (the tags hold their first
    // hit for wait_for_update), and nothing before that grants anything.
    await page.reload();
    const next = await waitFor(async () => {
      const dl = await dataLayer(page);
      const last = dl.filter((e) => Array.isArray(e) && e[0] === 'consent' && e[1] === 'update').at(-1);
      return last && last[2].analytics_storage === 'granted' && dl;
    }, { what: 'the confirmed choice as a consent update' });
    assert.deepEqual(next[0].slice(0, 2), ['consent', 'default']);
    const updates = next.filter((e) => Array.isArray(e) && e[0] === 'consent' && e[1] === 'update');
    assert.deepEqual(updates.at(-1)[2], update[2]);
    assert.ok(updates.slice(0, -1).every((u) => u[2].analytics_storage === 'denied'), `nothing granted before the confirmation: ${JSON.stringify(updates)}`);
  });
});

describe('banner: the public listener', () => {
  test('the SDK talks only to the public listener, which has nothing for API keys', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    const hosts = new Set();
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.origin !== env.site.origin) hosts.add(u.origin);
    });
    await page.goto(shopPage(env));
    const id = await subjectId(page);
    await page.locator(inBanner('accept-all')).click();
    await waitFor(async () => (await env.consentd.purpose(id, 'analytics'))?.allowed, { what: 'the choice stored' });
    assert.deepEqual([...hosts], [env.consentd.url], 'every call of the SDK went to the public listener');
    assert.notEqual(env.consentd.url, env.consentd.internalUrl);

    // The same API key the tests use on the internal listener gets 404 there.
    const withKey = (path, init = {}) => fetch(env.consentd.url + path, {
      ...init, headers: { Authorization: `Bearer ${env.consentd.apiKey}`, 'Content-Type': 'application/json' },
    });
    assert.equal((await withKey(`/v1/subjects/${id}/consent`)).status, 404, 'read with an API key on the public listener');
    assert.equal((await withKey(`/v1/subjects/${id}:erase`, { method: 'POST', body: '{}' })).status, 404, 'erase with an API key');
    assert.equal((await withKey('/v1/purposes/analytics:filterSubjects', { method: 'POST', body: JSON.stringify({ subject_ids: [id] }) })).status, 404, 'filter');
    assert.equal((await fetch(env.consentd.url + '/metrics')).status, 404, 'no metrics on the public listener');
  });
});
