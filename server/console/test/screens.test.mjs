// Every screen: axe-core finds no serious or critical violation, no CSP
// violation or console error happens, and a screenshot at 1280 and 375 px
// wide lands in test-results/. Then the feed consumers' deadline, the
// policy and its preview (the SDK's own banner, recording nothing), and a
// keyboard-only session: sign in, look up, act, and close a dialog with
// Escape, with the focus visible throughout.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { api, axe, openBrowser, problems, screenshot, signIn, startEnv, tableRows, waitFor } from './harness.mjs';

let env;
let browser;
const DAY = 86_400_000;

before(async () => {
  env = await startEnv();
  browser = await openBrowser(env);
  // A subject with a history; a consumer that has an opt-out waiting, and one that has nothing waiting.
  await api(env, 'write', 'PATCH', '/v1/subjects/user-s1/consent', { decisions: { analytics: true, 'marketing.email': true }, region: 'DE', source: 'SOURCE_BANNER' });
  assert.equal((await api(env, 'watch', 'POST', '/v1/consumers', { consumer: 'mailer' })).status, 200);
  assert.equal((await api(env, 'watch', 'POST', '/v1/consumers', { consumer: 'crm' })).status, 200);
  await api(env, 'write', 'POST', '/v1/subjects/user-s1/consent:withdraw', {});
  // crm acknowledges what it was sent; mailer does not.
  const ctl = new AbortController();
  const r = await fetch(`${env.url}/v1/changes:watch?consumer=crm`, { headers: { Authorization: `Bearer ${env.keys.watch}` }, signal: ctl.signal });
  const reader = r.body.getReader();
  let text = '';
  while (!text.includes('\n')) text += new TextDecoder().decode((await reader.read()).value);
  ctl.abort();
  const ids = JSON.parse(text.split('\n')[0]).result.changes.map((c) => c.id);
  assert.ok(ids.length > 0);
  assert.equal((await api(env, 'watch', 'POST', '/v1/consumers/crm:ack', { change_ids: ids })).status, 200);
});
after(async () => {
  await browser?.close();
  await env?.stopAll();
});

async function audit(page, name) {
  for (const width of [1280, 375]) {
    await page.setViewportSize({ width, height: 900 });
    await page.waitForTimeout(100); // a resize is handled on the next frame (charts follow their box)
    assert.deepEqual(await axe(page), [], `${name} at ${width} px`);
    await screenshot(page, `${name}-${width}.png`);
    // Nothing wider than the viewport: no sideways scrolling of the page.
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), `${name} at ${width} px scrolls sideways`);
  }
  await page.setViewportSize({ width: 1280, height: 900 });
  assert.deepEqual(await problems(page), [], name);
}

test('every screen: axe-core, CSP, console errors, screenshots at 1280 and 375 px', async () => {
  const { page } = browser;
  await page.goto(env.url + '/console/');
  await page.waitForSelector('#api-key');
  await audit(page, 'signin');

  await signIn(page, env, 'admin');
  await page.fill('#subject-id', 'user-s1');
  await page.click('#lookup-btn');
  await page.waitForSelector('#answers');
  await page.fill('#history-reason', 'audit T-1');
  await page.click('#history-btn');
  await page.waitForSelector('#timeline');
  await page.fill('#erase-confirm', 'someone-else'); // the mismatch hint is on screen too
  await audit(page, 'person');

  await page.click('#nav-analytics');
  await page.waitForSelector('#table-decisions canvas, #plot-decisions canvas');
  await audit(page, 'analytics');

  await page.click('#nav-consumers');
  await page.waitForSelector('#consumers-table');
  await audit(page, 'consumers');

  await page.click('#nav-policy');
  await page.waitForSelector('#preview-box .consentd-banner:not([hidden])');
  await audit(page, 'policy');
  await page.click('#preview-open');
  await page.waitForSelector('dialog.consentd-dialog[open]');
  await audit(page, 'policy-preferences');
  await page.keyboard.press('Escape');

  // A key with one scope: the disabled screens and actions pass too.
  await page.click('#sign-out');
  await signIn(page, env, 'write');
  await page.fill('#subject-id', 'user-s1');
  await page.click('#lookup-btn');
  await page.waitForSelector('#history');
  await audit(page, 'person-write-scope');
  await page.click('#sign-out');
});

