// The person screen end to end against the real API: look-up, answers per
// region, the history paged, the export and its chain verdict, restrict and
// lift, minor and guardian, link, and erasure — after which nothing of the
// person is left in Redis but what the design keeps. Bad input: an unknown
// subject, a missing reason, an erase whose typed id does not match.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { api, openBrowser, problems, redisDump, screenshot, signIn, startEnv, waitFor } from './harness.mjs';

let env;
let browser;
const user = 'user-p1@example';
const guardian = 'guardian-acct-5501';
const restrictReason = 'ticket-RESTRICT-7781';
const eraseReason = 'ticket-ERASE-7782';
let visitor;

before(async () => {
  env = await startEnv();
  browser = await openBrowser(env);
  // 13 updates: a history longer than one page of 10.
  const first = await api(env, 'write', 'PATCH', `/v1/subjects/${encodeURIComponent(user)}/consent`, { decisions: { analytics: true, ads: false }, region: 'DE', source: 'SOURCE_BANNER' });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  for (let i = 0; i < 12; i++) {
    const r = await api(env, 'write', 'PATCH', `/v1/subjects/${encodeURIComponent(user)}/consent`, { decisions: { functional: i % 2 === 0 }, source: 'SOURCE_PREFERENCE_CENTER' });
    assert.equal(r.status, 200);
  }
  const v = await fetch(env.url + '/v1/visitors', { method: 'POST', body: JSON.stringify({ region: 'DE' }) }).then((r) => r.json());
  visitor = v.subject_id;
  assert.equal((await api(env, 'write', 'PATCH', `/v1/subjects/${visitor}/consent`, { decisions: { analytics: false }, source: 'SOURCE_BANNER' })).status, 200);
  await signIn(browser.page, env, 'admin');
});
after(async () => {
  await browser?.close();
  await env?.stopAll();
});

const consentOf = async (id, region) => (await api(env, 'read', 'GET', `/v1/subjects/${encodeURIComponent(id)}/consent${region ? '?region=' + region : ''}`)).body.consent;
const answers = (page) => page.$$eval('#answers tbody tr', (rows) => Object.fromEntries(rows.map((r) => [r.dataset.purpose, r.querySelectorAll('td')[0].textContent.replace(/\W/g, '') + ' ' + r.querySelectorAll('td')[1].querySelector('code').textContent])));
const apiAnswers = (c) => Object.fromEntries(c.purposes.map((p) => [p.purpose, `${p.allowed ? 'allowed' : 'denied'} ${p.reason.replace('REASON_', '').toLowerCase().replace(/_/g, ' ')}`]));
const revisions = (page) => page.$$eval('#timeline > li', (li) => li.map((l) => Number(l.dataset.revision)));

test('an unknown subject: a clear message, nothing written', async () => {
  const { page } = browser;
  await page.fill('#subject-id', 'nobody-here');
  await page.click('#lookup-btn');
  await waitFor(async () => /No consent stored for nobody-here/.test(await page.textContent('#lookup-msg')), { what: 'the unknown-subject message' });
  // A history read without a reason is refused in the console: nothing is sent.
  await page.click('#history-btn');
  assert.match(await page.textContent('#history-msg'), /Not read: give a reason/);
  assert.equal((await consentOf('nobody-here')).revision, '0');
  assert.deepEqual(await problems(page), []);
});

test('look-up and every purpose\'s answer in a chosen region, as the API gives them', async () => {
  const { page } = browser;
  await page.fill('#subject-id', user);
  await page.click('#lookup-btn');
  await page.waitForSelector('#answers');
  assert.match(await page.textContent('#lookup-msg'), /Found user-p1@example: revision 13/);
  assert.deepEqual(await answers(page), apiAnswers(await consentOf(user)));
  assert.equal((await answers(page)).analytics, 'allowed explicit');
  for (const region of ['US-CA', 'GB']) {
    await page.selectOption('#region', region);
    await waitFor(async () => (await page.textContent('#consent-facts')).includes(`region ${region}`), { what: `answers for ${region}` });
    assert.deepEqual(await answers(page), apiAnswers(await consentOf(user, region)), region);
  }
  assert.equal((await answers(page)).functional, 'denied explicit');
  await screenshot(page, 'person-1280.png');
  assert.deepEqual(await problems(page), []);
});

