// The banner funnel in a real Chromium against a real consentd and Redis: a
// visitor on the shop page (another origin than consentd) sees the banner
// and uses one of its buttons; the SDK reports each step once, anonymously
// (POST /v1/banner-events with the step and the region, nothing else), not
// at all when the site turns it off, and a failing endpoint costs the banner
// nothing; consentd's statistics (GET /v1/stats) count exactly what was sent.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { api, freePort, openBrowser, shopPage, startEnv, subjectId, waitFor } from './harness.mjs';

const banner = '[data-consent-banner]';
const prefs = '[data-consent-preferences]';
const inBanner = (action) => `${banner} [data-consent-action="${action}"]`;
const PATH = '/v1/banner-events';
const isFunnel = (url) => new URL(url).pathname === PATH;

let env;
let proxy;
before(async () => {
  env = await startEnv();
  proxy = await recordingProxy(env.consentd.url);
});
after(async () => {
  await proxy?.stop();
  await env?.stopAll();
});

/**
 * A reverse proxy in front of consentd that records every request as it
 * arrives (method, path, headers, body): what the browser really sent,
 * Cookie included, which the page's own view of a request may not show.
 */
async function recordingProxy(target) {
  const port = await freePort();
  const seen = [];
  const hop = new Set(['host', 'connection', 'keep-alive', 'content-length', 'transfer-encoding', 'accept-encoding', 'expect', 'upgrade']);
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method, path: req.url, headers: req.headers, body: body.toString() });
      try {
        const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !hop.has(k)));
        const r = await fetch(target + req.url, { method: req.method, headers, body: body.length ? body : undefined, redirect: 'manual' });
        const out = {};
        r.headers.forEach((v, k) => { if (!hop.has(k) && k !== 'content-encoding') out[k] = v; });
        res.writeHead(r.status, out);
        res.end(Buffer.from(await r.arrayBuffer()));
      } catch (e) {
        res.writeHead(502);
        res.end(String(e));
      }
    });
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    stop: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

/** The shop page with the SDK talking to consentd through the recording proxy. */
function proxiedShopPage(options) {
  return shopPage({ ...env, consentd: { ...env.consentd, url: proxy.url } }, options);
}

/** Records the page's requests to the funnel endpoint, in order. */
function watch(page) {
  const seen = [];
  page.on('request', (r) => { if (isFunnel(r.url())) seen.push(r); });
  return seen;
}

/** The steps the requests carry, in order. */
const steps = (requests) => requests.map((r) => JSON.parse(r.postData()).step);

/**
 * Makes one more request from the page and waits for its answer: the page's
 * earlier requests have all been seen by then (the browser reports them in
 * order), so a count taken after this is final for what happened before.
 */
function settle(page) {
  return page.evaluate(() => fetch('/sdk/consentd.css', { cache: 'no-store' }).then((r) => r.text()));
}

/**
 * Checks that the funnel requests consentd received (through the proxy)
 * from this page's origin are anonymous: POSTs whose body is the step and
 * the region alone, with no Cookie, no Authorization, no Referer, and the
 * visitor's subject id and token nowhere (address, headers, body). The page
 * has first-party cookies for 127.0.0.1 (the SDK's own cache), which a
 * request with credentials would carry to consentd on its other port.
 * count: how many such requests must have arrived since the proxy had
 * recorded from requests.
 */
async function assertAnonymous(page, id, from, count) {
  const token = await page.evaluate(() => JSON.parse(localStorage.getItem('consentd.token') || 'null')?.token);
  assert.ok(id, 'the visitor has a subject id to look for');
  const received = await waitFor(() => {
    const r = proxy.seen.slice(from).filter((q) => q.path === PATH);
    return r.length >= count && r;
  }, { what: `${count} funnel requests at consentd` });
  assert.equal(received.length, count);
  for (const r of received) {
    const { headers, body } = r;
    assert.equal(headers.cookie, undefined, `no Cookie header: ${JSON.stringify(headers)}`);
    assert.equal(headers.authorization, undefined, 'no Authorization header');
    assert.equal(headers.referer, undefined, 'no Referer header');
    assert.deepEqual(Object.keys(JSON.parse(body)).sort(), ['region', 'step'], `the body is step and region only: ${body}`);
    assert.equal(JSON.parse(body).region, 'DE');
    const everything = r.path + JSON.stringify(headers) + body;
    assert.ok(!everything.includes(id), 'the subject id is nowhere in the request');
    if (token) assert.ok(!everything.includes(token), 'the token is nowhere in the request');
  }
}