// Business days (Mon-Fri, UTC) begun after the day of `from` up to `now`'s day: the test's own count.
function businessDays(from, now) {
  let n = 0;
  for (let d = new Date(from.toISOString().slice(0, 10) + 'T00:00:00Z').getTime() + DAY; d <= now.getTime(); d += DAY) {
    const wd = new Date(d).getUTCDay();
    if (wd >= 1 && wd <= 5) n++;
  }
  return n;
}

test('feed consumers: unacknowledged opt-outs against the deadline, "late" in words, the deadline kept', async () => {
  const { page } = browser;
  const consumers = (await api(env, 'watch', 'GET', '/v1/consumers')).body.consumers;
  const mailer = consumers.find((c) => c.name === 'mailer');
  assert.ok(Number(mailer.unacknowledged_opt_outs) >= 1 && mailer.oldest_unacknowledged_opt_out_time, JSON.stringify(consumers));
  await signIn(page, env, 'watch');
  await page.waitForSelector('#consumers-table');
  let rows = await tableRows(page, '#consumers-table');
  assert.deepEqual(rows.mailer.slice(0, 2), [mailer.unacknowledged, mailer.unacknowledged_opt_outs]);
  assert.equal(rows.mailer[3], '0');
  assert.match(rows.mailer[4], /within the deadline/);
  assert.match(rows.crm[4], /nothing waiting/);
  assert.equal(await page.inputValue('#deadline'), '10', 'the default deadline');

  // Three weeks on (the browser's clock; the API's data is as it was): late.
  const later = new Date(Date.now() + 21 * DAY);
  await page.clock.setFixedTime(later);
  await page.reload();
  await page.waitForSelector('#consumers-table');
  rows = await tableRows(page, '#consumers-table');
  const age = businessDays(new Date(mailer.oldest_unacknowledged_opt_out_time), later);
  assert.ok(age >= 14 && age <= 16, String(age));
  assert.equal(rows.mailer[3], String(age));
  assert.match(rows.mailer[4], new RegExp(`late over the deadline by ${age - 10}`));
  assert.equal(await page.getAttribute('tr[data-consumer="mailer"]', 'class'), 'late');
  assert.match(rows.crm[4], /nothing waiting/);

  await page.fill('#deadline', String(age));
  await page.click('#deadline-btn');
  await page.reload();
  await page.waitForSelector('#consumers-table');
  assert.equal(await page.inputValue('#deadline'), String(age), 'kept in localStorage');
  assert.equal(await page.evaluate(() => localStorage.getItem('consentd.console.deadline')), String(age));
  assert.match((await tableRows(page, '#consumers-table')).mailer[4], /within the deadline/);
  await page.fill('#deadline', '0');
  await page.click('#deadline-btn');
  assert.match(await page.textContent('#consumers-msg'), /whole number of business days from 1 to 365/);
  assert.deepEqual(await problems(page), []);
  await page.click('#sign-out');
  await page.evaluate(() => localStorage.clear());
});

