// The cookie is a cache, the service is the truth: a grant read from the
// cookie counts only once the service confirmed it on this page view (one
// conditional request, 304 when unchanged); a denial counts at once; a
// withdrawal made elsewhere wins before anything gated runs; the policy is
// cached for offline use; tabs keep in step.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createConsent } from "../../dist/core.js";
import { answerTag, fakeBrowser, fakeConsentd, settled, until } from "./fake.mjs";

const endpoint = "https://consent.example";

/** A visitor who accepted analytics on an earlier page; this is the next page. */
async function returningVisitor(opts = {}) {
  const page = fakeBrowser(opts.browser);
  const svc = fakeConsentd();
  const first = createConsent({ endpoint, fetch: svc.fetch });
  await first.sync();
  await first.set({ functional: false, analytics: true, ads: false }, "banner");
  page.reload(opts.browser);
  svc.calls.length = 0;
  return { page, svc, first, next: () => createConsent({ endpoint, fetch: svc.fetch, retryDelays: [20, 40], ...opts.consent }) };
}

test("a returning visitor's cached grant waits for the service; a 304 to the conditional read confirms it", async () => {
  const { svc, next } = await returningVisitor();
  const consent = next();
  const changes = [];
  consent.on("change", ({ state }) => changes.push(state));
  assert.equal(consent.get().purposes.analytics.allowed, true, "the cookie holds the grant");
  assert.equal(consent.has("analytics"), false, "not used before the service confirms it");
  assert.equal(consent.has("ads"), false);
  assert.equal(consent.has("necessary"), true);

  await consent.sync();
  const [read] = svc.callsTo("GET", "/v1/subjects/v_visitor1/consent");
  const expected = answerTag({ revision: "1", purposes: [
    { purpose: "necessary", allowed: true, reason: "REASON_NECESSARY" },
    { purpose: "functional", allowed: false, reason: "REASON_EXPLICIT" },
    { purpose: "analytics", allowed: true, reason: "REASON_EXPLICIT" },
    { purpose: "ads", allowed: false, reason: "REASON_EXPLICIT" },
    { purpose: "marketing.email", allowed: false, reason: "REASON_DEFAULT" },
  ] });
  assert.equal(read.headers["If-None-Match"], expected, "the cookie's answer is the ETag it revalidates");
  assert.equal(consent.get().confirmed, true);
  assert.equal(consent.has("analytics"), true);
  assert.ok(changes.some((s) => s.confirmed), "the confirmation is a change (enforcement activates on it)");
});

test("a withdrawal made elsewhere wins: the revalidation's answer denies before the grant was ever used", async () => {
  const { page, svc, next } = await returningVisitor();
  svc.subjects.get("v_visitor1").decisions.analytics = false; // a backend or another device withdrew
  svc.subjects.get("v_visitor1").revision++;
  const consent = next();
  const seen = [];
  consent.on("change", () => seen.push(consent.has("analytics")));
  await consent.sync();
  assert.deepEqual(seen.filter(Boolean), [], "analytics was never allowed on this page");
  assert.equal(consent.get().purposes.analytics.allowed, false);
  assert.match(page.cookie(), /\|2\|.*analytics:e/);
});

test("consentd unreachable: the cached grant stays withheld (fail closed), denials hold, and a retry confirms it once it answers", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { svc, next } = await returningVisitor(); // backoff 20 ms, then 40 ms
  svc.down = true;
  const consent = next();
  await assert.rejects(consent.sync());
  assert.equal(consent.has("analytics"), false, "withheld");
  assert.equal(consent.get().needsPrompt.length, 0, "no banner: the person has decided");
  svc.down = false;
  t.mock.timers.tick(20);
  await settled(() => consent.has("analytics"));
  assert.equal(consent.get().confirmed, true);
});

test("a request consentd does not answer ends after the timeout, and counts as unreachable", async () => {
  const page = fakeBrowser();
  let aborted = 0;
  const hang = (_url, init) => new Promise((_, reject) => {
    init.signal.addEventListener("abort", () => {
      aborted++;
      reject(init.signal.reason);
    });
  });
  const consent = createConsent({ endpoint, fetch: hang, timeout: 30, retryDelays: [60_000] });
  const alive = setInterval(() => {}, 1000); // AbortSignal.timeout's timer does not keep Node running
  await assert.rejects(consent.sync(), /timed out|abort/i).finally(() => clearInterval(alive));
  assert.ok(aborted >= 1);
  assert.equal(page.stored("consentd.queue"), null);
});

test("a choice made on this page counts at once, confirmed or not", async () => {
  const { svc, next } = await returningVisitor();
  svc.down = true;
  const consent = next();
  await consent.set({ ads: true }, "preference_center");
  assert.equal(consent.has("ads"), true, "the person's own choice here");
  assert.equal(consent.has("analytics"), false, "the cookie's older grant still waits");
});

