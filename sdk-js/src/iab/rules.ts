// From consentd's choices to the IAB's strings: which IAB scope a region
// code has, the TCF v2.2 TC string and the GPP string. Pure functions over
// their inputs (no DOM, no network): the strings are built by the IAB's own
// libraries, @iabtechlabtcf/core and @iabgpp/cmpapi, never by hand.
//
// The rules:
// - TCF purpose consent p: the consentd purpose mapped to p is granted
//   (choice true). Special feature: likewise.
// - TCF purpose legitimate interest p: signalled (transparency established)
//   until the mapped purpose is denied (choice false: the objection).
// - Vendor consent v: the person's per-vendor choice, else whether v
//   declares a purpose (or flexible purpose) whose consent bit is set.
// - Vendor legitimate interest v: not objected to, and v declares an LI
//   purpose whose LI bit is set.
// - GPP US (usnat or a state section): sale, sharing and targeted
//   advertising opted out (1) while the policy's gpp.purpose is not allowed
//   (denied, or by GPC), else 2; notices and MSPA fields from the policy;
//   Gpc from the browser's signal.

import { GppModel, Sections } from "@iabgpp/cmpapi";
import { type GVL, TCModel, TCString } from "@iabtechlabtcf/core";
import type { Policy } from "../types.js";
import type { Choices, IABPolicy, Scope } from "./types.js";

/** The policy's region id for a code, resolved like the service does: exact code, its country ("US" for "US-CA"), else the default region. */
export function regionId(policy: Policy, code: string | undefined): string {
  const find = (c: string) => policy.regions.find((r) => r.codes.includes(c))?.id;
  return (code && (find(code) || find(code.split("-")[0]))) || policy.default_region;
}

export function scopeOf(policy: Policy, iab: IABPolicy, code: string | undefined): Scope {
  const id = regionId(policy, code);
  const gpp = iab.gpp;
  let section = "";
  if (gpp?.regions.includes(id)) {
    // "US-CA" -> "usca" when the policy lists that state's section, else the national one.
    const state = "us" + (code || "").split("-")[1]?.toLowerCase();
    section = (gpp.state_sections || []).includes(state) ? state : "usnat";
  }
  return { tcf: !!iab.tcf?.regions.includes(id), gpp: section };
}

/**
 * The TCF model of the choices. gvl: the vendor list (ready; its language is
 * the consent language), or its JSON.
 */
function tcModel(gvl: GVL, iab: IABPolicy, c: Choices): TCModel {
  // biome-ignore lint/style/noNonNullAssertion: only called for policies with a tcf section
  const tcf = iab.tcf!;
  const m = new TCModel(gvl);
  m.cmpId = iab.cmp_id;
  m.cmpVersion = iab.cmp_version;
  m.isServiceSpecific = true;
  m.publisherCountryCode = tcf.publisher_country;
  m.purposeOneTreatment = !!tcf.purpose_one_treatment;
  for (const p of tcf.purposes) {
    const choice = c.choice(p.purpose);
    if (choice) {
      m.purposeConsents.set(p.consent || []);
      m.specialFeatureOptins.set(p.special_features || []);
    }
    if (choice !== false) m.purposeLegitimateInterests.set(p.legitimate_interest || []);
  }
  for (const v of Object.values(m.gvl.vendors)) {
    // Every vendor of the (narrowed) list is disclosed by the TCF layer.
    m.vendorsDisclosed.set(v.id);
    if (c.vendors[v.id] ?? [...v.purposes, ...(v.flexiblePurposes || [])].some((p) => m.purposeConsents.has(p))) m.vendorConsents.set(v.id);
    if (!c.objections[v.id] && v.legIntPurposes.some((p) => m.purposeLegitimateInterests.has(p))) m.vendorLegitimateInterests.set(v.id);
  }
  return m;
}

/**
 * The TC string of the choices. gvl: a GVL of @iabtechlabtcf/core or its
 * JSON (typed as object: the declarations must not need the library, which
 * the package bundles rather than depends on).
 */
export function tcString(gvl: object, iab: IABPolicy, c: Choices): string {
  return TCString.encode(tcModel(gvl as GVL, iab, c));
}

/** The GPP section id of a section name (tcfeuv2 2, usnat 7, usca 8...). */
export function sectionId(name: string): number {
  for (const [id, n] of Sections.SECTION_ID_NAME_MAP) if (n == name) return id;
  return -1;
}

/**
 * The GPP string: in a GPP region its US section from the choices; in a TCF
 * region the tcfeuv2 section holding the TC string; else none ("").
 */
export function gppString(iab: IABPolicy, scope: Scope, c: Choices, tc: string): string {
  const m = new GppModel();
  if (scope.gpp && iab.gpp) {
    const g = iab.gpp;
    const out = g.purpose && !c.allowed(g.purpose) ? 1 : 2;
    const notice = (on: boolean | undefined) => (on === false ? 2 : 1);
    const n = g.notices || ({} as NonNullable<IABPolicy["gpp"]>["notices"]);
    const covered = !!g.mspa?.covered_transaction;
    const fields: Record<string, number | boolean> = {
      SharingNotice: notice(n.sharing),
      SaleOptOutNotice: notice(n.sale_opt_out),
      SharingOptOutNotice: notice(n.sharing_opt_out),
      TargetedAdvertisingOptOutNotice: notice(n.targeted_advertising_opt_out),
      SaleOptOut: out,
      SharingOptOut: out,
      TargetedAdvertisingOptOut: out,
      MspaCoveredTransaction: covered ? 1 : 2,
      MspaOptOutOptionMode: covered ? (g.mspa.mode == "opt_out_option" ? 1 : 2) : 0,
      MspaServiceProviderMode: covered ? (g.mspa.mode == "service_provider" ? 1 : 2) : 0,
      GpcSegmentIncluded: true,
      Gpc: c.gpc,
    };
    for (const f in fields) {
      // Each state's section has its own subset of the fields (California's
      // has no targeted-advertising opt-out, Virginia's no GPC): set those it has.
      try {
        m.setFieldValue(scope.gpp, f, fields[f]);
      } catch {
        // not a field of this section
      }
    }
  } else if (scope.tcf && tc) {
    m.decodeSection("tcfeuv2", tc);
  } else {
    return "";
  }
  return m.encode();
}
