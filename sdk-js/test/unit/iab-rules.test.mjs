// The IAB strings from consentd's choices (src/iab/rules.ts): every choice
// gives strings that the IAB's own libraries decode to exactly the fields
// the rules say. Built with dist/iab.js, decoded with @iabtechlabtcf/core's
// TCString and @iabgpp/cmpapi's GppModel from node_modules (the same
// libraries, their own copies).

import assert from "node:assert/strict";
import { test } from "node:test";
import { GppModel } from "@iabgpp/cmpapi";
import { TCString } from "@iabtechlabtcf/core";
import { gppString, regionId, scopeOf, tcString } from "../../dist/iab.js";

import { gvlFile, iab, VENDORS } from "./iab-fixture.mjs";

const policy = {
  default_region: "rest_of_world",
  purposes: [],
  regions: [
    { id: "eea", mechanism: "opt_in", codes: ["DE", "FR"] },
    { id: "uk", mechanism: "opt_in", codes: ["GB"] },
    { id: "us_opt_out", mechanism: "opt_out", codes: ["US", "US-CA", "US-VA"] },
    { id: "rest_of_world", mechanism: "opt_in", codes: [] },
  ],
};

/** The vendor list as consentd serves it: narrowed to the policy's vendors. */
function vendorList() {
  const json = structuredClone(gvlFile);
  json.vendors = Object.fromEntries(Object.entries(json.vendors).filter(([id]) => VENDORS.includes(Number(id))));
  return json;
}

function choices(decisions, { gpc = false, vendors = {}, objections = {} } = {}) {
  return {
    choice: (id) => decisions[id],
    // GPP reads whether the purpose is allowed: in an opt-out region, allowed unless denied or GPC.
    allowed: (id) => decisions[id] !== false && !gpc,
    gpc,
    vendors,
    objections,
  };
}

/** The ids set in a decoded Vector. */
function ids(vector) {
  const out = [];
  vector.forEach((v, id) => {
    if (v) out.push(id);
  });
  return out;
}

function decodeTC(s) {
  const m = TCString.decode(s);
  return {
    cmpId: m.cmpId,
    cmpVersion: m.cmpVersion,
    isServiceSpecific: m.isServiceSpecific,
    publisherCountryCode: m.publisherCountryCode,
    consentLanguage: m.consentLanguage,
    vendorListVersion: m.vendorListVersion,
    policyVersion: m.policyVersion,
    purposeOneTreatment: m.purposeOneTreatment,
    purposeConsents: ids(m.purposeConsents),
    purposeLegitimateInterests: ids(m.purposeLegitimateInterests),
    specialFeatureOptins: ids(m.specialFeatureOptins),
    vendorConsents: ids(m.vendorConsents),
    vendorLegitimateInterests: ids(m.vendorLegitimateInterests),
    vendorsDisclosed: ids(m.vendorsDisclosed),
  };
}

const header = {
  cmpId: 300,
  cmpVersion: 1,
  isServiceSpecific: true,
  publisherCountryCode: "DE",
  consentLanguage: "EN",
  vendorListVersion: 150,
  policyVersion: 5,
  purposeOneTreatment: false,
  vendorsDisclosed: VENDORS,
};

test("scope: TCF in the policy's tcf regions, usnat or the listed state's section in gpp regions, nothing elsewhere", () => {
  assert.deepEqual(scopeOf(policy, iab, "DE"), { tcf: true, gpp: "" });
  assert.deepEqual(scopeOf(policy, iab, "GB"), { tcf: true, gpp: "" });
  assert.deepEqual(scopeOf(policy, iab, "US"), { tcf: false, gpp: "usnat" });
  assert.deepEqual(scopeOf(policy, iab, "US-CA"), { tcf: false, gpp: "usca" });
  assert.deepEqual(scopeOf(policy, iab, "US-VA"), { tcf: false, gpp: "usnat" }, "usva is not in state_sections");
  assert.deepEqual(scopeOf(policy, iab, "US-NY"), { tcf: false, gpp: "usnat" }, "a state not listed: its country's region");
  assert.deepEqual(scopeOf(policy, iab, "JP"), { tcf: false, gpp: "" });
  assert.deepEqual(scopeOf(policy, iab, undefined), { tcf: false, gpp: "" });
  assert.equal(regionId(policy, "FR"), "eea");
  assert.equal(regionId(policy, ""), "rest_of_world");
});

