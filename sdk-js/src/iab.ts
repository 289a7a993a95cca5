// The IAB signals (@consentd/sdk/iab): the TCF v2.2 TC string and the GPP
// string the person's consentd choices produce, answered to ad tags through
// `__tcfapi` (TCF CMP API 2.2) and `__gpp` (GPP CMP API 1.1), and sent to
// consentd as the proof of what the ad stack was told.
//
// Nothing happens until the policy (consent.policy(), after sync or from
// the cache) has an `iab` section. Then:
// - `__gpp` is answered (CmpApi of @iabgpp/cmpapi), and `__tcfapi` when the
//   policy configures TCF (CmpApi of @iabtechlabtcf/cmpapi); both take over
//   the queues of the stub (dist/consentd-iab-stub.js) if the page has it.
// - In a TCF region the vendor list is loaded from consentd
//   (GET /v1/iab/vendor-list.json, narrowed to the policy's vendors).
// - On every change the strings are rebuilt (src/iab/rules.ts) and the APIs'
//   listeners told. Grants read from the cookie count only once consentd
//   has confirmed them, like consent.has(): denials at once.
// - After a confirmed change (revision > 0) the strings go to
//   POST /v1/subjects/{id}/consent:signals with the revision they encode.
//   A 409 (the subject's revision moved on) rebuilds from the newer state.
//   What was sent is remembered in localStorage, so a reload does not send
//   it again. Failures are logged, never thrown: the CMP APIs do not wait.

import { CmpDisplayStatus, CmpStatus, CmpApi as GppApi, SignalStatus } from "@iabgpp/cmpapi";
import { CmpApi as TcfApi } from "@iabtechlabtcf/cmpapi";
import { GVL } from "@iabtechlabtcf/core";
import { createHttp, type HttpError } from "./core/http.js";
import type { ConsentOptions } from "./core/options.js";
import { noop, randomKey } from "./core/queue.js";
import { load, save, TOKEN_KEY, type Memory } from "./core/storage.js";
import { gppString, scopeOf, sectionId, tcString as encodeTC } from "./iab/rules.js";
import type { AdSignals, Choices, IABPolicy, Scope, TCFController } from "./iab/types.js";
import type { Consent, ConsentState } from "./types.js";

export type { AdSignals, Choices, IABPolicy, Scope, TCFController, TCFPurposeMapping } from "./iab/types.js";
// The rules, for a backend or a test that builds the strings itself.
export { gppString, regionId, scopeOf, tcString } from "./iab/rules.js";


export interface IABOptions {
  /** consentd's base URL: the one given to createConsent. */
  endpoint: string;
  /** The region code (ISO 3166, "DE", "US-CA") the strings are made for: the one given to createConsent. */
  region?: string;
  /** The site's subject token, if createConsent was given one. */
  token?: ConsentOptions["token"];
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
  /** Request timeout (ms). Default 3000. */
  timeout?: number;
  /** The UI language: the TC string's consent language. Default "en". */
  lang?: string;
  /** Whether the consent UI is showing now (TCF event status cmpuishown). Default: the state needs a prompt. */
  uiVisible?: (state: ConsentState) => boolean;
}

/** localStorage: the person's per-vendor choices (TCF layer). */
const VENDORS_KEY = "consentd.iab.vendors";
/**
 * localStorage: what was last sent: subject, the state's revision then,
 * the revision the service gave the signals event, and a key of what the
 * strings say (the strings themselves carry dates).
 */
const SENT_KEY = "consentd.iab.signals";

interface Sent {
  s: string;
  r: number;
  g: number;
  k: string;
}

interface Vendors {
  c: Record<number, boolean>;
  o: Record<number, boolean>;
}

/**
 * Makes the page answer `__tcfapi` and `__gpp` from consent's choices and
 * records the strings with consentd. One per page (the CMP APIs are global).
 */
