// A Consent (sdk-js/src/types.ts) for the policy preview: it answers as
// consentd would for a first visitor in one region (no decisions, no GPC)
// and never writes anything — the buttons of the previewed banner call
// onChoice instead of the API. The SDK's own needsPrompt decides whether
// the banner shows, as it does on a site.

import type { ChangeEvent, Consent, ConsentState, Policy, PurposeState, Source } from "../../../sdk-js/src/types";
import { needsPrompt } from "../../../sdk-js/src/core/cookie";

/** The region of a code as consentd maps it: exact, then the country of a state, then the default. */
export function regionOf(policy: Policy, code: string) {
  const exact = policy.regions.find((r) => r.codes.includes(code));
  const country = policy.regions.find((r) => r.codes.includes(code.split("-")[0]));
  return exact || country || policy.regions.find((r) => r.id === policy.default_region) || policy.regions[0];
}

/** Every purpose's default answer for a new visitor in the region (domain/rules.go's defaults). */
export function defaults(policy: Policy, code: string): Record<string, PurposeState> {
  const optIn = regionOf(policy, code)?.mechanism === "MECHANISM_OPT_IN";
  const out: Record<string, PurposeState> = {};
  for (const p of policy.purposes) {
    out[p.id] = p.necessary ? { allowed: true, reason: "necessary" } : { allowed: !(optIn || p.always_opt_in), reason: "default" };
  }
  return out;
}

export function previewConsent(policy: Policy, code: string, onChoice: (what: string) => void): Consent {
  const purposes = defaults(policy, code);
  const asks = (id: string) => !id.includes(".") && !policy.purposes.find((p) => p.id === id)?.necessary;
  const state: ConsentState = {
    subjectId: null,
    revision: 0,
    purposes,
    gpc: false,
    gpcHonoured: false,
    needsPrompt: needsPrompt(purposes, asks),
    pending: false,
    confirmed: true,
    linked: false,
  };
  const listeners = new Set<(e: ChangeEvent) => void>();
  const nothing = (what: string) => (source?: Source) => {
    onChoice(`${what}${source ? " (" + source.replace("_", " ") + ")" : ""}`);
    return Promise.resolve(state);
  };
  return {
    get: () => state,
    has: (p) => !!purposes[p]?.allowed,
    choice: () => undefined,
    asked: () => policy.purposes.map((p) => p.id).filter(asks),
    policy: () => policy,
    sync: () => Promise.resolve(state),
    set: (d, source) => nothing("save: " + Object.entries(d).map(([k, v]) => `${k} ${v ? "on" : "off"}`).join(", "))(source),
    acceptAll: nothing("accept all"),
    rejectAll: nothing("reject all"),
    withdraw: nothing("withdraw"),
    on: (_e, l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
}
