// Choices: applied to the page at once, then stored at the service.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createConsent, encodeCookie } from "../../dist/core.js";
import { fakeBrowser, fakeConsentd, until } from "./fake.mjs";

const endpoint = "https://consent.example";

test("set() applies the choice at once (state, cookie, change event), then stores it at the service", async () => {
  const page = fakeBrowser();
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint, region: "DE", fetch: svc.fetch });
  await consent.sync();
  const events = [];
  consent.on("change", (e) => events.push(e));

  const written = consent.set({ analytics: true, ads: false }, "preference_center");
  // Synchronously, before the service answers: enforcement reacts now.
  assert.equal(consent.has("analytics"), true);
  assert.deepEqual(consent.get().purposes.analytics, { allowed: true, reason: "explicit" });
  assert.equal(consent.get().pending, true);
  assert.match(page.cookie(), /analytics:E/);
  assert.equal(events.length, 1);
  assert.equal(events[0].previous.purposes.analytics.allowed, false);
  assert.equal(events[0].state.purposes.analytics.allowed, true);

  const state = await written;
  const patch = svc.callsTo("PATCH", "/v1/subjects/v_visitor1/consent");
  assert.equal(patch.length, 1);
  assert.deepEqual(Object.keys(patch[0].body).sort(), ["decisions", "idempotency_key", "region", "source"]);
  assert.deepEqual(patch[0].body.decisions, { analytics: true, ads: false });
  assert.equal(patch[0].body.source, "SOURCE_PREFERENCE_CENTER");
  assert.equal(patch[0].body.region, "DE");
  assert.match(patch[0].body.idempotency_key, /^\d{1,10}(-\d{1,10}){3}$/);
  assert.equal(patch[0].headers["Content-Type"], undefined, "a JSON string body, sent as fetch's text/plain (consentd reads it as JSON)");
  assert.equal(state.revision, 1, "the service's answer is taken");
  assert.equal(state.pending, false);
  assert.match(page.cookie(), /^1\|v_visitor1\|1\|/);
  assert.equal(events.length, 2);
});

test("a choice before any sync mints the visitor itself", async () => {
  fakeBrowser();
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  const state = await consent.set({ analytics: true });
  assert.equal(svc.calls[0].path, "/v1/visitors");
  assert.equal(svc.callsTo("PATCH", "/consent")[0].body.source, "SOURCE_API");
  assert.equal(state.subjectId, "v_visitor1");
  assert.equal(consent.has("analytics"), true);
});

test("every choice gets its own idempotency key", async () => {
  fakeBrowser();
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  await consent.set({ analytics: true });
  await consent.set({ analytics: true });
  const [a, b] = svc.callsTo("PATCH", "/consent").map((c) => c.body.idempotency_key);
  assert.notEqual(a, b);
  assert.equal(consent.get().revision, 2);
});

test("necessary is never sent as denied", async () => {
  fakeBrowser();
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  await consent.set({ necessary: false, analytics: false }, "preference_center");
  assert.deepEqual(svc.callsTo("PATCH", "/consent")[0].body.decisions, { analytics: false });
  assert.equal(consent.has("necessary"), true);
});

test("acceptAll and rejectAll set every purpose the banner asks about", async () => {
  fakeBrowser();
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  await consent.sync();
  await consent.acceptAll("banner");
  assert.deepEqual(svc.callsTo("PATCH", "/consent")[0].body.decisions, { functional: true, analytics: true, ads: true });
  assert.equal(svc.callsTo("PATCH", "/consent")[0].body.source, "SOURCE_BANNER");
  assert.deepEqual(consent.get().needsPrompt, []);
  assert.equal(consent.has("marketing.email"), false, "accepting cookies subscribes to no newsletter");

  await consent.rejectAll("banner");
  assert.deepEqual(svc.callsTo("PATCH", "/consent")[1].body.decisions, { functional: false, analytics: false, ads: false });
  assert.equal(consent.has("analytics"), false);
});

test("acceptAll before the policy is fetched uses the purposes of the cached cookie", async () => {
  fakeBrowser();
  const cached = {
    subjectId: null,
    revision: 0,
    purposes: { necessary: { allowed: true, reason: "necessary" }, analytics: { allowed: false, reason: "default" }, ads: { allowed: false, reason: "default" } },
  };
  document.cookie = `consentd=${encodeCookie(cached)}; Path=/`;
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  const done = consent.acceptAll("banner");
  assert.equal(consent.has("analytics"), true, "applied before any network call");
  await done;
  assert.equal(svc.callsTo("GET", "/v1/policy").length, 0);
  assert.deepEqual(svc.callsTo("PATCH", "/consent")[0].body.decisions, { analytics: true, ads: true });
});