export function attachIAB(consent: Consent, options: IABOptions): TCFController {
  const endpoint = options.endpoint.replace(/\/+$/, "");
  const memory: Memory = {};
  const [request] = createHttp({ endpoint, fetch: options.fetch, timeout: options.timeout }, memory, noop);
  const listeners = new Set<(s: AdSignals) => void>();
  let iab: IABPolicy | null = null;
  let scope: Scope = { tcf: false, gpp: "" };
  let gvl: Promise<GVL> | null = null;
  let ready: GVL | null = null;
  let tcf: TcfApi | null = null;
  let gpp: GppApi | null = null;
  let gppTried = false;
  let current: AdSignals = { region: options.region || "", revision: 0, tcString: "", gppString: "" };
  let currentKey = "";
  let sending: Promise<void> | null = null;
  let again = false;
  // What the TCF API was last given.
  let tcfGiven: [string | null, boolean] | null = null;
  // A returning visitor's grants wait for consentd's confirmation, but the
  // ad tags wait at most this long for a first answer.
  let waited = false;
  let waiting: ReturnType<typeof setTimeout> | undefined;

  function vendors(): Vendors {
    return load<Vendors>(memory, VENDORS_KEY) || { c: {}, o: {} };
  }

  function choices(state: ConsentState): Choices {
    const v = vendors();
    // A grant from the cookie counts once consentd confirmed it (or it was made here and is on its way).
    const trusted = state.confirmed || state.pending;
    return {
      choice(id) {
        const c = consent.choice(id);
        return c && !trusted ? undefined : c;
      },
      allowed: (id) => consent.has(id),
      gpc: state.gpc,
      vendors: v.c,
      objections: v.o,
    };
  }

  function loadVendorList(): Promise<GVL> {
    return (gvl ||= (async () => {
      // biome-ignore lint/style/noNonNullAssertion: only called once the policy has a tcf section
      const url = new URL(iab!.tcf!.vendor_list_url || "/v1/iab/vendor-list.json", endpoint + "/");
      GVL.baseUrl = url.href.slice(0, url.href.lastIndexOf("/") + 1);
      GVL.latestFilename = url.pathname.slice(url.pathname.lastIndexOf("/") + 1);
      let list: GVL;
      try {
        list = new GVL(undefined, { language: options.lang || "en" });
      } catch {
        list = new GVL(); // a language the TCF does not know: English
      }
      await list.readyPromise;
      // biome-ignore lint/style/noNonNullAssertion: as above
      const only = iab!.tcf!.vendors;
      if (only?.length) list.narrowVendorsTo(only);
      return (ready = list);
    })().catch((err) => {
      gvl = null;
      throw err;
    }));
  }

  /** Rebuilds the strings from the state; tells the APIs and listeners; sends them when confirmed. */
  function update(state: ConsentState): void {
    const policy = consent.policy() as (ReturnType<Consent["policy"]> & { iab?: IABPolicy }) | null;
    if (!policy?.iab) return;
    if (!iab) start(policy.iab, scopeOf(policy, policy.iab, options.region));
    if (scope.tcf && !ready) {
      loadVendorList().then(
        () => update(consent.get()),
        (err) => console.warn("consentd: the IAB vendor list did not load:", err),
      );
      return;
    }
    if (!state.confirmed && !state.pending && !waited) {
      waiting ||= setTimeout(() => {
        waited = true;
        update(consent.get());
      }, options.timeout || 3000);
      (waiting as { unref?: () => void }).unref?.(); // lets a Node process (tests, SSR) exit
      return;
    }
    // biome-ignore lint/style/noNonNullAssertion: set by start()
    const policyIab = iab!;
    const c = choices(state);
    const tc = scope.tcf && ready ? encodeTC(ready, policyIab, c) : "";
    const gp = gppString(policyIab, scope, c, tc);
    // What the strings say, without their dates: a key to compare with what was sent.
    const key = JSON.stringify([policyIab.tcf?.purposes.map((p) => c.choice(p.purpose)), c.allowed(policyIab.gpp?.purpose || ""), c.gpc, c.vendors, c.objections, scope]);
    const changed = tc != current.tcString || gp != current.gppString || state.revision != current.revision;
    current = { region: options.region || "", revision: state.revision, tcString: tc, gppString: gp };
    currentKey = key;
    const visible = options.uiVisible ? options.uiVisible(state) : state.needsPrompt.length > 0;
    // The APIs' listeners hear of a change, not of every state event.
    const forTcf = scope.tcf ? tc : null;
    if (tcf && (!tcfGiven || tcfGiven[0] != forTcf || tcfGiven[1] != visible)) {
      tcfGiven = [forTcf, visible];
      tcf.update(forTcf, visible);
    }
    const queued = gpp ? [] : startGpp(policyIab);
    if (gpp && (changed || gpp.getSignalStatus() != SignalStatus.READY)) {
      gpp.setSignalStatus(SignalStatus.NOT_READY);
      gpp.setGppString(gp);
      gpp.setCmpDisplayStatus(visible ? CmpDisplayStatus.VISIBLE : CmpDisplayStatus.HIDDEN);
      if (gpp.getCmpStatus() != CmpStatus.LOADED) gpp.setCmpStatus(CmpStatus.LOADED);
      if (scope.gpp || scope.tcf) gpp.fireSectionChange(scope.gpp || "tcfeuv2");
      gpp.setSignalStatus(SignalStatus.READY);
    }
    // The calls the stub queued, answered now that there is a string.
    for (const args of queued) (window as unknown as { __gpp: (...a: unknown[]) => void }).__gpp(...args);
    if (changed) {
      for (const l of [...listeners]) {
        try {
          l(current);
        } catch (err) {
          console.warn(err);
        }
      }
    }
    if (state.confirmed && !state.pending && state.revision > 0 && state.subjectId && (tc || gp)) send();
  }

  function start(policyIab: IABPolicy, s: Scope): void {
    iab = policyIab;
    scope = s;
    if (iab.tcf) {
      try {
        tcf = new TcfApi(iab.cmp_id, iab.cmp_version, true);
      } catch (err) {
        console.warn("consentd: __tcfapi:", err);
      }
    }
  }

  /**
   * Takes __gpp over from the stub once the first GPP string is ready, and
   * returns the calls the stub queued. (The library answers the queue as
   * soon as it is made, before it has a string: the queue is taken first.)
   */
  function startGpp(policyIab: IABPolicy): unknown[][] {
    if (gppTried) return [];
    gppTried = true;
    let queued: unknown[][] = [];
    try {
      const w = window as unknown as { __gpp?: (...a: unknown[]) => unknown };
      if (typeof w.__gpp != "function") w.__gpp = () => []; // without a stub the library's first call of __gpp would log an error
      try {
        const q = w.__gpp();
        if (Array.isArray(q)) queued = q.splice(0);
      } catch {
        // not a stub's __gpp: nothing queued
      }
      gpp = new GppApi(policyIab.cmp_id, policyIab.cmp_version);
      const supported = [...(policyIab.tcf ? ["tcfeuv2"] : []), ...(policyIab.gpp ? ["usnat", ...(policyIab.gpp.state_sections || [])] : [])];
      gpp.setSupportedAPIs(supported.map((n) => sectionId(n) + ":" + n));
      const section = scope.gpp || (scope.tcf ? "tcfeuv2" : "");
      gpp.setApplicableSections(section ? [sectionId(section)] : [-1]);
    } catch (err) {
      console.warn("consentd: __gpp:", err);
    }
    return queued;
  }

  /** The subject's token as the core keeps it: the site's, or the visitor's (never minted here). */
  async function token(subject: string): Promise<string | null> {
    const given = options.token;
    if (given) return typeof given == "string" ? given : given();
    const t = load<{ subject_id: string; token: string }>(memory, TOKEN_KEY);
    return t?.subject_id == subject ? t.token : null;
  }

  /** Sends the current strings unless they were sent already; one request at a time. */
  function send(): void {
    if (sending) {
      again = true;
      return;
    }
    sending = (async () => {
      for (let tries = 0; tries < 3; tries++) {
        const state = consent.get();
        const subject = state.subjectId;
        const sent = load<Sent>(memory, SENT_KEY);
        // consentd needs the region code the strings were made for.
        if (!subject || !current.region || !state.confirmed || state.pending || state.revision < 1) return;
        if (current.revision != state.revision) return; // update() runs again for this state
        const same = sent?.s == subject;
        if (same && sent?.k == currentKey && (sent.r == state.revision || sent.g == state.revision)) return;
        // Sent before from this same state (a per-vendor choice since): the
        // subject's revision is now the one our signals event got.
        // biome-ignore lint/style/noNonNullAssertion: same implies sent
        const revision = same && sent!.r == state.revision ? sent!.g : state.revision;
        const t = await token(subject);
        if (!t) return;
        const body = {
          region: current.region,
          revision,
          tc_string: current.tcString,
          gpp_string: current.gppString,
          idempotency_key: randomKey(),
        };
        const key = currentKey;
        try {
          const r = await request("POST", `/v1/subjects/${encodeURIComponent(subject)}/consent:signals`, body, t);
          save(memory, SENT_KEY, { s: subject, r: state.revision, g: Number(r?.consent?.revision) || revision + 1, k: key } satisfies Sent);
          return;
        } catch (err) {
          if ((err as HttpError).status != 409) throw err;
          // The subject changed since (another tab, a backend): read it again and rebuild.
          await consent.sync().catch(noop);
          update(consent.get());
        }
      }
    })()
      .catch((err) => console.warn("consentd: the IAB signals were not recorded:", err))
      .finally(() => {
        sending = null;
        if (again) {
          again = false;
          send();
        }
      });
  }

  consent.on("change", (e) => {
    // Reject all and withdraw (every mapped purpose now denied) forget the per-vendor choices too.
    const mapped = iab?.tcf?.purposes.map((p) => p.purpose) || [];
    const denied = (s: ConsentState) => mapped.length > 0 && mapped.every((id) => s.purposes[id]?.allowed === false && s.purposes[id].reason == "explicit");
    if (denied(e.state) && !denied(e.previous)) save(memory, VENDORS_KEY, null);
    update(e.state);
  });
  update(consent.get());

  return {
    policy: () => {
      if (!iab) throw new Error("consentd: the policy has no iab section (yet)");
      return iab;
    },
    vendorList: () => {
      if (!iab?.tcf) return Promise.reject(new Error("consentd: the policy configures no TCF"));
      return loadVendorList();
    },
    vendorConsents: () => ({ ...vendors().c }),
    vendorObjections: () => ({ ...vendors().o }),
    async setVendors(consents, objections) {
      const v = vendors();
      save(memory, VENDORS_KEY, { c: { ...v.c, ...consents }, o: { ...v.o, ...objections } } satisfies Vendors);
      update(consent.get());
    },
    async clearVendors() {
      save(memory, VENDORS_KEY, null);
      update(consent.get());
    },
    signals: () => ({ ...current }),
    on(_event, listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
  };
}
