// "Never more than the person chose", in a real Chromium against a real
// consentd and Redis, the page on another origin: the preference center
// records only what the person did, the floating button never hides the
// page, GPC honoured without a banner is said, a linked account is said.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openBrowser, screenshot, shopPage, startEnv, subjectId, waitFor } from './harness.mjs';

const banner = '[data-consent-banner]';
const prefs = '[data-consent-preferences]';
const fab = '.consentd-fab';
const notice = '.consentd [role="status"]';

/** The SDK has the service's answer and the policy: the UI has rendered from them. */
function synced(page) {
  return waitFor(() => page.evaluate(() => {
    const c = window.consentd?.consent;
    return c?.policy() && c.get().confirmed;
  }), { what: 'the policy and the consent from the service' });
}

/** The switches in the preference center: [purpose, checked]. */
function switches(page) {
  return page.locator(`${prefs} input`).evaluateAll((l) => l.map((i) => [i.getAttribute('data-consent-purpose'), i.checked]));
}

/** Points across an element's box (at its vertical middle) where something else is hit. */
function covered(page, selector) {
  return page.evaluate((sel) => {
    const el = document.querySelector(sel);
    const r = el.getBoundingClientRect();
    const hit = [];
    for (let x = r.left + 1; x < r.right; x += 8) {
      const at = document.elementFromPoint(x, r.top + r.height / 2);
      if (!el.contains(at)) hit.push(`x=${Math.round(x)}: ${at?.className || at?.tagName}`);
    }
    return hit;
  }, selector);
}

// A page long enough to scroll, without a [data-consent-open] element of its
// own, ending with bottom-left content.
const longBody = `<section>${Array.from({ length: 30 }, (_, i) => `<p>Paragraph ${i + 1} of the review.</p>`).join('')}</section>
<footer><a id="imprint" href="#imprint">Imprint and contact details</a></footer>
`;

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

  test('floating button: not over the end of the page at 375 px, gone once the page has its own open link, right with data-button="right"', async (t) => {
    const { page, close } = await openBrowser(env, { viewport: { width: 375, height: 640 } });
    t.after(close);
    await page.goto(shopPage(env, { region: 'US-CA', openLink: false, body: longBody, name: 'long' }));
    await synced(page);
    await page.locator(fab).waitFor({ state: 'visible' });
    await page.locator('#imprint').scrollIntoViewIfNeeded();
    await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
    const box = await page.locator('#imprint').boundingBox();
    assert.ok(box.y + box.height <= 640, `the page's end is in view: ${JSON.stringify(box)}`);
    await screenshot(page, 'fab-mobile-end.png');
    assert.deepEqual(await covered(page, '#imprint'), [], 'the bottom-left link is not under the button');

    // The page adds its own [data-consent-open] element: the floating button (and its room) go.
    await page.evaluate(() => {
      const a = document.createElement('a');
      a.href = '#';
      a.id = 'own-link';
      a.textContent = 'Cookie settings';
      a.setAttribute('data-consent-open', '');
      document.querySelector('footer').append(a);
    });
    await page.locator(fab).waitFor({ state: 'hidden' });
    assert.equal(await page.locator('.consentd-end').isVisible(), false);
    await page.click('#own-link');
    await page.locator(prefs).waitFor({ state: 'visible' });
    await page.keyboard.press('Escape');

    // A page with its own link from the start never shows it.
    await page.goto(shopPage(env, { region: 'US-CA' }));
    await synced(page);
    assert.equal(await page.locator(fab).isVisible(), false);

    // data-button="right": bottom right.
    await page.goto(shopPage(env, { region: 'US-CA', openLink: false, attrs: 'data-button="right"', name: 'right' }));
    await synced(page);
    await page.locator(fab).waitFor({ state: 'visible' });
    const right = await page.locator(fab).boundingBox();
    assert.ok(right.x > 375 / 2, `the button is on the right: ${JSON.stringify(right)}`);
  });

  test('GPC in US-CA, no banner: a status notice says it was honoured, not modal, closed with its button, once per browser', async (t) => {
    const { page, close } = await openBrowser(env, { gpc: true });
    t.after(close);
    const url = shopPage(env, { region: 'US-CA', lang: 'de' });
    await page.goto(url);
    await waitFor(() => page.evaluate(() => window.consentd.consent.get().gpcHonoured), { what: 'GPC honoured' });
    await page.locator(notice).waitFor({ state: 'visible' });
    assert.equal(await page.locator(banner).isVisible(), false, 'no banner in an opt-out region');
    assert.equal(await page.locator(notice).locator('.consentd-gpc').textContent(),
      'Das Global-Privacy-Control-Signal Ihres Browsers wurde berücksichtigt: Werbung ist deaktiviert.');
    await screenshot(page, 'gpc-status-notice.png');
    // Not modal: the page's own controls still work.
    assert.equal(await page.locator(prefs).isVisible(), false);
    const button = page.locator('main [data-consent-open]');
    assert.equal(await button.evaluate((b) => { b.focus(); return document.activeElement === b; }), true, 'the page is not inert');

    await page.locator(notice).locator('[data-consent-action="close"]').click();
    await page.locator(notice).waitFor({ state: 'hidden' });

    // The next page in this browser: said once already.
    await page.reload();
    await synced(page);
    await waitFor(() => page.evaluate(() => window.consentd.consent.get().gpcHonoured), { what: 'GPC honoured after the reload' });
    assert.equal(await page.locator(notice).isVisible(), false, 'shown once per browser');
    assert.deepEqual(page.problems.filter((p) => !p.includes('/favicon.ico')), [], 'no console errors');
  });

  test('a visitor linked to an account: the preference center says the choices are saved with it', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(shopPage(env));
    const id = await subjectId(page);
    await synced(page);
    await page.click('main [data-consent-open]');
    await page.locator(prefs).waitFor({ state: 'visible' });
    const line = page.locator(`${prefs} p`, { hasText: 'saved with your account' });
    assert.equal(await line.isVisible(), false, 'not linked yet');
    await page.keyboard.press('Escape');

    // The site's backend links the visitor to its user (at login).
    const r = await fetch(`${env.consentd.internalUrl}/v1/subjects/user-linked-1:link`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${env.consentd.apiKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ visitor_id: id }),
    });
    assert.equal(r.status, 200, await r.text());
    await page.reload();
    await waitFor(() => page.evaluate(() => window.consentd.consent.get().linked), { what: 'state.linked' });
    await page.click('main [data-consent-open]');
    await page.locator(prefs).waitFor({ state: 'visible' });
    assert.equal(await line.textContent(), 'Your choices are saved with your account.');
    assert.ok(await line.isVisible());
  });
});