test("acceptAll with neither policy nor cookie fetches the policy first", async () => {
  fakeBrowser();
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  await consent.acceptAll("banner");
  assert.deepEqual(svc.callsTo("PATCH", "/consent")[0].body.decisions, { functional: true, analytics: true, ads: true });
});

test("withdraw() denies every non-necessary purpose at once, through consent:withdraw", async () => {
  fakeBrowser();
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  await consent.sync();
  await consent.acceptAll("banner");
  await consent.set({ "marketing.email": true }, "api");

  const done = consent.withdraw("preference_center");
  for (const id of ["functional", "analytics", "ads", "marketing.email"]) assert.equal(consent.has(id), false, id);
  assert.equal(consent.has("necessary"), true);
  await done;
  const [call] = svc.callsTo("POST", "/v1/subjects/v_visitor1/consent:withdraw");
  assert.equal(call.body.source, "SOURCE_PREFERENCE_CENTER");
  assert.match(call.body.idempotency_key, /^\d{1,10}(-\d{1,10}){3}$/);
  assert.equal(call.body.decisions, undefined);
  assert.equal(consent.get().revision, 3);
  assert.equal(consent.has("marketing.email"), false);
});

test("on('change') returns an unsubscribe function; a throwing listener does not stop the others", async (t) => {
  fakeBrowser();
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  // The core rethrows a listener's error from a timer, so that it is
  // reported without stopping the other listeners: catch it there.
  const rethrown = [];
  const realSetTimeout = globalThis.setTimeout;
  t.after(() => (globalThis.setTimeout = realSetTimeout));
  globalThis.setTimeout = (fn, ms, ...args) => {
    if (ms !== undefined) return realSetTimeout(fn, ms, ...args);
    try {
      fn();
    } catch (err) {
      rethrown.push(err);
    }
  };
  const seen = [];
  const off = consent.on("change", () => seen.push("a"));
  const offBroken = consent.on("change", () => {
    throw new Error("broken listener");
  });
  consent.on("change", () => seen.push("c"));
  await consent.set({ analytics: true }); // two changes: applied, then acknowledged
  assert.deepEqual(seen, ["a", "c", "a", "c"]);
  assert.equal(rethrown[0].message, "broken listener", "the error is not swallowed");
  off();
  offBroken();
  await consent.set({ analytics: false });
  assert.deepEqual(seen, ["a", "c", "a", "c", "c", "c"]);
});

test("a sync that changes nothing emits no change", async () => {
  fakeBrowser();
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  await consent.sync();
  let changes = 0;
  consent.on("change", () => changes++);
  await consent.sync();
  assert.equal(changes, 0);
});

test("a slow read cannot undo a newer write", async () => {
  fakeBrowser();
  const svc = fakeConsentd();
  let releaseRead;
  const slow = (url, init = {}) => {
    if ((init.method || "GET") === "GET" && new URL(url).pathname.endsWith("/consent")) {
      const answer = svc.fetch(url, init); // read now: the state before the write
      return new Promise((r) => (releaseRead = () => r(answer)));
    }
    return svc.fetch(url, init);
  };
  const consent = createConsent({ endpoint, fetch: slow });
  await consent.set({ analytics: true });
  const syncing = consent.sync();
  await until(() => releaseRead); // the read is out
  await consent.set({ ads: true });
  releaseRead();
  await syncing;
  assert.equal(consent.has("ads"), true);
  assert.equal(consent.get().revision, 2);
});

test("a choice the service refuses (400) is dropped and the page returns to the service's state", async () => {
  fakeBrowser();
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  await consent.sync();
  await assert.rejects(consent.set({ nonsense: true }), /400 decisions: unknown purpose nonsense/);
  assert.equal(consent.get().pending, false);
  assert.equal(consent.has("nonsense"), false);
  assert.equal(localStorage.getItem("consentd.queue"), null);
});

test("the policy's arrival is a change even when the state is the same (the UI renders from it)", async () => {
  fakeBrowser();
  const svc = fakeConsentd();
  let releasePolicy;
  const fetch = (url, init) => {
    if (new URL(url).pathname === "/v1/policy") return new Promise((r) => (releasePolicy = () => r(svc.fetch(url, init))));
    return svc.fetch(url, init);
  };
  const consent = createConsent({ endpoint, fetch });
  await consent.set({ analytics: true }); // answered before the policy is asked for
  const seen = [];
  consent.on("change", () => seen.push(consent.policy() ? "with policy" : "without policy"));
  const syncing = consent.sync();
  await until(() => releasePolicy);
  releasePolicy();
  await syncing;
  assert.deepEqual(seen, ["with policy"]);
  await consent.sync();
  assert.deepEqual(seen, ["with policy"], "announced once");
});
