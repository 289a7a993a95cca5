// The retry queue: a choice made while the service is unreachable is kept,
// obeyed at once, and sent later exactly once. Nothing lost, nothing twice.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createConsent } from "../../dist/core.js";
import { fakeBrowser, fakeConsentd, idle, jwtFor, settled, until } from "./fake.mjs";

const endpoint = "https://consent.example";

/** A page whose visitor exists at the service already, then loses the network. */
async function offlinePage(opts = {}) {
  const page = fakeBrowser();
  const svc = fakeConsentd();
  await createConsent({ endpoint, fetch: svc.fetch }).sync();
  page.reload();
  svc.calls.length = 0;
  svc.down = true;
  const consent = createConsent({ endpoint, fetch: svc.fetch, retryDelays: [20, 40], ...opts });
  return { page, svc, consent };
}

test("service unreachable: the choice is obeyed, kept in localStorage and marked pending", async () => {
  const { page, svc, consent } = await offlinePage({ retryDelays: [60_000] });
  const state = await consent.set({ analytics: true, ads: false }, "banner");
  assert.equal(state.pending, true);
  assert.equal(consent.has("analytics"), true);
  assert.match(page.cookie(), /analytics:E/);
  const queued = page.stored("consentd.queue");
  assert.deepEqual(queued.d, { analytics: true, ads: false });
  assert.equal(queued.s, "banner");
  assert.match(queued.k, /^\d{1,10}(-\d{1,10}){3}$/);
  assert.equal(svc.callsTo("PATCH", "/consent").length, 1, "tried once");
});

test("it is retried with backoff, with the same idempotency key, until acknowledged; then cleared and the service's answer taken", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { page, svc, consent } = await offlinePage(); // backoff 20 ms, then 40 ms
  await consent.set({ analytics: true }, "banner");
  const key = page.stored("consentd.queue").k;
  const patches = () => svc.callsTo("PATCH", "/consent").length;
  for (const [n, delay] of [[2, 20], [3, 40], [4, 40]]) {
    t.mock.timers.tick(delay - 1);
    await idle();
    assert.equal(patches(), n - 1, `try ${n} not before ${delay} ms`);
    t.mock.timers.tick(1);
    await settled(() => patches() == n);
  }
  svc.down = false;
  t.mock.timers.tick(40);
  await settled(() => !consent.get().pending);

  const tries = svc.callsTo("PATCH", "/consent");
  assert.ok(tries.every((c) => c.body.idempotency_key === key));
  assert.equal(svc.subjects.get("v_visitor1").revision, 1, "applied once");
  assert.equal(page.stored("consentd.queue"), null);
  assert.equal(consent.get().revision, 1);
  assert.equal(consent.has("analytics"), true);
});

test("5xx and 429 answers are retried like a network error", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  for (const status of [503, 500, 429]) {
    const { svc, consent } = await offlinePage();
    svc.down = false;
    svc.status = status;
    const state = await consent.set({ analytics: true });
    assert.equal(state.pending, true, String(status));
    svc.status = 0;
    t.mock.timers.tick(20);
    await settled(() => !consent.get().pending);
    assert.equal(consent.get().revision, 1);
  }
});

test("nothing lost across a reload: the next page obeys the queued choice from the cookie and sends it on sync() with the same key", async () => {
  const { page, svc, consent } = await offlinePage({ retryDelays: [60_000] });
  await consent.set({ ads: true }, "preference_center");
  const key = page.stored("consentd.queue").k;

  page.reload();
  svc.down = false;
  const next = createConsent({ endpoint, fetch: svc.fetch });
  assert.equal(next.has("ads"), true);
  assert.equal(next.get().pending, true);
  await next.sync();

  const sent = svc.callsTo("PATCH", "/consent").at(-1);
  assert.equal(sent.body.idempotency_key, key);
  assert.equal(sent.body.source, "SOURCE_PREFERENCE_CENTER");
  assert.equal(svc.callsTo("GET", "/consent").length, 0, "the write's answer is the newest state");
  assert.equal(next.get().pending, false);
  assert.equal(next.get().revision, 1);
  assert.equal(svc.subjects.get("v_visitor1").decisions.ads, true);
});

test("a request applied at the service whose answer was lost is not applied twice", async () => {
  const { page, svc } = await offlinePage({ retryDelays: [60_000] });
  svc.down = false;
  const lossy = async (url, init) => {
    const res = await svc.fetch(url, init);
    if (init?.method === "PATCH") throw new TypeError("connection reset"); // applied, answer lost
    return res;
  };
  const flaky = createConsent({ endpoint, fetch: lossy, retryDelays: [60_000] });
  await flaky.set({ analytics: true });
  assert.equal(flaky.get().pending, true);
  assert.equal(svc.subjects.get("v_visitor1").revision, 1);

  page.reload();
  await createConsent({ endpoint, fetch: svc.fetch }).sync();
  assert.equal(svc.subjects.get("v_visitor1").revision, 1, "the retry with the same key applied nothing");
  assert.equal(page.stored("consentd.queue"), null);
});

