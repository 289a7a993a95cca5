// The contract between the SDK's parts: core (no DOM UI), ui and
// integrations. Types only: importing this file costs no bytes.

/** A purpose as the service's policy defines it (GET /v1/policy). */
export interface Purpose {
  id: string; // "analytics", "marketing.email"
  version: number;
  necessary: boolean;
  gpc: boolean;
  always_opt_in: boolean;
  legal_basis: string;
  lifetime_seconds: string; // int64 as a string, as protojson writes it
  titles: Record<string, string>; // by language: "en", "de", "fr"
  descriptions: Record<string, string>;
}

export interface Policy {
  version: string;
  default_region: string;
  purposes: Purpose[];
  regions: { id: string; mechanism: string; codes: string[] }[];
}

/** Why a purpose is allowed or not (the service's Reason, lower case). */
export type Reason =
  | "explicit"
  | "default"
  | "gpc"
  | "expired"
  | "policy_changed"
  | "necessary"
  | "restricted"
  | "awaiting_guardian";

export interface PurposeState {
  allowed: boolean;
  reason: Reason;
}

/** What the page may do now: read synchronously from the first-party cookie. */
export interface ConsentState {
  /** The visitor's subject id; null before the service minted one. */
  subjectId: string | null;
  /** The subject's revision at the service; 0 if never written. */
  revision: number;
  /** Effective answers by purpose id. Purposes missing here are not allowed. */
  purposes: Record<string, PurposeState>;
  /** The browser sends Global Privacy Control (navigator.globalPrivacyControl). */
  gpc: boolean;
  /** GPC was honoured: some purpose is denied with reason "gpc". */
  gpcHonoured: boolean;
  /**
   * Purposes to ask about: never decided in an opt-in region ("default" and
   * not allowed), or whose decision expired or whose policy version changed.
   * Empty when nothing needs asking. The banner shows when this is not empty.
   */
  needsPrompt: string[];
  /** Choices made but not yet acknowledged by the service (offline). */
  pending: boolean;
  /**
   * The service confirmed this state during this page view (a 200 or a 304
   * to the revalidation sync() makes). Until then a grant read from the
   * cookie is only a cache: has() answers false for it (a denial counts at
   * once), so a withdrawal made on another device or by a backend wins
   * before any gated code runs. A choice made on this page counts at once.
   */
  confirmed: boolean;
  /**
   * This visitor was linked to a site account by the site's backend: its
   * choices are the account's. The account is never named to the browser.
   */
  linked: boolean;
}

export type Source = "banner" | "preference_center" | "api";

export interface ChangeEvent {
  state: ConsentState;
  previous: ConsentState;
}

/** The core instance every optional part takes. */
export interface Consent {
  /** Current state, synchronously (cookie cache, then the service's answer). */
  get(): ConsentState;
  /**
   * Whether the page may use a purpose now: allowed, and (for a grant read
   * from the cookie) confirmed by the service on this page view.
   * `necessary` is always true. Gate code on this.
   */
  has(purpose: string): boolean;
  /**
   * The person's own recorded decision for a purpose: true (they granted
   * it), false (they denied it), or undefined (they never decided, or the
   * decision no longer counts: expired, policy changed). Unlike has(), a
   * region's default never reads as a choice: bind a subscription checkbox
   * to this, not to has().
   */
  choice(purpose: string): boolean | undefined;
  /**
   * The purposes the banner and preference center ask about, in policy
   * order once the policy is known (the askFor option; default: the
   * non-necessary purposes without a dot in their id).
   */
  asked(): string[];
  /** The policy, once sync() has fetched it; null before. */
  policy(): Policy | null;
  /** Fetch the policy and the visitor's consent, and flush queued choices. */
  sync(): Promise<ConsentState>;
  /** Record decisions (true grants, false denies); others stay as they are. */
  set(decisions: Record<string, boolean>, source?: Source): Promise<ConsentState>;
  acceptAll(source?: Source): Promise<ConsentState>;
  rejectAll(source?: Source): Promise<ConsentState>;
  /** Withdraw every non-necessary purpose. */
  withdraw(source?: Source): Promise<ConsentState>;
  /** Called after every change of state (a choice, a sync that changed something). */
  on(event: "change", listener: (e: ChangeEvent) => void): () => void;
}
