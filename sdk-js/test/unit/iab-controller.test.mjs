// attachIAB with the core against an in-memory consentd: the CMP APIs
// (__tcfapi, __gpp) answer from the choices, the strings go to
// POST /v1/subjects/{id}/consent:signals once per confirmed change (not
// again after a reload), a 409 rebuilds from the newer state, and reject
// all / withdraw forget the per-vendor choices.

import assert from "node:assert/strict";
import { test } from "node:test";
import { GppModel } from "@iabgpp/cmpapi";
import { TCString } from "@iabtechlabtcf/core";
import { createConsent } from "../../dist/core.js";
import { attachIAB } from "../../dist/iab.js";
import { fakeBrowser, fakeConsentd, until } from "./fake.mjs";
import { gvlFile, iab as serverIab } from "./iab-fixture.mjs";

// The test policy's iab section over the fake's region ids (eea: DE, us: US).
const iab = { ...serverIab, tcf: { ...serverIab.tcf, regions: ["eea"] }, gpp: { ...serverIab.gpp, regions: ["us"] } };

const endpoint = "https://consent.example";

/** consentd with the iab policy, the vendor list and consent:signals. */
function iabConsentd(opts) {
  const svc = fakeConsentd(opts);
  svc.signals = [];
  svc.conflicts = 0; // answer this many signals calls with 409, moving the subject on first
  const inner = svc.fetch;
  svc.fetch = async (url, init = {}) => {
    const u = new URL(url);
    if (u.pathname === "/v1/policy") {
      const r = await inner(url, init);
      if (r.status !== 200) return r;
      const body = await r.json();
      body.policy = { ...body.policy, iab };
      return new Response(JSON.stringify(body), { status: 200, headers: { ETag: '"test-iab"' } });
    }
    const m = /^\/v1\/subjects\/([^/]+)\/consent:signals$/.exec(decodeURIComponent(u.pathname));
    if (!m) return inner(url, init);
    const body = JSON.parse(init.body);
    svc.calls.push({ method: init.method, path: u.pathname, body, auth: init.headers?.Authorization });
    const bearer = svc.tokens.get((init.headers?.Authorization || "").replace(/^Bearer /, ""));
    if (!bearer || bearer.subject !== m[1]) return new Response(JSON.stringify({ code: 16 }), { status: 401 });
    const subject = svc.subjects.get(m[1]);
    if (svc.conflicts > 0) {
      svc.conflicts--;
      subject.revision++; // another tab wrote in between
    }
    if (Number(body.revision) !== subject.revision) return new Response(JSON.stringify({ code: 10, message: "aborted" }), { status: 409 });
    svc.signals.push(body);
    subject.revision++;
    return new Response(JSON.stringify({ consent: { subject_id: m[1], revision: String(subject.revision) } }), { status: 200 });
  };
  return svc;
}

/** XMLHttpRequest as @iabtechlabtcf/core's GVL uses it, serving the vendor list. */
function fakeXHR(requests) {
  globalThis.XMLHttpRequest = class {
    static DONE = 4;
    listeners = {};
    addEventListener(t, f) {
      this.listeners[t] = f;
    }
    open(_method, url) {
      requests.push(url);
      this.url = url;
    }
    send() {
      setTimeout(() => {
        this.readyState = 4;
        const ok = this.url === endpoint + "/v1/iab/vendor-list.json";
        this.status = ok ? 200 : 404;
        this.response = ok ? structuredClone(gvlFile) : null;
        this.listeners.load?.();
      });
    }
  };
}

function tcfapi(command, param) {
  return new Promise((resolve) => globalThis.__tcfapi(command, 2, (data, ok) => resolve({ data, ok }), param));
}

function ids(vector) {
  const out = [];
  vector.forEach((v, id) => {
    if (v) out.push(id);
  });
  return out;
}