const TCF_CASES = [
  {
    name: "accept all",
    decisions: { functional: true, ads: true, analytics: true },
    want: {
      purposeConsents: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
      purposeLegitimateInterests: [2, 7, 8, 9, 10, 11],
      specialFeatureOptins: [1, 2],
      vendorConsents: [1, 2, 10, 25, 755],
      vendorLegitimateInterests: [1, 2, 25, 755],
    },
  },
  {
    name: "reject all (every legitimate interest objected to as well)",
    decisions: { functional: false, ads: false, analytics: false },
    want: { purposeConsents: [], purposeLegitimateInterests: [], specialFeatureOptins: [], vendorConsents: [], vendorLegitimateInterests: [] },
  },
  {
    name: "nothing decided yet (first visit): no consent, legitimate interests signalled",
    decisions: {},
    want: {
      purposeConsents: [],
      purposeLegitimateInterests: [2, 7, 8, 9, 10, 11],
      specialFeatureOptins: [],
      vendorConsents: [],
      vendorLegitimateInterests: [1, 2, 25, 755],
    },
  },
  {
    name: "per purpose: ads granted, analytics denied, functional undecided",
    decisions: { ads: true, analytics: false },
    want: {
      purposeConsents: [2, 3, 4, 7],
      purposeLegitimateInterests: [2],
      specialFeatureOptins: [1, 2],
      // Vendors declaring a consent purpose (or flexible purpose) among 2, 3, 4, 7.
      vendorConsents: [1, 10, 755],
      // Vendors declaring LI purpose 2.
      vendorLegitimateInterests: [25, 755],
    },
  },
  {
    name: "per purpose: only analytics granted",
    decisions: { functional: false, ads: false, analytics: true },
    want: {
      purposeConsents: [5, 6, 8, 9, 10, 11],
      purposeLegitimateInterests: [7, 8, 9, 10, 11],
      specialFeatureOptins: [],
      vendorConsents: [1, 2, 25, 755],
      vendorLegitimateInterests: [1, 2, 25, 755],
    },
  },
  {
    name: "per vendor: accept all, vendor 10 refused and vendor 755's legitimate interest objected to",
    decisions: { functional: true, ads: true, analytics: true },
    vendors: { 10: false },
    objections: { 755: true },
    want: {
      purposeConsents: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
      purposeLegitimateInterests: [2, 7, 8, 9, 10, 11],
      specialFeatureOptins: [1, 2],
      vendorConsents: [1, 2, 25, 755],
      vendorLegitimateInterests: [1, 2, 25],
    },
  },
  {
    name: "per vendor: reject all but vendor 2 allowed",
    decisions: { functional: false, ads: false, analytics: false },
    vendors: { 2: true },
    want: { purposeConsents: [], purposeLegitimateInterests: [], specialFeatureOptins: [], vendorConsents: [2], vendorLegitimateInterests: [] },
  },
];

for (const c of TCF_CASES) {
  test(`TC string, ${c.name}`, () => {
    const s = tcString(vendorList(), iab, choices(c.decisions, c));
    assert.match(s, /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/);
    assert.equal(s.split(".").length, 3, "core, disclosed vendors and publisher TC segments (service-specific)");
    assert.deepEqual(decodeTC(s), { ...header, ...c.want });

    // The same TC string is the GPP string's tcfeuv2 section in TCF regions.
    const g = gppString(iab, { tcf: true, gpp: "" }, choices(c.decisions, c), s);
    const m = new GppModel(g);
    assert.deepEqual(m.getHeader().SectionIds, [2]);
    const consents = m.getFieldValue("tcfeuv2", "PurposeConsents");
    assert.deepEqual(consents.flatMap((on, i) => (on ? [i + 1] : [])), c.want.purposeConsents);
    assert.deepEqual(m.getFieldValue("tcfeuv2", "VendorConsents"), c.want.vendorConsents);
    assert.equal(m.getFieldValue("tcfeuv2", "CmpId"), 300);
  });
}

test("TC string: purpose one treatment and the publisher country come from the policy", () => {
  const p = structuredClone(iab);
  p.tcf.purpose_one_treatment = true;
  p.tcf.publisher_country = "FR";
  const d = decodeTC(tcString(vendorList(), p, choices({})));
  assert.equal(d.purposeOneTreatment, true);
  assert.equal(d.publisherCountryCode, "FR");
});

/** The GPP string's sections, decoded. */
function decodeGPP(s) {
  const m = new GppModel(s);
  return { ids: m.getHeader().SectionIds, usnat: m.getSection("usnat"), usca: m.getSection("usca") };
}

const notices = { SharingNotice: 1, SaleOptOutNotice: 1, SharingOptOutNotice: 1, TargetedAdvertisingOptOutNotice: 1 };
const mspaOff = { MspaCoveredTransaction: 2, MspaOptOutOptionMode: 0, MspaServiceProviderMode: 0 };

