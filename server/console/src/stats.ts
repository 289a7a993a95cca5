// The analytics screen's numbers, from GET /v1/stats (GetConsentStats):
// pure functions over its days, so what the charts draw and what the tables
// print are the same numbers.

export interface DecisionCounts {
  purpose: string;
  region: string;
  granted: string; // int64 as a string
  denied: string;
  withdrawn: string;
}
export interface DayStats {
  day: string;
  decisions: DecisionCounts[];
  methods: { region: string; method: string; count: string }[];
  banner: { region: string; step: string; count: string }[];
}

export const METHODS = [
  "CONSENT_METHOD_BANNER_ACCEPT_ALL",
  "CONSENT_METHOD_BANNER_REJECT_ALL",
  "CONSENT_METHOD_BANNER_OTHER",
  "CONSENT_METHOD_PREFERENCE_CENTER",
  "CONSENT_METHOD_API",
  "CONSENT_METHOD_GPC",
  "CONSENT_METHOD_IMPORT",
];
export const METHOD_LABELS: Record<string, string> = {
  CONSENT_METHOD_BANNER_ACCEPT_ALL: "Banner: accept all",
  CONSENT_METHOD_BANNER_REJECT_ALL: "Banner: reject all",
  CONSENT_METHOD_BANNER_OTHER: "Banner: other",
  CONSENT_METHOD_PREFERENCE_CENTER: "Preference center",
  CONSENT_METHOD_API: "API",
  CONSENT_METHOD_GPC: "GPC signal",
  CONSENT_METHOD_IMPORT: "Import",
};
export const STEPS = ["BANNER_STEP_SHOWN", "BANNER_STEP_ACCEPT_ALL", "BANNER_STEP_REJECT_ALL", "BANNER_STEP_CUSTOMISED", "BANNER_STEP_CLOSED"];
export const STEP_LABELS: Record<string, string> = {
  BANNER_STEP_SHOWN: "Shown",
  BANNER_STEP_ACCEPT_ALL: "Accept all",
  BANNER_STEP_REJECT_ALL: "Reject all",
  BANNER_STEP_CUSTOMISED: "Customised",
  BANNER_STEP_CLOSED: "Closed",
};

export interface Filter {
  purpose: string; // "" for all
  region: string; // "" for all
}

export interface DecisionRow {
  day: string;
  granted: number;
  denied: number;
  withdrawn: number;
  /** granted / (granted + denied + withdrawn); null on a day without decisions. */
  rate: number | null;
}

const n = (v: string | number | undefined) => Number(v || 0);
const rate = (g: number, d: number, w: number) => (g + d + w ? g / (g + d + w) : null);

export function regionsIn(days: DayStats[]): string[] {
  const set = new Set<string>();
  for (const d of days) {
    for (const x of d.decisions || []) set.add(x.region);
    for (const x of d.methods || []) set.add(x.region);
    for (const x of d.banner || []) set.add(x.region);
  }
  return [...set].sort();
}

export function decisionsByDay(days: DayStats[], f: Filter): DecisionRow[] {
  return days.map((d) => {
    let granted = 0;
    let denied = 0;
    let withdrawn = 0;
    for (const x of d.decisions || []) {
      if ((f.purpose && x.purpose !== f.purpose) || (f.region && x.region !== f.region)) continue;
      granted += n(x.granted);
      denied += n(x.denied);
      withdrawn += n(x.withdrawn);
    }
    return { day: d.day, granted, denied, withdrawn, rate: rate(granted, denied, withdrawn) };
  });
}

export function decisionTotals(rows: DecisionRow[]) {
  const t = rows.reduce((a, r) => ({ granted: a.granted + r.granted, denied: a.denied + r.denied, withdrawn: a.withdrawn + r.withdrawn }), { granted: 0, denied: 0, withdrawn: 0 });
  return { ...t, rate: rate(t.granted, t.denied, t.withdrawn) };
}

/** Writes per day and method (methods carry no purpose: only the region filter applies). */
export function methodsByDay(days: DayStats[], f: Filter): { day: string; counts: Record<string, number> }[] {
  return days.map((d) => {
    const counts: Record<string, number> = Object.fromEntries(METHODS.map((m) => [m, 0]));
    for (const x of d.methods || []) {
      if (f.region && x.region !== f.region) continue;
      counts[x.method] = (counts[x.method] || 0) + n(x.count);
    }
    return { day: d.day, counts };
  });
}

/** The banner funnel's totals over the range, per step (region filter only). */
export function funnel(days: DayStats[], f: Filter): Record<string, number> {
  const totals: Record<string, number> = Object.fromEntries(STEPS.map((s) => [s, 0]));
  for (const d of days) {
    for (const x of d.banner || []) {
      if (f.region && x.region !== f.region) continue;
      totals[x.step] = (totals[x.step] || 0) + n(x.count);
    }
  }
  return totals;
}

export const percent = (r: number | null) => (r === null ? "–" : (Math.round(r * 1000) / 10).toFixed(1) + "%");