test("TCF region: __tcfapi answers the choices, the strings are recorded once per change and not again after a reload", async () => {
  const browser = fakeBrowser();
  const svc = iabConsentd();
  const xhr = [];
  fakeXHR(xhr);
  const consent = createConsent({ endpoint, region: "DE", fetch: svc.fetch });
  const controller = attachIAB(consent, { endpoint, region: "DE", fetch: svc.fetch, lang: "de" });
  const events = [];
  await consent.sync();
  // An ad tag calling once the SDK is there: queued until the first TC string.
  globalThis.__tcfapi("addEventListener", 2, (d, ok) => ok && events.push(d));
  await until(() => events.length > 0);
  assert.deepEqual(xhr, [endpoint + "/v1/iab/vendor-list.json"]);
  assert.equal(events[0].eventStatus, "cmpuishown", "a first visit must be asked");
  assert.equal(events[0].gdprApplies, true);
  assert.equal(events[0].cmpId, 300);
  const first = TCString.decode(events[0].tcString);
  assert.deepEqual(ids(first.purposeConsents), []);
  assert.equal(first.consentLanguage, "DE");
  assert.deepEqual(svc.signals, [], "nothing recorded before a decision (revision 0)");

  await consent.acceptAll("banner");
  await until(() => svc.signals.length === 1);
  const last = events.at(-1);
  assert.equal(last.eventStatus, "useractioncomplete");
  const m = TCString.decode(last.tcString);
  assert.deepEqual(ids(m.purposeConsents), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  assert.deepEqual(ids(m.vendorConsents), [1, 2, 10, 25, 755]);
  const sent = svc.signals[0];
  assert.equal(sent.region, "DE");
  assert.equal(sent.revision, 1);
  assert.equal(sent.tc_string, last.tcString);
  assert.equal(sent.tc_string, controller.signals().tcString);
  assert.deepEqual(new GppModel(sent.gpp_string).getHeader().SectionIds, [2], "GPP with the tcfeuv2 section");
  assert.ok(sent.idempotency_key);
  const ping = await tcfapi("ping");
  assert.equal(ping.data.cmpLoaded, true);
  assert.equal(ping.data.gdprApplies, true);

  // A reload: the service's revision is now the signals event's; nothing is sent again.
  browser.reload();
  const again = createConsent({ endpoint, region: "DE", fetch: svc.fetch });
  attachIAB(again, { endpoint, region: "DE", fetch: svc.fetch, lang: "de" });
  await again.sync();
  await until(() => again.get().revision === 2);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(svc.signals.length, 1, "not sent again after the reload");

  // A per-vendor choice changes the strings without a new decision: sent again, for the current revision.
  const c2 = await new Promise((resolve) => {
    const ctl = attachIAB(again, { endpoint, region: "DE", fetch: svc.fetch, lang: "de" });
    ctl.on("signals", () => resolve(ctl));
    ctl.setVendors({ 10: false }, { 755: true });
  });
  await until(() => svc.signals.length === 2);
  const v = TCString.decode(svc.signals[1].tc_string);
  assert.equal(svc.signals[1].revision, 2);
  assert.deepEqual(ids(v.vendorConsents), [1, 2, 25, 755]);
  assert.deepEqual(ids(v.vendorLegitimateInterests), [1, 2, 25]);
  assert.deepEqual(c2.vendorConsents(), { 10: false });

  // Reject all forgets the per-vendor choices.
  await again.rejectAll("banner");
  await until(() => svc.signals.length === 3);
  assert.deepEqual(c2.vendorConsents(), {});
  const r = TCString.decode(svc.signals[2].tc_string);
  assert.deepEqual(ids(r.purposeConsents), []);
  assert.deepEqual(ids(r.vendorConsents), []);
  assert.deepEqual(ids(r.purposeLegitimateInterests), []);
});

test("GPP region: __gpp answers ping, hasSection, getSection and getField; a 409 rebuilds from the newer state", async () => {
  fakeBrowser();
  const svc = iabConsentd({ mechanism: "opt_out" });
  const consent = createConsent({ endpoint, region: "US", fetch: svc.fetch });
  attachIAB(consent, { endpoint, region: "US", fetch: svc.fetch });
  await consent.sync();
  // (The first test's controllers answered __gpp on this same global until this one takes over.)
  await until(() => pingSync().signalStatus === "ready" && pingSync().applicableSections?.[0] === 7);
  const ping = pingSync();
  assert.equal(ping.gppVersion, "1.1");
  assert.equal(ping.cmpStatus, "loaded");
  assert.equal(ping.cmpId, 300);
  assert.deepEqual(ping.applicableSections, [7]);
  assert.ok(ping.supportedAPIs.includes("7:usnat"));
  assert.equal(call("hasSection", "usnat"), true);
  assert.equal(call("getField", "usnat.SaleOptOut"), 2);

  const heard = [];
  globalThis.__gpp("addEventListener", (e) => heard.push(e.eventName));
  svc.conflicts = 1;
  await consent.set({ ads: false }, "banner");
  await until(() => svc.signals.length === 1);
  assert.equal(svc.signals[0].revision, 2, "rebuilt for the revision the other write made");
  assert.equal(svc.signals[0].tc_string, "");
  const g = new GppModel(svc.signals[0].gpp_string);
  assert.equal(g.getFieldValue("usnat", "SaleOptOut"), 1);
  assert.equal(call("getField", "usnat.TargetedAdvertisingOptOut"), 1);
  assert.equal(call("getSection", "usnat").SharingOptOut, 1);
  assert.ok(heard.includes("sectionChange") && heard.includes("signalStatus"), `events heard: ${heard}`);
});

function pingSync() {
  let out;
  globalThis.__gpp("ping", (d) => (out = d));
  return out || {};
}

function call(command, parameter) {
  let out;
  globalThis.__gpp(command, (d) => (out = d), parameter);
  return out;
}
