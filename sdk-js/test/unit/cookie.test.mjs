// The first-party cookie caches the state so the page can enforce before
// any network call.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createConsent, decodeCookie, encodeCookie, needsPrompt } from "../../dist/core.js";
import { fakeBrowser, fakeConsentd } from "./fake.mjs";

const cached = {
  subjectId: "v_4FqKx9Zr2LmN8pQw1tYb3c",
  revision: 3,
  purposes: {
    necessary: { allowed: true, reason: "necessary" },
    functional: { allowed: false, reason: "explicit" },
    analytics: { allowed: true, reason: "explicit" },
    ads: { allowed: false, reason: "gpc" },
    "marketing.email": { allowed: false, reason: "default" },
  },
};

test("the cookie round-trips subject, revision and every purpose's answer and reason, compactly and versioned", () => {
  const value = encodeCookie(cached);
  assert.equal(value, "1|v_4FqKx9Zr2LmN8pQw1tYb3c|3|necessary:N/functional:e/analytics:E/ads:g/marketing.email:d");
  assert.deepEqual(decodeCookie(value), cached);
  for (const reason of ["explicit", "default", "gpc", "expired", "policy_changed", "necessary", "restricted", "awaiting_guardian"]) {
    for (const allowed of [true, false]) {
      const state = { subjectId: null, revision: 0, purposes: { analytics: { allowed, reason } } };
      assert.deepEqual(decodeCookie(encodeCookie(state)), state);
    }
  }
});

test("a corrupt or foreign cookie is ignored", () => {
  for (const value of [
    "",
    "garbage",
    "2|v_1|3|analytics:E", // a future version
    "1|v_1|3", // truncated
    "1|v_1|-1|analytics:E",
    "1|v_1|x|analytics:E",
    "1|v 1|3|analytics:E", // not a subject id
    "1|v_1|3|analytics:Q", // no such reason
    "1|v_1|3|Analytics:E",
    "1|v_1|3|analytics:E|extra",
    "%7B%22a%22%3A1%7D",
  ]) {
    assert.equal(decodeCookie(value), null, value);
  }
  const page = fakeBrowser();
  document.cookie = "consentd=1|v_1|3|analytics:Q; Path=/";
  const consent = createConsent({ endpoint: "https://consent.example", fetch: fakeConsentd().fetch });
  assert.equal(consent.get().subjectId, null);
  assert.equal(consent.has("analytics"), false);
  assert.ok(page.cookie());
});

test("createConsent reads the cached state synchronously from the cookie, before any network call", () => {
  fakeBrowser();
  document.cookie = `other=1; Path=/`;
  document.cookie = `consentd=${encodeCookie(cached)}; Path=/`;
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint: "https://consent.example", fetch: svc.fetch });
  assert.equal(svc.calls.length, 0);
  assert.equal(consent.get().subjectId, cached.subjectId);
  assert.equal(consent.get().revision, 3);
  assert.equal(consent.get().purposes.analytics.allowed, true, "the cached answer");
  assert.equal(consent.get().confirmed, false);
  assert.equal(consent.has("analytics"), false, "a cached grant waits for the service to confirm it");
  assert.equal(consent.has("functional"), false);
  assert.equal(consent.has("unknown"), false, "purposes missing are not allowed");
  assert.equal(consent.has("necessary"), true);
  assert.equal(consent.get().gpcHonoured, true);
  assert.equal(consent.get().pending, false);
  assert.equal(consent.policy(), null);
});

test("a custom cookie name is read and written", async () => {
  const page = fakeBrowser();
  document.cookie = `site_consent=${encodeCookie(cached)}; Path=/`;
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint: "https://consent.example", fetch: svc.fetch, cookieName: "site_consent", cookieDomain: ".shop.example", cookieDays: 30 });
  assert.equal(consent.get().purposes.analytics.allowed, true);
  await consent.sync();
  const written = page.cookieWrites.at(-1);
  assert.match(written, /^site_consent=1\|v_visitor1\|0\|/);
  assert.match(written, /; Path=\/; Max-Age=2592000; SameSite=Lax; Domain=\.shop\.example; Secure$/);
});

test("the cookie holds the state and never the token", async () => {
  const page = fakeBrowser();
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint: "https://consent.example", fetch: svc.fetch });
  await consent.sync();
  const value = page.cookie();
  const { token } = page.stored("consentd.token");
  assert.ok(token);
  assert.ok(!value.includes(token));
  assert.deepEqual(decodeCookie(value), { subjectId: "v_visitor1", revision: 0, purposes: consent.get().purposes });
  assert.ok(value.length < 120, `cookie is ${value.length} bytes`);
});

test("needsPrompt: undecided-and-denied, expired and policy-changed purposes; never necessary, allowed defaults or explicit answers", () => {
  const all = () => true;
  const purposes = {
    necessary: { allowed: true, reason: "necessary" },
    functional: { allowed: false, reason: "default" }, // opt-in region, never asked
    analytics: { allowed: false, reason: "expired" }, // a stale denial is honoured, but asked again
    ads: { allowed: false, reason: "policy_changed" },
    video: { allowed: true, reason: "default" }, // opt-out region: allowed until denied
    chat: { allowed: false, reason: "explicit" },
    maps: { allowed: true, reason: "explicit" },
    social: { allowed: false, reason: "gpc" },
  };
  assert.deepEqual(needsPrompt(purposes, all), ["functional", "analytics", "ads"]);
});

test("the banner asks about cookie purposes only: communication channels (dotted ids) are asked where people subscribe", async () => {
  fakeBrowser();
  const svc = fakeConsentd({ mechanism: "opt_in" });
  const consent = createConsent({ endpoint: "https://consent.example", fetch: svc.fetch });
  await consent.sync();
  assert.deepEqual(consent.get().needsPrompt, ["functional", "analytics", "ads"]);
  assert.deepEqual(Object.keys(consent.get().purposes), ["necessary", "functional", "analytics", "ads", "marketing.email"]);

  fakeBrowser();
  const custom = createConsent({ endpoint: "https://consent.example", fetch: svc.fetch, askFor: ["analytics", "marketing.email"] });
  await custom.sync();
  assert.deepEqual(custom.get().needsPrompt, ["analytics", "marketing.email"]);
});

test("an opt-out region with nothing decided needs no prompt", async () => {
  fakeBrowser();
  const consent = createConsent({ endpoint: "https://consent.example", region: "US-CA", fetch: fakeConsentd({ mechanism: "opt_out" }).fetch });
  await consent.sync();
  assert.deepEqual(consent.get().needsPrompt, []);
  assert.equal(consent.has("ads"), true);
});

test("sync() asks again for an expired or policy-changed purpose only", async () => {
  fakeBrowser();
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint: "https://consent.example", fetch: svc.fetch });
  await consent.acceptAll("banner");
  assert.deepEqual(consent.get().needsPrompt, []);
  svc.reasons.analytics = [false, "REASON_POLICY_CHANGED"];
  svc.reasons.ads = [false, "REASON_EXPIRED"];
  await consent.sync();
  assert.deepEqual(consent.get().needsPrompt, ["analytics", "ads"]);
  assert.equal(consent.has("functional"), true);
  assert.equal(consent.has("analytics"), false);
});