function pick(section, keys) {
  return Object.fromEntries(keys.map((k) => [k, section[k]]));
}

const USNAT_KEYS = [...Object.keys(notices), "SaleOptOut", "SharingOptOut", "TargetedAdvertisingOptOut", ...Object.keys(mspaOff), "GpcSegmentType", "Gpc"];

test("GPP usnat, ads allowed (accept all, or undecided in an opt-out region): not opted out", () => {
  for (const decisions of [{ ads: true, analytics: true }, {}]) {
    const d = decodeGPP(gppString(iab, { tcf: false, gpp: "usnat" }, choices(decisions), ""));
    assert.deepEqual(d.ids, [7]);
    assert.deepEqual(pick(d.usnat, USNAT_KEYS), {
      ...notices, SaleOptOut: 2, SharingOptOut: 2, TargetedAdvertisingOptOut: 2, ...mspaOff, GpcSegmentType: 1, Gpc: false,
    });
  }
});

test("GPP usnat, ads denied (reject all, withdrawal): sale, sharing and targeted advertising opted out", () => {
  const d = decodeGPP(gppString(iab, { tcf: false, gpp: "usnat" }, choices({ ads: false, analytics: false }), ""));
  assert.deepEqual(pick(d.usnat, USNAT_KEYS), {
    ...notices, SaleOptOut: 1, SharingOptOut: 1, TargetedAdvertisingOptOut: 1, ...mspaOff, GpcSegmentType: 1, Gpc: false,
  });
});

test("GPP usnat, per purpose: analytics denied alone does not opt out (the policy's gpp.purpose is ads)", () => {
  const d = decodeGPP(gppString(iab, { tcf: false, gpp: "usnat" }, choices({ ads: true, analytics: false }), ""));
  assert.equal(d.usnat.SaleOptOut, 2);
});

test("GPP usnat, GPC: opted out and Gpc set", () => {
  const s = gppString(iab, { tcf: false, gpp: "usnat" }, choices({}, { gpc: true }), "");
  assert.equal(s.split("~")[1].split(".").length, 2, "the usnat section carries its GPC segment");
  const d = decodeGPP(s);
  assert.deepEqual(pick(d.usnat, USNAT_KEYS), {
    ...notices, SaleOptOut: 1, SharingOptOut: 1, TargetedAdvertisingOptOut: 1, ...mspaOff, GpcSegmentType: 1, Gpc: true,
  });
});

test("GPP usca: California's section (no targeted-advertising field), opted out by a denial", () => {
  for (const [decisions, out] of [[{ ads: true }, 2], [{ ads: false }, 1]]) {
    const d = decodeGPP(gppString(iab, { tcf: false, gpp: "usca" }, choices(decisions), ""));
    assert.deepEqual(d.ids, [8]);
    assert.deepEqual(pick(d.usca, ["SaleOptOutNotice", "SharingOptOutNotice", "SaleOptOut", "SharingOptOut", ...Object.keys(mspaOff), "Gpc"]), {
      SaleOptOutNotice: 1, SharingOptOutNotice: 1, SaleOptOut: out, SharingOptOut: out, ...mspaOff, Gpc: false,
    });
    assert.equal(d.usca.TargetedAdvertisingOptOut, undefined);
  }
});

test("GPP notices and MSPA from the policy", () => {
  const p = structuredClone(iab);
  p.gpp.notices = { sharing: false, sale_opt_out: true, sharing_opt_out: false, targeted_advertising_opt_out: true };
  p.gpp.mspa = { covered_transaction: true, mode: "service_provider" };
  const d = decodeGPP(gppString(p, { tcf: false, gpp: "usnat" }, choices({ ads: true }), ""));
  assert.deepEqual(pick(d.usnat, [...Object.keys(notices), ...Object.keys(mspaOff)]), {
    SharingNotice: 2, SaleOptOutNotice: 1, SharingOptOutNotice: 2, TargetedAdvertisingOptOutNotice: 1,
    MspaCoveredTransaction: 1, MspaOptOutOptionMode: 2, MspaServiceProviderMode: 1,
  });
  p.gpp.mspa = { covered_transaction: true, mode: "opt_out_option" };
  const o = decodeGPP(gppString(p, { tcf: false, gpp: "usnat" }, choices({ ads: true }), "")).usnat;
  assert.deepEqual([o.MspaOptOutOptionMode, o.MspaServiceProviderMode], [1, 2]);
});

test("no GPP string outside the IAB regions", () => {
  assert.equal(gppString(iab, { tcf: false, gpp: "" }, choices({}), ""), "");
});