test('the history: newest first, paged, who/when/how/policy version and old and new values', async () => {
  const { page } = browser;
  await page.fill('#history-reason', 'DSAR T-9001');
  await page.click('#history-btn');
  await page.waitForSelector('#timeline');
  // Newest first; the read is recorded after it (an access event, revision 14), so this page does not list it.
  assert.deepEqual(await revisions(page), [13, 12, 11, 10, 9, 8, 7, 6, 5, 4]);
  await page.click('#history-older');
  await waitFor(async () => (await revisions(page))[0] < 4, { what: 'the older page' });
  assert.deepEqual(await revisions(page), [3, 2, 1]);
  const firstEvent = await page.textContent('#timeline > li[data-revision="1"]');
  for (const want of [/update/, /Who\s*key:console-write/, /How\s*banner via rest/, /Policy version\s*2026-11-01/, /Region\s*DE/, /analytics: no decision → granted/, /ads: no decision → denied/]) {
    assert.match(firstEvent, want);
  }
  assert.match(await page.textContent('#timeline > li[data-revision="3"]'), /functional: granted → denied/);
  assert.equal(await page.isEnabled('#history-older'), false, 'the last page');
  await page.click('#history-newer');
  // Back to the newest page, which now lists the two reads before this one.
  await waitFor(async () => (await revisions(page))[0] === 15, { what: 'back to the newest page' });
  const newest = await page.textContent('#timeline > li[data-revision="15"]');
  for (const want of [/access/, /Who\s*key:console-admin/, /Reason\s*DSAR T-9001/]) assert.match(newest, want);
  // Each page read was recorded with the reason: 3 reads, revisions 14-16.
  const events = (await api(env, 'rights', 'GET', `/v1/subjects/${encodeURIComponent(user)}/events?reason=check&page_size=4`)).body.events;
  assert.deepEqual(events.map((e) => [e.revision, e.type, e.actor, e.reason]), [
    ['16', 'EVENT_TYPE_ACCESS', 'key:console-admin', 'DSAR T-9001'],
    ['15', 'EVENT_TYPE_ACCESS', 'key:console-admin', 'DSAR T-9001'],
    ['14', 'EVENT_TYPE_ACCESS', 'key:console-admin', 'DSAR T-9001'],
    ['13', 'EVENT_TYPE_UPDATE', 'key:console-write', ''],
  ]);
  assert.deepEqual(await problems(page), []);
});

test('export: the chain verdict and the downloaded document', async () => {
  const { page } = browser;
  await page.fill('#export-reason', 'access request T-9002');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-btn')]);
  assert.equal(download.suggestedFilename(), 'consentd-export-user-p1_example.json');
  const doc = JSON.parse(readFileSync(await download.path(), 'utf8'));
  assert.equal(doc.subject_id, user);
  assert.equal(doc.chain.valid, true);
  assert.equal(doc.events.at(-1).type, 'EVENT_TYPE_EXPORT');
  assert.equal(doc.events.at(-1).reason, 'access request T-9002');
  assert.equal(doc.events.length, Number(doc.chain.events_checked));
  assert.match(await page.textContent('#chain-verdict'), new RegExp(`Hash chain intact: ${doc.chain.events_checked} events checked`));
  assert.ok(await page.getAttribute('#export-link', 'href').then((h) => h.startsWith('blob:')));
  assert.deepEqual(await problems(page), []);
});

test('restrict and lift, with the reason recorded', async () => {
  const { page } = browser;
  await page.selectOption('#region', '');
  await page.fill('#restrict-reason', restrictReason);
  await page.click('#restrict-btn');
  await waitFor(async () => /Restricted: recorded as revision \d+/.test(await page.textContent('#restrict-msg')), { what: 'restricted' });
  let c = await consentOf(user);
  assert.ok(c.restrict_time);
  // The history on screen (its newest page) shows the action's event at the top.
  await waitFor(async () => /restrict/.test(await page.textContent('#timeline > li:first-child .event-head')), { what: 'the restriction in the timeline' });
  assert.match(await page.textContent('#timeline > li:first-child'), new RegExp(`Reason\\s*${restrictReason}`));
  await waitFor(async () => (await answers(page)).analytics === 'denied restricted', { what: 'the table to show the restriction' });
  assert.match(await page.textContent('#consent-facts'), /restricted/);
  await page.click('#lift-btn');
  await waitFor(async () => /Restriction lifted: recorded as revision \d+/.test(await page.textContent('#restrict-msg')), { what: 'lifted' });
  c = await consentOf(user);
  assert.equal(c.restrict_time, undefined);
  assert.equal(apiAnswers(c).analytics, 'allowed explicit');
  await waitFor(async () => /lift restriction/.test(await page.textContent('#timeline > li:first-child .event-head')), { what: 'the lift in the timeline' });
  // Newest first, the timeline's own reads (access events) aside.
  const events = (await api(env, 'rights', 'GET', `/v1/subjects/${encodeURIComponent(user)}/events?reason=check&page_size=6`)).body.events.filter((e) => e.type !== 'EVENT_TYPE_ACCESS');
  assert.deepEqual(events.slice(0, 2).map((e) => [e.type, e.reason]), [['EVENT_TYPE_LIFT_RESTRICTION', restrictReason], ['EVENT_TYPE_RESTRICT', restrictReason]]);
  assert.deepEqual(await problems(page), []);
});