test("the GPC signal is not revalidated by ETag: the full answer says whether the service has it", async () => {
  const { svc, next } = await returningVisitor({ browser: { gpc: true } });
  await next().sync();
  const [read] = svc.callsTo("GET", "/consent");
  assert.equal(read.headers["If-None-Match"], undefined);
});

test("the policy is cached with its ETag: the next page has it before any network call, and revalidates it", async () => {
  const { svc, next } = await returningVisitor();
  const consent = next();
  assert.equal(consent.policy()?.version, "test-1", "from localStorage, at once");
  assert.deepEqual(consent.asked(), ["functional", "analytics", "ads"]);
  await consent.sync();
  const [read] = svc.callsTo("GET", "/v1/policy");
  assert.equal(read.headers["If-None-Match"], '"test-1"');
  assert.equal(consent.policy()?.version, "test-1", "kept on 304");
});

test("offline with a cached policy: reject all and withdraw are queued and delivered once", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { svc, next } = await returningVisitor();
  svc.down = true;
  const consent = next();
  await consent.rejectAll("banner");
  assert.equal(consent.get().pending, true);
  assert.equal(consent.has("analytics"), false);
  svc.down = false;
  t.mock.timers.tick(20);
  await settled(() => !consent.get().pending);
  assert.equal(svc.subjects.get("v_visitor1").decisions.analytics, false);
  assert.equal(svc.callsTo("PATCH", "/consent").filter((c) => c.body.decisions?.analytics === false).length >= 1, true);
});

test("a first visit with consentd unreachable: everything denied, reject all queued (as a withdrawal) and delivered once a visitor can be created", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const page = fakeBrowser();
  const svc = fakeConsentd();
  svc.down = true;
  const consent = createConsent({ endpoint, fetch: svc.fetch, retryDelays: [20, 40] });
  await assert.rejects(consent.sync());
  assert.equal(consent.has("analytics"), false);
  assert.equal(consent.policy(), null);
  await consent.rejectAll("banner");
  assert.equal(page.stored("consentd.queue").w, true);
  svc.down = false;
  t.mock.timers.tick(40); // the sync and the rejection both failed: the second step
  await settled(() => !consent.get().pending && consent.policy());
  assert.equal(svc.visitors, 1);
  assert.equal(svc.callsTo("POST", "/consent:withdraw").filter((c) => !c.headers.Authorization?.includes("undefined")).length >= 1, true);
  assert.equal(svc.subjects.get("v_visitor1").revision, 1, "applied once");
  assert.deepEqual(consent.get().needsPrompt, [], "decided: no banner");
});

test("choice() is the person's own decision; a region's default is not a choice", async () => {
  fakeBrowser();
  const svc = fakeConsentd({ mechanism: "opt_out" });
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  await consent.sync();
  assert.equal(consent.has("marketing.email"), true, "allowed by default in an opt-out region");
  assert.equal(consent.choice("marketing.email"), undefined, "but nobody subscribed");
  await consent.set({ "marketing.email": true }, "preference_center");
  assert.equal(consent.choice("marketing.email"), true);
  await consent.set({ "marketing.email": false }, "preference_center");
  assert.equal(consent.choice("marketing.email"), false);
});

test("tabs keep in step: a choice in one tab reaches the other at once, pending included", async () => {
  const page = fakeBrowser({ tabs: true });
  const svc = fakeConsentd();
  const a = createConsent({ endpoint, fetch: svc.fetch, retryDelays: [60_000] });
  await a.sync();
  const b = createConsent({ endpoint, fetch: svc.fetch, retryDelays: [60_000] });
  await b.sync();
  svc.down = true;
  await a.set({ analytics: true }, "banner");
  await until(() => b.has("analytics") && b.get().pending);
  svc.down = false;
  await a.sync();
  await until(() => !b.get().pending);
  assert.equal(b.get().revision, 1);
  assert.ok(page);
});

test("after the site links the visitor to an account, its answer (the account's, at a lower revision) is taken, and linked", async () => {
  fakeBrowser();
  const svc = fakeConsentd();
  let linked = null; // once set, the service answers the visitor's reads from the account
  const fetch = async (url, init = {}) => {
    if (linked && (init.method || "GET") === "GET" && new URL(url).pathname.endsWith("/consent")) {
      return new Response(JSON.stringify({ consent: linked }), { status: 200 });
    }
    return svc.fetch(url, init);
  };
  const consent = createConsent({ endpoint, fetch });
  await consent.sync();
  for (const analytics of [true, false, true]) await consent.set({ analytics }, "banner");
  assert.equal(consent.get().revision, 3);

  linked = {
    subject_id: "v_visitor1", revision: "1", linked: true,
    purposes: [{ purpose: "analytics", allowed: false, reason: "REASON_EXPLICIT" }],
  };
  await consent.sync();
  assert.equal(consent.get().linked, true);
  assert.equal(consent.get().revision, 1);
  assert.equal(consent.has("analytics"), false, "the account's denial wins");
});
