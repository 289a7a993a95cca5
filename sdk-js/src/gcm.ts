// Google Consent Mode v2: Google's tags read seven consent signals from
// gtag('consent', ...) calls. consentModeDefault denies them before any tag
// loads (all but security_storage, always granted); consentMode keeps them in
// step with the visitor's choices.

import type { Consent } from "./types.js";

export type Signal =
  | "ad_storage"
  | "ad_user_data"
  | "ad_personalization"
  | "analytics_storage"
  | "functionality_storage"
  | "personalization_storage"
  | "security_storage";

type Gtag = (...args: unknown[]) => void;

/** Which purposes each signal needs: granted when all of them are allowed. */
export const defaultMapping: Record<Signal, string[]> = {
  ad_storage: ["ads"],
  ad_user_data: ["ads"],
  ad_personalization: ["ads"],
  analytics_storage: ["analytics"],
  functionality_storage: ["functional"],
  personalization_storage: ["functional"],
  security_storage: ["necessary"],
};

/**
 * Sets every signal to denied but security_storage (necessary: always
 * granted), with wait_for_update so tags hold their first hit for the stored
 * choice. Call it before any Google tag is on the page.
 */
export function consentModeDefault(options: { gtag?: Gtag; waitForUpdate?: number; region?: string[] } = {}): void {
  const defaults: Record<string, unknown> = { wait_for_update: options.waitForUpdate ?? 500 };
  for (const signal in defaultMapping) defaults[signal] = "denied";
  defaults.security_storage = "granted";
  if (options.region) defaults.region = options.region;
  (options.gtag || gtag())("consent", "default", defaults);
}

/**
 * Sends gtag('consent', 'update', ...) now if the visitor's state is known
 * (a cached cookie or an answer from the service), and on every change that
 * changes a signal. Returns a function that stops it.
 */
export function consentMode(consent: Consent, options: { gtag?: Gtag; mapping?: Partial<Record<Signal, string[]>> } = {}): () => void {
  const mapping: Record<string, string[]> = { ...defaultMapping, ...options.mapping };
  let sent = "";
  const update = () => {
    const signals = consentSignals(consent, mapping);
    const key = JSON.stringify(signals);
    if (key == sent) return;
    sent = key;
    (options.gtag || gtag())("consent", "update", signals);
  };
  const state = consent.get();
  if (state.revision > 0 || Object.keys(state.purposes).length) update();
  return consent.on("change", update);
}

/** The signals for the current state: granted when every mapped purpose is allowed. */
export function consentSignals(consent: Pick<Consent, "has">, mapping: Record<string, string[]> = defaultMapping): Record<string, "granted" | "denied"> {
  const signals: Record<string, "granted" | "denied"> = {};
  for (const signal in mapping) signals[signal] = mapping[signal].every((p) => consent.has(p)) ? "granted" : "denied";
  return signals;
}

/** The page's gtag, or the official snippet's stand-in that queues calls for the tag. */
function gtag(): Gtag {
  const w = window as unknown as { dataLayer?: unknown[]; gtag?: Gtag };
  w.dataLayer ||= [];
  // Google's tag reads the Arguments object the official snippet pushes,
  // not an array: hence `function` and `arguments`.
  return (w.gtag ||= function () {
    // biome-ignore lint/complexity/noArguments: the tag reads an Arguments object (see above)
    (w.dataLayer ||= []).push(arguments);
  });
}