test('mark a minor and record a guardian\'s confirmation', async () => {
  const { page } = browser;
  await page.click('#minor-btn');
  await waitFor(async () => /Marked a minor/.test(await page.textContent('#minor-msg')), { what: 'marked' });
  assert.equal((await consentOf(user)).minor, true);
  await waitFor(async () => (await answers(page)).analytics === 'denied awaiting guardian', { what: 'awaiting guardian' });
  await waitFor(async () => /mark minor/.test(await page.textContent('#timeline > li:first-child .event-head')), { what: 'the mark in the timeline' });
  assert.match(await page.textContent('#timeline > li:first-child'), /Minor\s*marked/);
  await page.fill('#guardian', guardian);
  await page.click('#guardian-btn');
  await waitFor(async () => /Guardian's confirmation recorded/.test(await page.textContent('#minor-msg')), { what: 'confirmed' });
  const c = await consentOf(user);
  assert.ok(c.guardian_confirm_time);
  await waitFor(async () => /guardian confirm/.test(await page.textContent('#timeline > li:first-child .event-head')), { what: 'the confirmation in the timeline' });
  assert.match(await page.textContent('#timeline > li:first-child'), new RegExp(`Guardian\\s*${guardian}`));
  assert.equal(apiAnswers(c).analytics, 'allowed explicit');
  assert.deepEqual(await problems(page), []);
});

test('link a visitor', async () => {
  const { page } = browser;
  await page.fill('#visitor-id', visitor);
  await page.click('#link-btn');
  await waitFor(async () => new RegExp(`Linked ${visitor} to ${user}`).test(await page.textContent('#link-msg')), { what: 'linked' });
  assert.equal((await consentOf(visitor)).linked, true);
  await waitFor(async () => /link/.test(await page.textContent('#timeline > li:first-child .event-head')), { what: 'the link in the timeline' });
  assert.match(await page.textContent('#timeline > li:first-child'), new RegExp(`Linked\\s*${visitor}`));
  // The visitor denied analytics: the more restrictive decision won in the user's record.
  assert.equal(apiAnswers(await consentOf(user)).analytics, 'denied explicit');
  assert.deepEqual(await problems(page), []);
});

test('erase: a mismatched id sends nothing; the right one erases the user and its visitor, and Redis keeps nothing of them', async () => {
  const { page } = browser;
  const before = await consentOf(user);
  await page.fill('#erase-reason', eraseReason);
  await page.fill('#erase-confirm', user + 'x');
  assert.equal(await page.isEnabled('#erase-btn'), false);
  assert.match(await page.textContent('#erase-confirm-hint'), /Does not match user-p1@example/);
  await page.keyboard.press('Enter'); // no form to submit: nothing happens
  assert.equal((await consentOf(user)).revision, before.revision, 'nothing changed');

  await page.fill('#erase-confirm', user);
  await page.click('#erase-btn');
  await waitFor(async () => new RegExp(`Erased user-p1@example at .*1 linked visitor with it: ${visitor}\\.`).test(await page.textContent('#erase-msg')), { what: 'erased, naming the visitor' });
  await screenshot(page, 'person-erased-1280.png');
  assert.equal(await page.$('#timeline'), null, 'the erased history is no longer on screen');
  assert.equal(await page.$('#answers'), null, 'nor the erased consent');
  assert.equal((await consentOf(user)).revision, '0');
  assert.equal((await consentOf(visitor)).revision, '0');
  assert.equal((await api(env, 'rights', 'GET', `/v1/subjects/${encodeURIComponent(user)}/events?reason=check`)).body.events.length, 0);

  // Every key Redis holds — its name, its contents read by type, and its
  // DUMP (rdbcompression off) — searched for what was the person's: the
  // user id, the visitor id, the guardian and the restriction's reason,
  // which the history held sealed with the (now deleted) data key. What the
  // README's erasure section keeps is allowed: the anonymous tombstone
  // (time, actor, and the erasure's reason, which must name no one), and
  // the erase notice in the change feed, whose subject id is sealed with
  // the operator's key (so the ids never appear in the clear). The access
  // reasons of reads and exports were sealed in the deleted history too.
  const dump = await redisDump(env.redisPort);
  assert.ok(dump.length > 0);
  const secrets = [user, visitor, guardian, restrictReason, 'DSAR T-9001', 'access request T-9002'];
  for (const { key, type, bytes } of dump) {
    for (const s of secrets) {
      assert.equal(bytes.includes(Buffer.from(s)), false, `${type} ${key} holds ${s}`);
    }
  }
  // The erasure's reason: only in tombstone lists (<prefix>:{p<n>}:tomb),
  // the user's and its visitor's partitions' (one list if they share one).
  const withReason = dump.filter((k) => k.bytes.includes(Buffer.from(eraseReason)));
  assert.ok(withReason.length >= 1 && withReason.length <= 2, `${withReason.length} keys hold the erasure's reason`);
  for (const k of withReason) assert.ok(k.type === 'list' && /^[^:]+:\{p\d+\}:tomb$/.test(k.key.toString()), `the erasure's reason is in ${k.type} ${k.key}`);
  assert.deepEqual(await problems(page), []);
});
