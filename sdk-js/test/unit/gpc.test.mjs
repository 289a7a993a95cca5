// Global Privacy Control: detected in the browser, sent with every write,
// reported once to the service, and shown when honoured.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createConsent } from "../../dist/core.js";
import { fakeBrowser, fakeConsentd } from "./fake.mjs";

const endpoint = "https://consent.example";

test("navigator.globalPrivacyControl === true sets state.gpc", () => {
  fakeBrowser({ gpc: true });
  assert.equal(createConsent({ endpoint }).get().gpc, true);
  fakeBrowser({ gpc: false });
  assert.equal(createConsent({ endpoint }).get().gpc, false);
  fakeBrowser({ gpc: "1" });
  assert.equal(createConsent({ endpoint }).get().gpc, false, "only the boolean true is the signal");
});

test("sync() records the signal once when the service has no GPC time for the subject", async () => {
  fakeBrowser({ gpc: true });
  const svc = fakeConsentd({ mechanism: "opt_out" });
  const consent = createConsent({ endpoint, region: "US-CA", fetch: svc.fetch });
  assert.equal(consent.has("ads"), false, "nothing cached yet");
  await consent.sync();

  const reports = svc.callsTo("PATCH", "/v1/subjects/v_visitor1/consent");
  assert.equal(reports.length, 1);
  const { idempotency_key, ...body } = reports[0].body;
  assert.deepEqual(body, { source: "SOURCE_API", decisions: {}, gpc: true, region: "US-CA" });
  assert.ok(idempotency_key, "sent with an idempotency key: a retry records it once");
  assert.ok(svc.subjects.get("v_visitor1").gpcTime);
  assert.deepEqual(consent.get().purposes.ads, { allowed: false, reason: "gpc" });
  assert.equal(consent.get().gpcHonoured, true);
  assert.equal(consent.has("analytics"), true, "GPC opts out of GPC purposes only");

  await consent.sync();
  assert.equal(svc.callsTo("PATCH", "/consent").length, 1, "not again: the service has it");
});

test("no report without the signal", async () => {
  fakeBrowser({ gpc: false });
  const svc = fakeConsentd({ mechanism: "opt_out" });
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  await consent.sync();
  assert.equal(svc.callsTo("PATCH", "/consent").length, 0);
  assert.equal(consent.get().gpcHonoured, false);
});

test("every write carries gpc: true while the browser sends the signal", async () => {
  fakeBrowser({ gpc: true });
  const svc = fakeConsentd();
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  await consent.set({ analytics: true }, "banner");
  await consent.withdraw("preference_center");
  assert.equal(svc.callsTo("PATCH", "/consent")[0].body.gpc, true);
  assert.equal(svc.callsTo("POST", "/consent:withdraw")[0].body.gpc, true);
  await consent.sync();
  assert.equal(svc.callsTo("PATCH", "/consent").length, 1, "the writes recorded it: no separate report");
});

test("a failed report is tried again at the next sync", async () => {
  fakeBrowser({ gpc: true });
  const svc = fakeConsentd({ mechanism: "opt_out" });
  let failReport = true;
  const fetch = async (url, init) => {
    if (init?.method === "PATCH" && failReport) {
      failReport = false;
      return new Response("{}", { status: 503 });
    }
    return svc.fetch(url, init);
  };
  const consent = createConsent({ endpoint, fetch });
  await consent.sync();
  assert.equal(consent.get().gpcHonoured, false);
  await consent.sync();
  assert.equal(consent.get().gpcHonoured, true);
});

test("an explicit grant after GPC wins, and gpcHonoured follows", async () => {
  fakeBrowser({ gpc: true });
  const svc = fakeConsentd({ mechanism: "opt_out" });
  const consent = createConsent({ endpoint, fetch: svc.fetch });
  await consent.sync();
  assert.equal(consent.get().gpcHonoured, true);
  await consent.set({ ads: true }, "preference_center");
  assert.equal(consent.has("ads"), true);
  assert.equal(consent.get().gpcHonoured, false);
});

test("in an opt-out region, nothing GPC opts out of is allowed even for a moment: the signal is recorded before the answer is obeyed", async () => {
  fakeBrowser({ gpc: true });
  const svc = fakeConsentd({ mechanism: "opt_out" });
  const consent = createConsent({ endpoint, region: "US-CA", fetch: svc.fetch });
  const seen = [];
  consent.on("change", ({ state }) => seen.push(state.purposes.ads?.allowed));
  await consent.sync();
  assert.ok(seen.length > 0);
  assert.ok(seen.every((allowed) => allowed !== true), `ads allowed at some point: ${seen}`);
});
