// The keyboard path and an axe-core audit of the banner and the preference
// center, in a real Chromium against a real consentd and Redis.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { axePath, openBrowser, screenshot, shopPage, startEnv, subjectId, waitFor } from './harness.mjs';

const banner = '[data-consent-banner]';
const prefs = '[data-consent-preferences]';

/**
 * What has focus: its consent action or purpose, whether it is inside the
 * preference center, and whether the focus left the document for the
 * browser's own UI (where Tab past a native modal's last control goes).
 */
function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    return {
      action: el?.getAttribute('data-consent-action') ?? null,
      purpose: el?.getAttribute('data-consent-purpose') ?? null,
      inPrefs: Boolean(el?.closest('[data-consent-preferences]')),
      inBanner: Boolean(el?.closest('[data-consent-banner]')),
      outside: !document.hasFocus(),
      tag: el?.tagName,
    };
  });
}

/** Presses Tab until want(focused) holds; fails after max presses. */
async function tabTo(page, want, what, max = 40) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const f = await focused(page);
    if (want(f)) return f;
  }
  throw new Error(`Tab never reached ${what}`);
}

async function audit(page, selector) {
  const result = await page.evaluate(async (include) => window.axe.run(
    { include: [include] },
    { resultTypes: ['violations'] },
  ), selector);
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of result.violations) {
    console.log(`axe ${v.impact}: ${v.id}: ${v.help}\n${v.nodes.map((n) => `  ${n.target.join(' ')}: ${n.failureSummary}`).join('\n')}`);
  }
  return bad.map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
}

describe('accessibility', () => {
  let env;
  before(async () => { env = await startEnv(); });
  after(async () => { await env?.stopAll(); });

  test('keyboard: Tab reaches the choices, the dialog traps focus, Esc returns it, Space and Enter save', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(shopPage(env));
    await page.locator(banner).waitFor({ state: 'visible' });
    const id = await subjectId(page);

    // Tab from the top of the page reaches all three first-layer buttons.
    const seen = new Set();
    await tabTo(page, (f) => {
      if (f.inBanner && f.action) seen.add(f.action);
      return ['accept-all', 'reject-all', 'customise'].every((a) => seen.has(a));
    }, 'accept all, reject all and customise');

    // Customise (with Enter) opens the dialog with focus inside it.
    await page.focus(`${banner} [data-consent-action="customise"]`);
    await page.keyboard.press('Enter');
    await page.locator(prefs).waitFor({ state: 'visible' });
    await waitFor(async () => (await focused(page)).inPrefs, { what: 'focus inside the preference center' });
    const role = await page.locator(prefs).evaluate((el) => {
      const d = el.matches('[role="dialog"], dialog') ? el : el.querySelector('[role="dialog"], dialog');
      return d && { modal: d.getAttribute('aria-modal') ?? (d.tagName === 'DIALOG' ? 'true' : null), label: d.getAttribute('aria-labelledby') || d.getAttribute('aria-label') };
    });
    assert.ok(role, 'the preference center is a dialog');
    assert.ok(role.label, 'the dialog has an accessible name');

    // Tab and Shift+Tab cycle within the dialog (a native modal: the page
    // behind is inert; past the last control the browser's own UI may take a
    // turn), never reaching the page.
    const count = await page.locator(prefs).evaluate((el) => el.querySelectorAll(
      'button, input, a[href], select, textarea, [tabindex]:not([tabindex="-1"])').length);
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

    // Esc closes it and gives focus back to the button that opened it.
    await page.keyboard.press('Escape');
    await page.locator(prefs).waitFor({ state: 'hidden' });
    assert.equal((await focused(page)).action, 'customise', 'focus returns to Customise');

    // Space toggles a purpose, Enter on Save stores it.
    await page.keyboard.press('Enter');
    await page.locator(prefs).waitFor({ state: 'visible' });
    await tabTo(page, (f) => f.purpose === 'analytics', 'the analytics toggle');
    await page.keyboard.press('Space');
    assert.equal(await page.isChecked(`${prefs} input[data-consent-purpose="analytics"]`), true, 'Space turned analytics on');
    await tabTo(page, (f) => f.action === 'save', 'Save');
    await page.keyboard.press('Enter');
    await page.locator(prefs).waitFor({ state: 'hidden' });
    await waitFor(async () => {
      const c = await env.consentd.consent(id);
      const by = Object.fromEntries(c.purposes.map((p) => [p.purpose, p]));
      return by.analytics.allowed && by.analytics.reason === 'REASON_EXPLICIT'
        && !by.ads.allowed && by.ads.reason === 'REASON_EXPLICIT'
        && by.analytics.decision.source === 'SOURCE_PREFERENCE_CENTER';
    }, { what: 'analytics granted and ads denied from the preference center at the service' });
    await waitFor(() => page.evaluate(() => window.demoAnalytics), { what: 'analytics to run' });
  });

  test('the preference center is a native modal: the page leaves the accessibility tree; after a click on its text Esc still closes it', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(shopPage(env));
    await page.locator(banner).waitFor({ state: 'visible' });
    await subjectId(page);
    const opener = page.locator('main [data-consent-open]');
    await opener.click();
    await page.locator(prefs).waitFor({ state: 'visible' });

    // A click on the dialog's text moves the focus off its controls; Esc closes it all the same.
    await page.locator(`${prefs} .consentd-text`).first().click();
    const f = await focused(page);
    assert.equal(f.action ?? f.purpose, null, `the focus is on no control: ${JSON.stringify(f)}`);
    await page.keyboard.press('Escape');
    await page.locator(prefs).waitFor({ state: 'hidden' });
    assert.equal(await opener.evaluate((b) => document.activeElement === b), true, 'the focus is back on the opener');

    await opener.click();
    await page.locator(prefs).waitFor({ state: 'visible' });
    assert.deepEqual(await page.locator(prefs).evaluate((d) => [d.tagName, d.matches(':modal')]), ['DIALOG', true]);
    assert.equal(await page.evaluate(() => document.querySelectorAll('.consentd-backdrop, .consentd [style]').length), 0, 'no hand-made backdrop, no inline style');
    // The accessibility tree as assistive technology gets it: the page's heading is gone, the dialog's is there.
    const cdp = await page.context().newCDPSession(page);
    const { nodes } = await cdp.send('Accessibility.getFullAXTree');
    const exposed = (name) => nodes.some((n) => !n.ignored && n.role?.value === 'heading' && n.name?.value === name);
    assert.equal(exposed('Trail shoes review'), false, "the page's heading is out of the accessibility tree");
    assert.equal(exposed('Privacy preferences'), true, "the dialog's heading is in it");
    // Inert: the page's controls take no focus.
    assert.equal(await opener.evaluate((b) => { b.focus(); return document.activeElement === b; }), false);
  });

  test('axe-core finds no serious or critical violations in the banner and the preference center', async (t) => {
    const { page, close } = await openBrowser(env);
    t.after(close);
    await page.goto(shopPage(env, { lang: 'de' }));
    await page.locator(banner).waitFor({ state: 'visible' });
    await page.addScriptTag({ path: axePath });

    const bannerProblems = await audit(page, banner);
    assert.deepEqual(bannerProblems, [], 'banner');

    await page.click(`${banner} [data-consent-action="customise"]`);
    await page.locator(prefs).waitFor({ state: 'visible' });
    await screenshot(page, 'preferences.png');
    const prefsProblems = await audit(page, prefs);
    assert.deepEqual(prefsProblems, [], 'preference center');
  });
});
