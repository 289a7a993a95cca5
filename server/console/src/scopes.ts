// What each screen and action needs, from server/auth/rules.go: an API key
// holding any one of the listed scopes may call (admin holds all). The
// console disables what the key may not do and names the scope missing;
// the API still decides, and a 403 it sends is shown as such.

export const SCOPES = ["check", "read", "write", "watch", "rights", "admin", "token"] as const;

export const NEEDS = {
  lookup: ["read"], // GetConsent
  history: ["rights"], // ListConsentEvents
  export: ["rights"], // ExportSubject
  erase: ["rights"], // EraseSubject
  restrict: ["rights"], // RestrictProcessing, LiftRestriction
  minor: ["write"], // MarkMinor, ConfirmGuardianConsent
  link: ["write"], // LinkSubjects
  stats: ["read", "rights"], // GetConsentStats
  consumers: ["watch"], // ListFeedConsumers
  policy: [], // GetPolicy: public
} as const satisfies Record<string, readonly string[]>;

export type Need = keyof typeof NEEDS;

export interface Grants {
  all: boolean; // admin, or demo mode
  scopes: string[];
}

export function grants(kind: string, scopes: string[]): Grants {
  return { all: kind === "CALLER_KIND_DEMO" || scopes.includes("admin"), scopes };
}

/** null if allowed, else the text naming what is missing ("needs scope rights"). */
export function missing(g: Grants, need: Need): string | null {
  const any: readonly string[] = NEEDS[need];
  if (g.all || any.length === 0 || any.some((s) => g.scopes.includes(s))) return null;
  return "needs scope " + any.join(" or ");
}
