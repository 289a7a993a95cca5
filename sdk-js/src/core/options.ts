// What createConsent takes (core.ts exports it with the rest of the public
// types). Types only: importing this file costs no bytes.

export interface ConsentOptions {
  /** consentd's base URL, e.g. "https://consent.shop.example". */
  endpoint: string;
  /** ISO 3166 code ("DE", "US-CA") the answers are computed for; sent with reads and writes. */
  region?: string;
  /**
   * A subject token minted by the site's backend for a logged-in user (or a
   * function fetching one). Without it the SDK uses an anonymous visitor.
   */
  token?: string | (() => Promise<string>);
  /** Name of the first-party cookie caching the state. Default "consentd". */
  cookieName?: string;
  /** Domain attribute of that cookie, to share it across subdomains. Default: this host only. */
  cookieDomain?: string;
  /** Lifetime of that cookie in days. Default 390. */
  cookieDays?: number;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
  /**
   * Backoff (ms) between retries while the service is unreachable: of a
   * choice it did not acknowledge, and of the sync that confirms the cached
   * state (also retried at once on the browser's `online` event).
   */
  retryDelays?: number[];
  /**
   * How long (ms) a request to consentd may take before it counts as failed.
   * Default 3000. A returning visitor's grants wait for the service's
   * confirmation at most this long; then they stay withheld until a retry
   * gets an answer.
   */
  timeout?: number;
  /**
   * The purposes a banner asks about: what needsPrompt lists, what the
   * preference center shows and what acceptAll/rejectAll set. Default:
   * every non-necessary purpose whose id has no dot. Dotted ids
   * ("marketing.email", "marketing.sms") are communication channels, asked
   * for where the person subscribes: an "Accept all" on a cookie banner must
   * not sign anyone up for text messages, and an undecided SMS channel must
   * not keep the banner up.
   */
  askFor?: string[];
}