/** The shop page, its banner up, its single "shown" report made. */
async function bannerShown(t, options = {}) {
  const { page, close } = await openBrowser(env);
  t.after(close);
  const requests = watch(page);
  const from = proxy.seen.length;
  await page.goto(proxiedShopPage(options));
  await page.locator(banner).waitFor({ state: 'visible' });
  const id = await subjectId(page);
  await waitFor(() => requests.length >= 1, { what: 'the "shown" report' });
  return { page, requests, id, from };
}

describe('funnel: the banner reports its steps anonymously', () => {
  test('a visitor who sees the banner: exactly one "shown" per page view, however often the banner renders', async (t) => {
    const { page, requests, id, from } = await bannerShown(t, { name: 'funnel-shown' });
    // The service's confirmation is a change: the banner renders again.
    await waitFor(() => page.evaluate(() => window.consentd.consent.get().confirmed), { what: 'the confirmed state' });
    // A change that keeps the banner up renders it again too (another purpose decided elsewhere).
    await page.evaluate(() => window.consentd.consent.set({ 'marketing.email': false }));
    await waitFor(() => page.evaluate(() => !window.consentd.consent.get().pending), { what: 'the write to be acknowledged' });
    assert.ok(await page.locator(banner).isVisible(), 'the banner is still up');
    await settle(page);
    assert.deepEqual(steps(requests), ['BANNER_STEP_SHOWN']);
    await assertAnonymous(page, id, from, 1);

    // The next page view shows the banner again: reported again, once.
    await page.reload();
    await page.locator(banner).waitFor({ state: 'visible' });
    assert.match(await page.evaluate(() => document.cookie), /consentd=/, 'the page has its cookie (the funnel must not carry it)');
    await waitFor(() => requests.length >= 2, { what: 'the second page view\'s "shown" report' });
    await settle(page);
    assert.deepEqual(steps(requests), ['BANNER_STEP_SHOWN', 'BANNER_STEP_SHOWN']);
    await assertAnonymous(page, id, from, 2);
  });

  test('a page loaded out of sight (a background tab, a prerender) reports "shown" once it is looked at', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    // The page starts hidden, as a tab opened in the background does.
    await page.addInitScript(() => {
      window.visibility = 'hidden';
      Object.defineProperty(Document.prototype, 'visibilityState', { get: () => window.visibility, configurable: true });
    });
    const requests = watch(page);
    await page.goto(proxiedShopPage({ name: 'funnel-hidden' }));
    await page.locator(banner).waitFor({ state: 'attached' });
    await waitFor(() => page.evaluate(() => window.consentd.consent.get().confirmed), { what: 'the confirmed state' });
    assert.equal(await page.locator(banner).getAttribute('hidden'), null, 'the banner is up');
    await settle(page);
    assert.deepEqual(steps(requests), [], 'not shown while nobody looks');

    await page.evaluate(() => {
      window.visibility = 'visible';
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await waitFor(() => requests.length >= 1, { what: 'the "shown" report' });
    // Hidden and visible again: the same showing.
    await page.evaluate(() => {
      for (const v of ['hidden', 'visible']) {
        window.visibility = v;
        document.dispatchEvent(new Event('visibilitychange'));
      }
    });
    await settle(page);
    assert.deepEqual(steps(requests), ['BANNER_STEP_SHOWN']);
  });

  for (const [action, step, after] of [
    ['accept-all', 'BANNER_STEP_ACCEPT_ALL', 'banner hidden'],
    ['reject-all', 'BANNER_STEP_REJECT_ALL', 'banner hidden'],
    ['customise', 'BANNER_STEP_CUSTOMISED', 'preference center open'],
    ['close', 'BANNER_STEP_CLOSED', 'banner hidden, nothing recorded'],
  ]) {
    test(`the banner's ${action} button reports ${step}, once`, async (t) => {
      const { page, requests, id, from } = await bannerShown(t, { name: `funnel-${action}` });
      await page.click(inBanner(action));
      await waitFor(() => requests.length >= 2, { what: `the ${step} report` });
      if (after === 'preference center open') {
        await page.locator(prefs).waitFor({ state: 'visible' });
        // Closed and opened again from the banner: the same step, not reported twice.
        await page.keyboard.press('Escape');
        await page.locator(prefs).waitFor({ state: 'hidden' });
        await page.click(inBanner(action));
        await page.locator(prefs).waitFor({ state: 'visible' });
      } else {
        await page.locator(banner).waitFor({ state: 'hidden' });
      }
      if (action === 'close') {
        // Set aside for this page view: the floating button takes its place,
        // and no choice was made.
        assert.ok(await page.locator('.consentd-fab').isVisible() || await page.locator('main [data-consent-open]').isVisible());
        const state = await page.evaluate(() => window.consentd.consent.get());
        assert.ok(state.needsPrompt.length > 0, 'still undecided');
        assert.equal(state.purposes.analytics?.allowed ?? false, false);
        assert.equal((await env.consentd.consent(id)).revision ?? '0', '0', 'nothing written at the service');
      }
      await settle(page);
      assert.deepEqual(steps(requests), ['BANNER_STEP_SHOWN', step]);
      await assertAnonymous(page, id, from, 2);
    });
  }

  test('the preference center\'s own buttons are not banner steps', async (t) => {
    const { page, requests, id } = await bannerShown(t, { name: 'funnel-prefs' });
    await page.click(inBanner('customise'));
    await page.click(`${prefs} [data-consent-action="accept-all"]`);
    await page.locator(banner).waitFor({ state: 'hidden' });
    await waitFor(async () => (await env.consentd.purpose(id, 'analytics')).allowed, { what: 'the choice at the service' });
    await settle(page);
    assert.deepEqual(steps(requests), ['BANNER_STEP_SHOWN', 'BANNER_STEP_CUSTOMISED']);
  });
});

describe('funnel: the site turns it off', () => {
  /** A page using the ES modules: createConsent and mountUI with these UI options. */
  function modulePage(name, uiOptions) {
    return env.site.page(`/esm-${name}.html`, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ES modules</title>
<script type="module">
import { createConsent } from "/sdk/core.js";
import { mountUI } from "/sdk/ui.js";
const endpoint = ${JSON.stringify(proxy.url)};
const consent = createConsent({ endpoint, region: "DE" });
const ui = mountUI(consent, { stylesheet: "/sdk/consentd.css", ...${JSON.stringify(uiOptions)}, ...(${JSON.stringify(uiOptions)}.endpoint === true ? { endpoint } : {}) });
window.consentd = { consent, ui };
consent.sync().catch(() => {});
</script></head>
<body><main><h1>ES modules</h1></main></body></html>`);
  }

  /** Opens url, accepts all on the banner, waits for the service to have it; returns the funnel requests seen. */
  async function acceptOn(t, url) {
    const { page, close } = await openBrowser(env);
    t.after(close);
    const requests = watch(page);
    const from = proxy.seen.length;
    await page.goto(url);
    await page.locator(banner).waitFor({ state: 'visible' });
    const id = await subjectId(page);
    await page.click(inBanner('accept-all'));
    await page.locator(banner).waitFor({ state: 'hidden' });
    await waitFor(async () => (await env.consentd.purpose(id, 'analytics')).allowed, { what: 'the choice at the service' });
    await settle(page);
    return { page, requests, id, from };
  }

  test('mountUI with endpoint and region reports (the ES modules\' way to turn it on)', async (t) => {
    const { page, requests, id, from } = await acceptOn(t, modulePage('on', { endpoint: true, region: 'DE' }));
    assert.deepEqual(steps(requests), ['BANNER_STEP_SHOWN', 'BANNER_STEP_ACCEPT_ALL']);
    await assertAnonymous(page, id, from, 2);
  });

  test('mountUI with funnel: false sends nothing', async (t) => {
    const { requests } = await acceptOn(t, modulePage('off', { endpoint: true, region: 'DE', funnel: false }));
    assert.deepEqual(steps(requests), []);
  });

  test('the script tag with data-funnel="off" sends nothing', async (t) => {
    const { requests } = await acceptOn(t, shopPage(env, { attrs: 'data-funnel="off"', name: 'funnel-off' }));
    assert.deepEqual(steps(requests), []);
  });
});

describe('funnel: a failing endpoint costs the banner nothing', () => {
  for (const [what, answer] of [
    ['501 (a consentd without the funnel)', (route) => route.fulfill({ status: 501, contentType: 'application/json', body: '{"code":12,"message":"not implemented"}', headers: { 'Access-Control-Allow-Origin': env.site.origin } })],
    ['429 (rate limited)', (route) => route.fulfill({ status: 429, contentType: 'application/json', body: '{"code":8}', headers: { 'Access-Control-Allow-Origin': env.site.origin, 'Retry-After': '1' } })],
    ['a network failure', (route) => route.abort('connectionrefused')],
  ]) {
    test(`${what}: the banner shows, accept all still writes consent, no page error`, async (t) => {
      const { page, close } = await openBrowser(env);
      t.after(close);
      const requests = watch(page);
      await page.route(isFunnel, answer);
      await page.goto(shopPage(env, { name: `funnel-fail-${what.split(" ")[0]}` }));
      await page.locator(banner).waitFor({ state: 'visible' });
      const id = await subjectId(page);
      await waitFor(() => requests.length >= 1, { what: 'the "shown" report' });
      await page.click(inBanner('accept-all'));
      await page.locator(banner).waitFor({ state: 'hidden' });
      await waitFor(() => page.evaluate(() => window.demoAnalytics && window.inlineAnalyticsRan), { what: 'analytics scripts to run' });
      await waitFor(async () => {
        const p = await env.consentd.purpose(id, 'analytics');
        return p.allowed && p.reason === 'REASON_EXPLICIT' && p.decision.source === 'SOURCE_BANNER';
      }, { what: 'accept all at the service' });
      await settle(page);
      assert.deepEqual(steps(requests), ['BANNER_STEP_SHOWN', 'BANNER_STEP_ACCEPT_ALL'], 'each sent once, not retried');
      // The browser itself may log the failed load; the SDK adds nothing, and nothing throws.
      assert.deepEqual(page.problems.filter((p) => !/Failed to load resource/.test(p)), []);
    });
  }
});

describe('funnel: consentd counts what the banners sent', () => {
  /** Today's banner counts in region (GET /v1/stats, an API key with read scope): { BANNER_STEP_…: n }. */
  async function counted(region) {
    const day = new Date().toISOString().slice(0, 10); // UTC, as consentd counts
    const r = await api(env, 'GET', `/v1/stats?start_day=${day}&end_day=${day}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.days.length, 1);
    assert.equal(r.body.days[0].day, day);
    const out = {};
    for (const c of r.body.days[0].banner || []) if (c.region === region) out[c.step] = Number(c.count);
    return out;
  }

  test('three visitors in AT: every step they sent is counted once under today and AT, nothing more', async (t) => {
    // AT: a region no other test of this file uses, so the counts are this test's alone.
    assert.deepEqual(await counted('AT'), {}, 'nothing counted for AT before');
    const sent = [];
    for (const [name, actions] of [['customise-close', ['customise', 'close']], ['accept', ['accept-all']], ['reject', ['reject-all']]]) {
      const { page, close } = await openBrowser(env);
      t.after(close);
      const requests = watch(page);
      await page.goto(shopPage(env, { region: 'AT', name: `funnel-stats-${name}` }));
      await page.locator(banner).waitFor({ state: 'visible' });
      await subjectId(page);
      for (const action of actions) {
        await page.click(inBanner(action));
        if (action === 'customise') {
          await page.locator(prefs).waitFor({ state: 'visible' });
          await page.keyboard.press('Escape');
          await page.locator(prefs).waitFor({ state: 'hidden' });
        }
      }
      await page.locator(banner).waitFor({ state: 'hidden' });
      await waitFor(() => requests.length >= 1 + actions.length, { what: `${name}: its reports` });
      await settle(page);
      // Each answered 200 by consentd (which counts before it answers).
      for (const r of requests) assert.equal((await r.response())?.status(), 200, `${JSON.parse(r.postData()).step} answered 200`);
      sent.push(...steps(requests));
    }
    assert.deepEqual(sent, [
      'BANNER_STEP_SHOWN', 'BANNER_STEP_CUSTOMISED', 'BANNER_STEP_CLOSED',
      'BANNER_STEP_SHOWN', 'BANNER_STEP_ACCEPT_ALL',
      'BANNER_STEP_SHOWN', 'BANNER_STEP_REJECT_ALL',
    ]);
    const want = {};
    for (const step of sent) want[step] = (want[step] || 0) + 1;
    // consentd answered every report after counting it: the counts are final.
    assert.deepEqual(await counted('AT'), want, 'today\'s counts for AT are exactly the steps sent');
  });
});
