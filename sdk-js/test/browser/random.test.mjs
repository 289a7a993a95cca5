// A randomized test of the promise "never more than the person chose":
// random sequences of banner clicks, preference-center saves, withdrawals
// made on the server, reloads and consentd outages, in a real Chromium on a
// page of another origin, against a real consentd and Redis. After every
// step:
//
//   1. no gated resource (the analytics script, the inline analytics
//      script, the ad frame) of a purpose the person has not granted was
//      requested or run on the page since the previous step;
//   2. no explicit grant exists at the service that no click produced;
//   3. once consentd is reachable and the page has settled, the page and
//      the service agree, purpose by purpose (after a withdrawal made on the
//      server, from the page's next view or write on: that is when the page
//      can learn of it).
//
// Each sequence runs in DE (opt-in: nothing is allowed without a grant, so
// "ran" must imply "granted") or in US-CA (opt-out: a purpose nobody
// decided is allowed by default, so "ran" must imply "granted, or never
// decided"). The model below is the specification, not the code: what each click means is written down here from the product's
// rules (Accept all grants every purpose asked about, Reject all denies
// them, Save records a switch the person turned on as a grant and every
// switch left off as a denial, a withdrawal denies everything).
//
// RANDOM_SEQUENCES (default 6) and RANDOM_STEPS (default 8) size the run;
// RANDOM_SEED replays one (the seed is printed).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { api, openBrowser, sdkState, shopPage, startEnv, waitFor } from './harness.mjs';

const SEQUENCES = Number(process.env.RANDOM_SEQUENCES || 6);
const STEPS = Number(process.env.RANDOM_STEPS || 8);
const SEED = Number(process.env.RANDOM_SEED || Math.floor(Math.random() * 2 ** 31));

const banner = '[data-consent-banner]';
const prefs = '[data-consent-preferences]';
const ASKED = ['functional', 'analytics', 'ads'];
// Which purpose each gated resource of the shop page needs.
const RESOURCES = { 'analytics.js': 'analytics', inline: 'analytics', 'ad.html': 'ads' };

/** mulberry32: a small seeded generator, so a failing run can be replayed. */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

describe('randomized: never more than the person chose', () => {
  let env;
  before(async () => { env = await startEnv(); });
  after(async () => { await env?.stopAll(); });

  test(`${SEQUENCES} sequences of ${STEPS} steps (seed ${SEED})`, { timeout: 30 * 60_000 }, async () => {
    console.log(`# random: seed ${SEED}, ${SEQUENCES} sequences x ${STEPS} steps`);
    const rand = random(SEED);
    const pick = (list) => list[Math.floor(rand() * list.length)];
    let steps = 0;
    for (let seq = 0; seq < SEQUENCES; seq++) {
      if (!(await up(env))) await env.consentd.start();
      const log = [];
      try {
        await runSequence(env, rand, pick, log);
        steps += log.length - 1;
        if (process.env.RANDOM_VERBOSE) console.log(`# sequence ${seq}:\n#   ${log.join('\n#   ')}`);
      } catch (e) {
        e.message += `\n  seed ${SEED}, sequence ${seq}, steps so far:\n    ${log.join('\n    ')}`;
        throw e;
      }
    }
    console.log(`# random: ${SEQUENCES} sequences, ${steps} steps, all invariants held`);
  });
});

async function up(env) {
  return fetch(`${env.consentd.internalUrl}/healthz`, { signal: AbortSignal.timeout(500) }).then(() => true, () => false);
}

