// The contract between the IAB entry's parts: the signals (the TC and GPP
// strings, the CMP APIs __tcfapi and __gpp) and the TCF layer of the
// preference center. Types only: importing this file costs no bytes.

/** A consentd purpose's meaning in TCF, from the policy's iab.tcf.purposes. */
export interface TCFPurposeMapping {
  /** The consentd purpose id, e.g. "ads". */
  purpose: string;
  /** TCF purposes (1-11) a grant of it consents to. */
  consent: number[];
  /** TCF purposes signalled under legitimate interest until it is denied (the person's objection). */
  legitimate_interest: number[];
  /** TCF special features (1-2) opted in only while it is granted. */
  special_features: number[];
}

/** The policy's iab section (GET /v1/policy, field "iab"). */
export interface IABPolicy {
  cmp_id: number;
  cmp_version: number;
  tcf?: {
    regions: string[];
    publisher_country: string;
    purpose_one_treatment: boolean;
    /** GVL vendor ids the site works with; empty: every vendor of the vendor list. */
    vendors: number[];
    purposes: TCFPurposeMapping[];
    /** Path of the vendor list on the consentd endpoint, e.g. "/v1/iab/vendor-list.json". */
    vendor_list_url: string;
  };
  gpp?: {
    regions: string[];
    purpose: string;
    state_sections: string[];
    notices: { sharing: boolean; sale_opt_out: boolean; sharing_opt_out: boolean; targeted_advertising_opt_out: boolean };
    mspa: { covered_transaction: boolean; mode: "" | "opt_out_option" | "service_provider" };
  };
}

/** The strings the person's choices produce now, for the page's region. */
export interface AdSignals {
  /** The region code they were made for. */
  region: string;
  /** The consent revision they encode. */
  revision: number;
  /** "" outside TCF regions. */
  tcString: string;
  /** "" outside GPP regions (and in TCF regions when GPP is not used there). */
  gppString: string;
}

/**
 * What the TCF layer of the preference center needs from the signals part.
 * Purpose, legitimate-interest and special-feature choices are consentd
 * decisions (consent.set on the mapped purposes); only the per-vendor choices
 * live here.
 */
export interface TCFController {
  /** The policy's iab section. */
  policy(): IABPolicy;
  /** The vendor list, narrowed to the policy's vendors; loads it once. `any`: the GVL class of @iabtechlabtcf/core. */
  // biome-ignore lint/suspicious/noExplicitAny: the library's GVL class; the declarations must not need the library (the package bundles it)
  vendorList(): Promise<any>;
  /** The person's per-vendor consent choices (absent: follows the purposes). */
  vendorConsents(): Record<number, boolean>;
  /** Vendors whose legitimate interest the person objected to. */
  vendorObjections(): Record<number, boolean>;
  /** Records per-vendor choices (merged over the stored ones), rebuilds the strings and sends them. */
  setVendors(consents: Record<number, boolean>, objections: Record<number, boolean>): Promise<void>;
  /** Forgets every per-vendor choice (reject all, withdraw). */
  clearVendors(): Promise<void>;
  /** The current strings. */
  signals(): AdSignals;
  /** Called when the strings change. Returns a function that stops it. */
  on(event: "signals", listener: (s: AdSignals) => void): () => void;
}

/** A region code's IAB scope: TCF, a GPP US section, or neither. */
export interface Scope {
  /** The code resolves to one of the policy's iab.tcf.regions. */
  tcf: boolean;
  /** The GPP US section ("usnat", "usca"...) for a code of iab.gpp.regions; "" otherwise. */
  gpp: string;
}

/** The person's choices as the string rules read them. */
export interface Choices {
  /** consent.choice(purpose): true granted, false denied, undefined not decided. */
  choice(purpose: string): boolean | undefined;
  /** Whether the purpose is allowed now (GPP's opt-outs: denied, or by GPC). */
  allowed(purpose: string): boolean;
  /** The browser sends Global Privacy Control. */
  gpc: boolean;
  /** Per-vendor consent choices (the TCF layer's), by GVL vendor id. */
  vendors: Record<number, boolean>;
  /** Vendors whose legitimate interest the person objected to. */
  objections: Record<number, boolean>;
}
