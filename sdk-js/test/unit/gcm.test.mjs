// Google Consent Mode v2: denied by default before any tag, updated from the
// visitor's state on load and on every change.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createConsent, encodeCookie } from "../../dist/core.js";
import { consentMode, consentModeDefault, consentSignals, defaultMapping } from "../../dist/gcm.js";
import { fakeBrowser, fakeConsentd } from "./fake.mjs";

const endpoint = "https://consent.example";
const SIGNALS = ["ad_storage", "ad_user_data", "ad_personalization", "analytics_storage", "functionality_storage", "personalization_storage", "security_storage"];

function recorder() {
  const calls = [];
  const gtag = (...args) => calls.push(args);
  return { calls, gtag };
}

test("consentModeDefault denies six signals and grants security_storage (necessary), with wait_for_update 500 by default", () => {
  fakeBrowser();
  const { calls, gtag } = recorder();
  consentModeDefault({ gtag });
  assert.equal(calls.length, 1);
  const [command, type, params] = calls[0];
  assert.equal(command, "consent");
  assert.equal(type, "default");
  assert.deepEqual(Object.keys(params).filter((k) => k !== "wait_for_update").sort(), [...SIGNALS].sort());
  assert.ok(SIGNALS.every((s) => params[s] === (s === "security_storage" ? "granted" : "denied")));
  assert.equal(params.wait_for_update, 500);

  consentModeDefault({ gtag, waitForUpdate: 1000, region: ["DE", "FR"] });
  assert.equal(calls[1][2].wait_for_update, 1000);
  assert.deepEqual(calls[1][2].region, ["DE", "FR"]);
});

test("without a gtag, consentModeDefault creates dataLayer and the official snippet's gtag, which pushes the arguments object", () => {
  fakeBrowser();
  delete globalThis.gtag;
  delete globalThis.dataLayer;
  consentModeDefault();
  assert.equal(typeof globalThis.gtag, "function");
  assert.equal(globalThis.dataLayer.length, 1);
  const pushed = globalThis.dataLayer[0];
  assert.equal(Object.prototype.toString.call(pushed), "[object Arguments]", "Google's tag reads Arguments, not arrays");
  assert.equal(pushed[0], "consent");
  assert.equal(pushed[1], "default");

  const existing = [];
  globalThis.gtag = (...a) => existing.push(a);
  consentModeDefault();
  assert.equal(existing.length, 1, "the page's own gtag is used");
  delete globalThis.gtag;
  delete globalThis.dataLayer;
});

test("a signal is granted when all its mapped purposes are allowed; security_storage always", () => {
  const has = (allowed) => ({ has: (p) => p === "necessary" || allowed.includes(p) });
  assert.deepEqual(consentSignals(has([])), {
    ad_storage: "denied",
    ad_user_data: "denied",
    ad_personalization: "denied",
    analytics_storage: "denied",
    functionality_storage: "denied",
    personalization_storage: "denied",
    security_storage: "granted",
  });
  const some = consentSignals(has(["analytics", "functional"]));
  assert.equal(some.analytics_storage, "granted");
  assert.equal(some.functionality_storage, "granted");
  assert.equal(some.personalization_storage, "granted");
  assert.equal(some.ad_storage, "denied");
  assert.ok(Object.values(consentSignals(has(["ads", "analytics", "functional"]))).every((v) => v === "granted"));
  assert.deepEqual(defaultMapping.ad_user_data, ["ads"]);
});

test("the mapping is configurable, and a signal may need several purposes", () => {
  const allowed = { ads: true, analytics: false };
  const consent = { has: (p) => !!allowed[p], get: () => ({ revision: 2, purposes: {} }), on: () => () => {} };
  const { calls, gtag } = recorder();
  consentMode(consent, { gtag, mapping: { ad_personalization: ["ads", "analytics"] } });
  assert.equal(calls[0][2].ad_storage, "granted");
  assert.equal(calls[0][2].ad_personalization, "denied");
});

test("consentMode updates at once from the cached state (its grants once the service confirms them), then on every change that changes a signal", async () => {
  const page = fakeBrowser();
  const svc = fakeConsentd();
  // A returning visitor: analytics granted on an earlier page.
  svc.subjects.set("v_1", { revision: 2, decisions: { functional: false, analytics: true, ads: false }, gpcTime: null });
  page.storage.set("consentd.token", JSON.stringify({ subject_id: "v_1", ...svc.mint("v_1") }));
  const cached = {
    functional: { allowed: false, reason: "explicit" },
    analytics: { allowed: true, reason: "explicit" },
    ads: { allowed: false, reason: "explicit" },
  };
  document.cookie = `consentd=${encodeCookie({ subjectId: "v_1", revision: 2, purposes: cached })}; Path=/`;
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  const { calls, gtag } = recorder();
  const stop = consentMode(consent, { gtag });

  assert.equal(calls.length, 1, "before any network call");
  assert.deepEqual(calls[0].slice(0, 2), ["consent", "update"]);
  assert.equal(calls[0][2].analytics_storage, "denied", "the cached grant waits for the service");
  assert.equal(calls[0][2].security_storage, "granted");

  await consent.sync();
  assert.equal(calls.length, 2);
  assert.equal(calls[1][2].analytics_storage, "granted", "confirmed by the service");

  await consent.acceptAll("banner"); // two change events, one new set of signals
  assert.equal(calls.length, 3);
  assert.ok(Object.values(calls[2][2]).every((v) => v === "granted"));

  await consent.rejectAll("banner");
  assert.equal(calls.length, 4);
  assert.equal(calls[3][2].ad_storage, "denied");

  stop();
  await consent.acceptAll("banner");
  assert.equal(calls.length, 4, "stopped");
});

test("consentMode sends nothing on a first visit before any state is known", async () => {
  fakeBrowser();
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  const { calls, gtag } = recorder();
  consentMode(consent, { gtag });
  assert.equal(calls.length, 0, "the defaults stand: wait_for_update holds the tags");
  await consent.sync();
  assert.equal(calls.length, 1, "the service's answer is an update");
  assert.equal(calls[0][2].analytics_storage, "denied");
});
