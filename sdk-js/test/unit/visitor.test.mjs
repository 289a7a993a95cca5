// Who the SDK speaks for: an anonymous visitor whose token it keeps in
// localStorage, or a logged-in user whose token the site's backend minted.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createConsent } from "../../dist/core.js";
import { fakeBrowser, fakeConsentd, jwtFor } from "./fake.mjs";

const endpoint = "https://consent.example/";
const DAY = 864e5;

test("nothing is fetched until sync() or a choice", () => {
  fakeBrowser();
  const svc = fakeConsentd();
  createConsent({ endpoint, fetch: svc.fetch });
  assert.equal(svc.calls.length, 0);
});

test("the first sync is one round trip: the policy (public) while a visitor is minted, whose answer comes with it; the token kept in localStorage, never a cookie", async () => {
  const page = fakeBrowser();
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint, region: "DE", fetch: svc.fetch });
  const state = await consent.sync();

  assert.deepEqual(
    svc.calls.map((c) => `${c.method} ${c.path}${c.query}`).sort(),
    ["GET /v1/policy", "POST /v1/visitors"],
    "no read of the new visitor's consent: the mint's answer is it",
  );
  const mint = svc.callsTo("POST", "/v1/visitors")[0];
  assert.equal(mint.auth, undefined, "minting a visitor needs no credentials");
  assert.deepEqual(mint.body, { region: "DE" }, "the answer is for the page's region");
  assert.equal(mint.headers["Content-Type"], undefined, "a CORS simple request: no preflight");
  assert.equal(svc.callsTo("GET", "/v1/policy")[0].auth, undefined, "the policy is public");
  const stored = page.stored("consentd.token");
  assert.equal(stored.subject_id, "v_visitor1");
  assert.ok(Date.parse(stored.expire_time) > Date.now() + 100 * DAY);
  assert.ok(![...page.jar.values()].some((c) => c.value.includes(stored.token)));

  assert.equal(state.subjectId, "v_visitor1");
  assert.equal(state.revision, 0);
  assert.deepEqual(state.purposes.analytics, { allowed: false, reason: "default" });
  assert.deepEqual(state.purposes.necessary, { allowed: true, reason: "necessary" });
  assert.equal(consent.policy().purposes.length, 5);
});

test("the policy is fetched once per page", async () => {
  fakeBrowser();
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  await Promise.all([consent.sync(), consent.sync()]);
  await consent.sync();
  assert.equal(svc.callsTo("GET", "/v1/policy").length, 1);
  assert.equal(svc.callsTo("POST", "/v1/visitors").length, 1, "concurrent calls share one new visitor");
});

test("the stored token is reused on the next page: no new visitor", async () => {
  const page = fakeBrowser();
  const svc = fakeConsentd();
  await createConsent({ endpoint, fetch: svc.fetch }).set({ analytics: true }, "banner");
  page.reload();
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  assert.equal(consent.has("analytics"), false, "the cookie's grant waits for the service");
  await consent.sync();
  assert.equal(svc.visitors, 1);
  assert.equal(consent.get().subjectId, "v_visitor1");
  assert.equal(consent.has("analytics"), true);
});

test("a token with less than 7 days left is refreshed before use", async () => {
  const page = fakeBrowser();
  const svc = fakeConsentd();
  const old = svc.mint("v_old", 3);
  page.storage.set("consentd.token", JSON.stringify({ subject_id: "v_old", ...old }));
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  await consent.sync();

  const refresh = svc.callsTo("POST", "/v1/tokens:refresh");
  assert.equal(refresh.length, 1);
  assert.equal(refresh[0].auth, "Bearer " + old.token);
  assert.deepEqual(refresh[0].body, {});
  const fresh = page.stored("consentd.token");
  assert.equal(fresh.subject_id, "v_old");
  assert.notEqual(fresh.token, old.token);
  assert.ok(Date.parse(fresh.expire_time) > Date.now() + 100 * DAY);
  assert.equal(svc.callsTo("GET", "/consent")[0].auth, "Bearer " + fresh.token);
  assert.equal(svc.visitors, 0);
});