test("choices made while offline are merged into one request, the latest winning", async () => {
  const { page, svc, consent } = await offlinePage({ retryDelays: [60_000] });
  await consent.set({ analytics: true, ads: true }, "banner");
  await consent.set({ ads: false }, "preference_center");
  const queued = page.stored("consentd.queue");
  assert.deepEqual(queued.d, { analytics: true, ads: false });
  assert.equal(queued.s, "preference_center");

  svc.down = false;
  await consent.sync();
  const writes = svc.callsTo("PATCH", "/consent").filter(() => !svc.down);
  assert.deepEqual(writes.at(-1).body.decisions, { analytics: true, ads: false });
  assert.equal(svc.subjects.get("v_visitor1").revision, 1);
  assert.equal(consent.has("analytics"), true);
  assert.equal(consent.has("ads"), false);
});

test("a withdrawal made offline is kept too; a later choice folds it into one update", async () => {
  const { page, svc, consent } = await offlinePage({ retryDelays: [60_000] });
  await consent.sync().catch(() => {}); // offline: no policy, purposes from the cookie
  await consent.withdraw("preference_center");
  assert.equal(page.stored("consentd.queue").w, true);
  svc.down = false;
  await consent.sync();
  assert.equal(svc.callsTo("POST", "/consent:withdraw").length >= 1, true);
  assert.equal(consent.get().pending, false);

  svc.down = true;
  await consent.withdraw("preference_center");
  await consent.set({ analytics: true }, "preference_center");
  const queued = page.stored("consentd.queue");
  assert.equal(queued.w, undefined);
  assert.deepEqual(queued.d, { functional: false, analytics: true, ads: false, "marketing.email": false });
});

test("the browser's online event sends the queued choice at once", async () => {
  const { svc, consent } = await offlinePage({ retryDelays: [60_000] });
  await consent.set({ analytics: true });
  svc.down = false;
  dispatchEvent(new Event("online"));
  await until(() => !consent.get().pending);
  assert.equal(svc.subjects.get("v_visitor1").decisions.analytics, true);
});

test("sync() while the service is down rejects, and keeps the cached state", async () => {
  const { consent } = await offlinePage();
  const before = consent.get();
  await assert.rejects(consent.sync(), /Failed to fetch/);
  assert.deepEqual(consent.get(), before);
});

test("without localStorage (blocked) the queue lives in memory for the page", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { svc, consent } = await offlinePage({ retryDelays: [20] });
  localStorage.setItem = () => {
    throw new Error("SecurityError");
  };
  await consent.set({ analytics: true });
  assert.equal(consent.get().pending, true);
  svc.down = false;
  t.mock.timers.tick(20);
  await settled(() => !consent.get().pending);
  assert.equal(svc.subjects.get("v_visitor1").decisions.analytics, true);
});

test("a logged-in user's queued choice is never sent for another user who logs in on the same browser", async () => {
  const page = fakeBrowser();
  const svc = fakeConsentd();
  const alice = jwtFor("user:alice");
  const bob = jwtFor("user:bob");
  for (const [t, subject] of [[alice, "user:alice"], [bob, "user:bob"]]) svc.tokens.set(t, { subject, expires: new Date(Date.now() + 864e5) });

  const first = createConsent({ endpoint, token: alice, fetch: svc.fetch, retryDelays: [60_000] });
  await first.sync();
  svc.down = true;
  await first.set({ ads: true }, "preference_center");
  assert.equal(page.stored("consentd.queue").u, "user:alice");

  page.reload();
  svc.down = false;
  const next = createConsent({ endpoint, token: bob, fetch: svc.fetch });
  await next.sync();
  assert.equal(svc.callsTo("PATCH", "/consent").filter((c) => c.path.includes("bob")).length, 0);
  assert.equal(page.stored("consentd.queue"), null);
  assert.equal(next.get().subjectId, "user:bob");
  assert.equal(next.has("ads"), false);
  assert.equal(next.get().pending, false);
});

test("a site token the service no longer accepts keeps the choice queued for the next page's token", async () => {
  const page = fakeBrowser();
  const svc = fakeConsentd();
  const old = jwtFor("user:carol") + "old";
  const fresh = jwtFor("user:carol") + "new";
  svc.tokens.set(old, { subject: "user:carol", expires: new Date(Date.now() - 1) });
  const consent = createConsent({ endpoint, token: old, fetch: svc.fetch, retryDelays: [60_000] });
  const state = await consent.set({ analytics: true }, "banner");
  assert.equal(state.pending, true);

  page.reload();
  svc.tokens.set(fresh, { subject: "user:carol", expires: new Date(Date.now() + 864e5) });
  const next = createConsent({ endpoint, token: fresh, fetch: svc.fetch });
  await next.sync();
  assert.equal(next.get().pending, false);
  assert.equal(svc.subjects.get("user:carol").decisions.analytics, true);
});