test('policy: purposes, regions and versions as the API gives them; the preview records nothing', async () => {
  const { page } = browser;
  const policy = (await api(env, 'read', 'GET', '/v1/policy')).body.policy;
  await signIn(page, env, 'token'); // the policy is open to every key
  await page.waitForSelector('#purposes-table');
  assert.match(await page.textContent('#policy-facts'), new RegExp(`Policy version ${policy.version}`));
  const purposes = await tableRows(page, '#purposes-table');
  assert.deepEqual(Object.keys(purposes), policy.purposes.map((p) => p.id));
  for (const p of policy.purposes) assert.equal(purposes[p.id][1], String(p.version));
  const regions = await tableRows(page, '#regions-table');
  assert.deepEqual(Object.keys(regions).map((r) => r.replace(' (default)', '')), policy.regions.map((r) => r.id));

  const writes = [];
  page.on('request', (r) => { if (r.method() !== 'GET') writes.push(`${r.method()} ${r.url()}`); });
  await page.selectOption('#preview-lang', 'de');
  await page.waitForSelector('#preview-box .consentd-banner:not([hidden]) >> text=Ihre Datenschutz-Einstellungen');
  assert.match(await page.textContent('#preview-box .consentd-banner'), /Alle akzeptieren.*Alle ablehnen/s);
  assert.match(await page.textContent('#preview-box .consentd-purposes'), /Funktional, Statistik, Personalisierte Werbung/);
  await page.click('#preview-box .consentd-banner [data-consent-action="accept-all"]');
  await waitFor(async () => /“accept all \(banner\)” was clicked. Nothing was recorded/.test(await page.textContent('#preview-msg')), { what: 'the preview note' });
  // Opt-out region: no banner; the preference center still opens, in English.
  await page.selectOption('#preview-lang', 'en');
  await page.selectOption('#preview-region', 'US-CA');
  await waitFor(async () => /No banner/.test(await page.textContent('#preview-about')), { what: 'no banner in US-CA' });
  assert.equal(await page.isVisible('#preview-box .consentd-banner'), false);
  await page.click('#preview-open');
  await page.waitForSelector('dialog.consentd-dialog[open]');
  assert.equal(await page.isChecked('dialog [data-consent-purpose="analytics"]'), true, 'allowed by default in an opt-out region');
  await page.click('dialog [data-consent-action="reject-all"]');
  await waitFor(async () => /“reject all \(preference center\)” was clicked. Nothing was recorded/.test(await page.textContent('#preview-msg')), { what: 'the preview note' });
  assert.deepEqual(writes, [], 'the preview sent nothing but reads');
  assert.deepEqual(await problems(page), []);
  await page.click('#sign-out');
});

/** Presses key until the focus is on selector (at most max presses); fails otherwise. */
async function focusBy(page, selector, key = 'Tab', max = 40) {
  for (let i = 0; i < max; i++) {
    if (await page.evaluate((s) => document.activeElement?.matches(s), selector)) return;
    await page.keyboard.press(key);
  }
  throw new Error(`${key} never reached ${selector}`);
}

/** The focused element shows a focus ring (an outline of at least 2 px). */
async function assertFocusVisible(page) {
  const o = await page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return { style: s.outlineStyle, width: parseFloat(s.outlineWidth), el: document.activeElement.id || document.activeElement.tagName };
  });
  assert.ok(o.style !== 'none' && o.width >= 2, `focus not visible on ${o.el}: ${JSON.stringify(o)}`);
}

test('keyboard only: sign in, look up, restrict, and close the preview dialog with Escape', async () => {
  const { page } = browser;
  await page.goto(env.url + '/console/');
  await page.evaluate(() => sessionStorage.clear());
  await page.reload();
  await page.waitForSelector('#api-key');
  await focusBy(page, '#api-key');
  await assertFocusVisible(page);
  await page.keyboard.type(env.keys.admin);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#key-name');
  await focusBy(page, '#subject-id');
  await assertFocusVisible(page);
  await page.keyboard.type('user-s1');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'lookup-btn');
  await assertFocusVisible(page);
  await page.keyboard.press('Shift+Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'subject-id');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#answers');
  await focusBy(page, '#restrict-reason');
  await page.keyboard.type('keyboard T-42');
  await focusBy(page, '#restrict-btn');
  await assertFocusVisible(page);
  await page.keyboard.press('Space');
  await waitFor(async () => /Restricted: recorded as revision/.test(await page.textContent('#restrict-msg')), { what: 'restricted' });
  assert.ok((await api(env, 'read', 'GET', '/v1/subjects/user-s1/consent')).body.consent.restrict_time);
  // Back up to the screens' navigation with Shift+Tab, to the policy, and its preview's dialog.
  await focusBy(page, '#nav-policy', 'Shift+Tab', 80);
  await assertFocusVisible(page);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#preview-open');
  await focusBy(page, '#preview-open');
  await page.keyboard.press('Enter');
  await page.waitForSelector('dialog.consentd-dialog[open]');
  await page.keyboard.press('Escape');
  await waitFor(() => page.evaluate(() => !document.querySelector('dialog.consentd-dialog').open), { what: 'the dialog to close' });
  assert.equal(await page.evaluate(() => document.activeElement.id), 'preview-open', 'the focus is back where it was');
  assert.deepEqual(await problems(page), []);
});
