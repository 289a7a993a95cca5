// The SDK's entries in localStorage. Where localStorage is blocked (some
// private modes, sandboxed frames) they live in the instance's memory for
// the page's lifetime: the queue, token and policy still work on this page.

/** The anonymous visitor's token (never in a cookie). */
export const TOKEN_KEY = "consentd.token";
/** The choice not yet acknowledged by the service (core/queue.ts). */
export const QUEUE_KEY = "consentd.queue";
/** The policy and its ETag: the banner and preference center work offline. */
export const POLICY_KEY = "consentd.policy";
/** Written on every change, to tell other tabs (see the storage listener in core.ts). */
export const TABS_KEY = "consentd.tabs";

/** An instance's entries while localStorage refuses them. */
export type Memory = Record<string, string | null>;

/** The JSON value under key; null when there is none or it cannot be read. */
export function load<T>(memory: Memory, key: string): T | null {
  try {
    const raw = key in memory ? memory[key] : localStorage.getItem(key);
    return raw ? (JSON.parse(raw) as T) : null;
  } catch {
    return null;
  }
}

/** Stores value as JSON under key; null removes it. */
export function save(memory: Memory, key: string, value: unknown): void {
  const raw = value == null ? null : JSON.stringify(value);
  try {
    if (raw == null) localStorage.removeItem(key);
    else localStorage.setItem(key, raw);
    delete memory[key];
  } catch {
    memory[key] = raw;
  }
}