async function runSequence(env, rand, pick, log) {
  const { page, close } = await openBrowser(env);
  try {
    // The person's last act per purpose: true granted, false denied, undefined none.
    const model = {};
    const region = rand() < 0.5 ? 'DE' : 'US-CA';
    const allowed = (p) => model[p] ?? region === 'US-CA';
    log.push(`region ${region}`);
    let consentdUp = true;
    let subject = null;
    // A withdrawal made on the server reaches this page at its next view
    // (or its next write): until then the page may still show the old answer.
    let stale = false;

    // Page views and the gated resources requested in each.
    let view = 0;
    const activations = [];
    page.on('framenavigated', (f) => { if (f === page.mainFrame()) view++; });
    page.on('request', (r) => {
      const name = Object.keys(RESOURCES).find((n) => r.url().endsWith('/demo/' + n));
      if (name) activations.push({ view, name });
    });
    let checked = 0; // activations already checked
    const inlineChecked = new Set(); // views whose inline script was checked

    await page.goto(shopPage(env, { region }));
    await settle();
    await check('the first page view');

    for (let i = 0; i < STEPS; i++) {
      // A withdrawal made elsewhere matters most on the page's next view.
      const action = log.at(-1)?.startsWith('withdraw: ') && rand() < 0.5 ? 'reload'
        : pick(['accept', 'accept', 'reject', 'save', 'save', 'save', 'withdraw', 'withdraw', 'reload', 'reload', 'reload', 'outage', 'outage']);
      const did = await step(action);
      if (action === 'withdraw' && did) stale = true;
      if (['reload', 'accept', 'reject'].includes(action) && did) stale = false;
      log.push(`${action}${did ? ': ' + did : ' (skipped)'} -> model ${JSON.stringify(model)}, consentd ${consentdUp ? 'up' : 'down'}`);
      await settle();
      await check(action);
    }

    async function step(action) {
      switch (action) {
        case 'accept':
        case 'reject': {
          const where = await openChoice();
          if (!where) return null;
          await page.click(`${where} [data-consent-action="${action}-all"]`);
          for (const p of ASKED) model[p] = action === 'accept';
          return where === banner ? 'banner' : 'preference center';
        }
        case 'save': {
          if (!(await openPrefs())) return null;
          const toggled = [];
          for (const p of ASKED) {
            const input = `${prefs} input[data-consent-purpose="${p}"]`;
            const before = await page.isChecked(input);
            const flip = rand() < 0.5;
            if (flip) await page.click(input);
            const after = await page.isChecked(input);
            // Save: a switch the person turned on is a grant, every switch
            // left off a denial, a switch on that they did not turn on nothing.
            if (after && !before) model[p] = true;
            if (!after) model[p] = false;
            toggled.push(`${p} ${before ? 'on' : 'off'}${flip ? '->' + (after ? 'on' : 'off') : ''}`);
          }
          await page.click(`${prefs} [data-consent-action="save"]`);
          await page.locator(prefs).waitFor({ state: 'hidden' });
          return toggled.join(', ');
        }
        case 'withdraw': {
          if (!consentdUp || !subject) return null;
          const r = await api(env, 'POST', `/v1/subjects/${encodeURIComponent(subject)}/consent:withdraw`, {});
          assert.equal(r.status, 200, JSON.stringify(r.body));
          for (const p of ASKED) model[p] = false;
          return 'by a backend';
        }
        case 'reload':
          await page.reload();
          return 'page reloaded';
        case 'outage':
          if (consentdUp) await env.consentd.stop();
          else {
            await env.consentd.start();
            // The network never went away for the browser; tell the page the
            // way a browser would after a real outage, instead of waiting out
            // its backoff.
            await page.evaluate(() => dispatchEvent(new Event('online'))).catch(() => {});
          }
          consentdUp = !consentdUp;
          return consentdUp ? 'consentd back' : 'consentd down';
      }
      throw new Error('unknown action ' + action);
    }

    /** Where the person can accept or reject all now: the banner, or the preference center. */
    async function openChoice() {
      if (await page.locator(banner).isVisible()) return banner;
      return (await openPrefs()) ? prefs : null;
    }

    /** Opens the preference center; false when it cannot open (no policy yet: a first visit offline). */
    async function openPrefs() {
      if (!(await page.evaluate(() => Boolean(window.consentd?.consent.policy())))) return false;
      await page.click('main [data-consent-open]');
      await page.locator(prefs).waitFor({ state: 'visible' });
      return true;
    }

    /** Waits until the page has done what it will do: with consentd up, nothing pending and confirmed. */
    async function settle() {
      await page.waitForLoadState('load');
      if (!consentdUp) return;
      await waitFor(async () => {
        const s = await sdkState(page);
        return s && !s.pending && s.confirmed !== false && s.subjectId; // (an SDK without `confirmed`: see it fail below)
      }, { ms: 30_000, what: 'the page to settle with consentd up' });
      subject = (await sdkState(page)).subjectId;
    }

    async function check(action) {
      // 1. Everything gated that ran since the last step was granted.
      const inline = await page.evaluate(() => Boolean(window.inlineAnalyticsRan));
      if (inline && !inlineChecked.has(view)) {
        activations.push({ view, name: 'inline' });
        inlineChecked.add(view);
      }
      for (const a of activations.slice(checked)) {
        assert.ok(allowed(RESOURCES[a.name]), `after "${action}": ${a.name} (${RESOURCES[a.name]}) ran in page view ${a.view} though the person has not granted it`);
      }
      checked = activations.length;
      if (!consentdUp) return;

      // 2 and 3. The service holds exactly the person's acts, and the page agrees with it.
      const { body } = await api(env, 'GET', `/v1/subjects/${encodeURIComponent(subject)}/consent?region=${region}`);
      const c = body.consent;
      const server = Object.fromEntries(c.purposes.map((p) => [p.purpose, p]));
      const state = await sdkState(page);
      for (const p of ASKED) {
        const decided = server[p].decision ? server[p].decision.granted : undefined;
        assert.equal(decided, model[p], `after "${action}": the service's decision for ${p} is ${decided}, the person's last act ${model[p]}`);
        if (!stale) assert.equal(state.purposes[p]?.allowed, server[p].allowed, `after "${action}": page and service disagree on ${p}`);
      }
    }
  } finally {
    await close();
  }
}
