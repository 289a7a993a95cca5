// The keyboard path and an axe-core audit of the banner and the preference
// center, in a real Chromium against a real consentd and Redis.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { axePath, openBrowser, screenshot, shopPage, startEnv, subjectId, waitFor } from './harness.mjs';

const banner = '[data-consent-banner]';
const prefs = '[data-consent-preferences]';

/** What has focus: its consent action or purpose, and whether it is inside the preference center. */
function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    return {
      action: el?.getAttribute('data-consent-action') ?? null,
      purpose: el?.getAttribute('data-consent-purpose') ?? null,
      inPrefs: Boolean(el?.closest('[data-consent-preferences]')),
      inBanner: Boolean(el?.closest('[data-consent-banner]')),
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

    // Tab and Shift+Tab cycle within the dialog (focus trap).
    const count = await page.locator(prefs).evaluate((el) => el.querySelectorAll(
      'button, input, a[href], select, textarea, [tabindex]:not([tabindex="-1"])').length);
    for (let i = 0; i < count + 3; i++) {
      await page.keyboard.press('Tab');
      assert.ok((await focused(page)).inPrefs, `Tab ${i + 1} left the dialog`);
    }
    for (let i = 0; i < count + 3; i++) {
      await page.keyboard.press('Shift+Tab');
      assert.ok((await focused(page)).inPrefs, `Shift+Tab ${i + 1} left the dialog`);
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