test("a refresh that cannot reach the service keeps the old token while it lasts", async () => {
  const page = fakeBrowser();
  const svc = fakeConsentd();
  const old = svc.mint("v_old", 3);
  page.storage.set("consentd.token", JSON.stringify({ subject_id: "v_old", ...old }));
  const fetch = (url, init) => (url.endsWith(":refresh") ? Promise.reject(new TypeError("Failed to fetch")) : svc.fetch(url, init));
  const consent = createConsent({ endpoint, fetch });
  await consent.sync();
  assert.equal(consent.get().subjectId, "v_old");
  assert.equal(page.stored("consentd.token").token, old.token);
});

test("an expired or unreadable stored token is replaced by a new visitor", async () => {
  for (const stored of [{ subject_id: "v_old", token: "t", expire_time: new Date(Date.now() - DAY).toISOString() }, "{not json"]) {
    const page = fakeBrowser();
    const svc = fakeConsentd();
    page.storage.set("consentd.token", typeof stored == "string" ? stored : JSON.stringify(stored));
    const consent = createConsent({ endpoint, fetch: svc.fetch });
    await consent.sync();
    assert.equal(consent.get().subjectId, "v_visitor1");
    assert.equal(svc.callsTo("POST", "/v1/tokens:refresh").length, 0);
  }
});

test("a 401 on the stored token drops it and mints a new visitor: the old choices are gone and the banner asks again", async () => {
  const page = fakeBrowser();
  const svc = fakeConsentd();
  const first = createConsent({ endpoint, fetch: svc.fetch });
  await first.acceptAll("banner");
  assert.deepEqual(first.get().needsPrompt, []);

  svc.tokens.clear(); // e.g. the token key was retired
  page.reload();
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  assert.equal(consent.get().purposes.analytics.allowed, true, "the cookie still holds the grant");
  assert.equal(consent.has("analytics"), false, "but it counts only once the service confirms it");
  await consent.sync();
  assert.equal(consent.get().subjectId, "v_visitor2");
  assert.equal(page.stored("consentd.token").subject_id, "v_visitor2");
  assert.equal(consent.has("analytics"), false);
  assert.deepEqual(consent.get().needsPrompt, ["functional", "analytics", "ads"]);
  assert.match(page.cookie(), /^1\|v_visitor2\|0\|/);
});

test("a site token (logged-in user) is used as is, for the subject it is bound to; no visitor is minted", async () => {
  const page = fakeBrowser();
  const svc = fakeConsentd();
  const token = jwtFor("user:42");
  svc.tokens.set(token, { subject: "user:42", expires: new Date(Date.now() + DAY) });
  const consent = createConsent({ endpoint, token, fetch: svc.fetch });
  await consent.set({ analytics: true }, "preference_center");
  assert.equal(svc.visitors, 0);
  assert.equal(page.stored("consentd.token"), null);
  assert.deepEqual(svc.calls.map((c) => `${c.method} ${c.path}`), ["PATCH /v1/subjects/user%3A42/consent"]);
  assert.equal(svc.calls[0].auth, "Bearer " + token);
  assert.equal(consent.get().subjectId, "user:42");
});

test("a token function is asked again after a 401", async () => {
  fakeBrowser();
  const svc = fakeConsentd();
  const issued = [];
  const token = async () => {
    const t = jwtFor("user:7") + issued.length;
    svc.tokens.set(t, { subject: "user:7", expires: new Date(Date.now() + (issued.length ? DAY : -1)) });
    issued.push(t);
    return t;
  };
  const consent = createConsent({ endpoint, token, fetch: svc.fetch });
  await consent.sync();
  assert.equal(issued.length, 2, "the first token had expired");
  assert.equal(svc.calls.at(-1).auth, "Bearer " + issued[1]);
  assert.equal(consent.get().subjectId, "user:7");
});

test("the global fetch is called as a plain function, not as a method", async () => {
  fakeBrowser();
  const svc = fakeConsentd();
  const original = globalThis.fetch;
  const receivers = [];
  globalThis.fetch = function (url, init) {
    receivers.push(this);
    return svc.fetch(url, init);
  };
  try {
    await createConsent({ endpoint }).sync();
  } finally {
    globalThis.fetch = original;
  }
  assert.ok(receivers.length > 0);
  assert.ok(receivers.every((r) => r === undefined || r === globalThis));
});
