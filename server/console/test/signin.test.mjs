// Signing in: a key of each scope sees what it may do and the scope it
// lacks for the rest; a wrong key is refused and nothing is stored; a 403
// the API sends anyway is shown; signing out forgets the key.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SCOPES, api, openBrowser, problems, signIn, startEnv, withoutExpectedStatuses } from './harness.mjs';

let env;
let browser;
before(async () => {
  env = await startEnv();
  browser = await openBrowser(env);
});
after(async () => {
  await browser?.close();
  await env?.stopAll();
});

const session = (page) => page.evaluate(() => ({ n: sessionStorage.length, key: sessionStorage.getItem('consentd.console.key'), cookies: document.cookie }));

// What each scope may open (server/auth/rules.go; admin holds all).
const screens = {
  person: ['read', 'rights', 'write', 'admin'],
  analytics: ['read', 'rights', 'admin'],
  consumers: ['watch', 'admin'],
  policy: SCOPES,
};
const actions = {
  '#history-btn': 'rights', '#export-btn': 'rights', '#restrict-btn': 'rights', '#lift-btn': 'rights',
  '#minor-btn': 'write', '#unminor-btn': 'write', '#guardian-btn': 'write', '#link-btn': 'write',
};

test('a wrong key is refused with a clear message and nothing is stored', async () => {
  const { page } = browser;
  await page.goto(env.url + '/console/');
  await page.fill('#api-key', 'not-a-key-' + 'x'.repeat(30));
  await page.click('button[type=submit]');
  await page.waitForSelector('#signin-msg.msg-error');
  assert.match(await page.textContent('#signin-msg'), /that key was not accepted/i);
  assert.deepEqual(await session(page), { n: 0, key: null, cookies: '' });
  assert.equal(await page.inputValue('#api-key'), 'not-a-key-' + 'x'.repeat(30), 'the typed key stays for correcting, only in the field');
  // The 401 itself is logged by the browser as a failed load: expected here, nothing else is.
  assert.deepEqual(withoutExpectedStatuses(await problems(page), [401]), []);
});

for (const scope of SCOPES) {
  test(`a key of scope ${scope}: name and scopes shown, what it lacks disabled with the scope named`, async () => {
    const { page } = browser;
    await signIn(page, env, scope);
    assert.equal(await page.textContent('#key-name'), `console-${scope}`);
    assert.match(await page.textContent('#key-scopes'), new RegExp(`scopes: ${scope}$`));
    assert.equal((await session(page)).key, env.keys[scope], 'the key is kept in sessionStorage');
    assert.equal((await session(page)).cookies, '', 'never in a cookie');
    assert.ok(!page.url().includes(env.keys[scope]), 'never in the URL');
    for (const [screen, allowed] of Object.entries(screens)) {
      const enabled = await page.isEnabled(`#nav-${screen}`);
      assert.equal(enabled, allowed.includes(scope), `${scope}: screen ${screen} enabled=${enabled}`);
      if (!enabled) {
        const why = await page.textContent(`#nav-${screen}-why`);
        for (const s of ['read', 'rights', 'write', 'watch'].filter((s) => allowed.includes(s))) assert.match(why, new RegExp(s), `${screen}: ${why}`);
      }
    }
    if (screens.person.includes(scope)) {
      await page.click('#nav-person');
      await page.fill('#subject-id', 'user-signin');
      await page.click('#lookup-btn');
      await page.waitForSelector('#history');
      if (scope === 'read' || scope === 'admin') await page.waitForSelector('#answers');
      else assert.match(await page.textContent('#lookup-msg'), /needs scope read/);
      for (const [sel, need] of Object.entries(actions)) {
        const may = scope === 'admin' || scope === need;
        assert.equal(await page.isEnabled(sel), may, `${scope}: ${sel}`);
        if (!may) {
          const card = await page.$eval(sel, (b) => b.closest('section').textContent);
          assert.match(card, new RegExp(`needs scope ${need}`), `${scope}: ${sel} names ${need}`);
        }
      }
    }
    await page.click('#sign-out');
    await page.waitForSelector('#api-key');
    assert.deepEqual(await session(page), { n: 0, key: null, cookies: '' }, 'signing out forgets the key');
    assert.deepEqual(await problems(page), []);
  });
}

test('a 403 the API sends anyway is shown, and nothing changes', async () => {
  const { page } = browser;
  // The console believes the read key is an admin's (a stale or lying
  // /v1/caller); the API still decides.
  await page.route('**/v1/caller', (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ kind: 'CALLER_KIND_SERVICE', name: 'console-read', scopes: ['admin'], subject_id: '' }) }));
  try {
    await api(env, 'write', 'PATCH', '/v1/subjects/user-403/consent', { decisions: { analytics: true }, region: 'DE' });
    await signIn(page, env, 'read');
    await page.fill('#subject-id', 'user-403');
    await page.click('#lookup-btn');
    await page.fill('#restrict-reason', 'T-403');
    await page.click('#restrict-btn');
    await page.waitForSelector('#restrict-msg.msg-error');
    assert.match(await page.textContent('#restrict-msg'), /403 PERMISSION_DENIED/);
    const c = await api(env, 'read', 'GET', '/v1/subjects/user-403/consent');
    assert.equal(c.body.consent.revision, '1');
    assert.equal(c.body.consent.restrict_time, undefined);
    assert.deepEqual(withoutExpectedStatuses(await problems(page), [403]), []);
  } finally {
    await page.unroute('**/v1/caller');
    await page.click('#sign-out');
  }
});

test('an empty key: asked for one; in demo mode (an empty bearer is no credentials) it signs in as the demo, storing nothing', async () => {
  const { page } = browser;
  await page.goto(env.url + '/console/');
  await page.click('button[type=submit]');
  await page.waitForSelector('#signin-msg.msg-error');
  assert.match(await page.textContent('#signin-msg'), /Type an API key first/);
  assert.deepEqual(await session(page), { n: 0, key: null, cookies: '' });
  // This consentd is not in demo mode: its answer to GetCaller is what one in demo mode gives.
  await page.route('**/v1/caller', (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ kind: 'CALLER_KIND_DEMO', name: '', scopes: [], subject_id: '' }) }));
  try {
    await page.click('button[type=submit]');
    await page.waitForSelector('#key-name');
    assert.match(await page.textContent('#key-name'), /demo mode/);
    for (const screen of Object.keys(screens)) assert.equal(await page.isEnabled(`#nav-${screen}`), true, screen);
    assert.deepEqual(await session(page), { n: 0, key: null, cookies: '' });
  } finally {
    await page.unroute('**/v1/caller');
  }
  assert.deepEqual(withoutExpectedStatuses(await problems(page), [401]), []);
});
