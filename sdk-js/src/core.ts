// The headless core: the visitor's consent state, cached in a first-party
// cookie so the page can enforce it before any network call, kept in step
// with consentd, and written back through a retry queue so a choice made
// offline is never lost. No DOM UI here: ui.ts and the integrations take the
// Consent this returns.
//
// The cookie is a cache and the service is the truth. A denial read from the
// cookie counts at once; a grant read from it counts only once the service
// has confirmed the cached answer on this page view (state.confirmed): one
// conditional GET whose ETag is the cookie's own answer, 304 when nothing
// changed. So a withdrawal made elsewhere (a backend, another device) wins
// before any gated code runs, and consentd being unreachable withholds
// grants rather than guessing (fail closed). A choice made on this page
// counts at once.

import { answerTag, decodeCookie, encodeCookie, needsPrompt, SUBJECT_ID } from "./cookie.js";
import type { Consent, ConsentState, ChangeEvent, Policy, PurposeState, Reason, Source } from "./types.js";

// The cookie's codec, for tools that read the cookie themselves.
export { decodeCookie, encodeCookie, needsPrompt } from "./cookie.js";

// The public types, importable from "@consentd/sdk/core" (types cost no bytes).
export type { ChangeEvent, Consent, ConsentState, Policy, Purpose, PurposeState, Reason, Source } from "./types.js";

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

/** What the service returns for a subject (REST JSON of consent.v1.Consent). */
interface ServiceConsent {
  subject_id: string;
  revision?: string;
  linked?: boolean;
  gpc_time?: string | null;
  purposes?: { purpose: string; allowed?: boolean; reason?: string }[];
}

/** A choice not yet acknowledged by the service, kept in localStorage. */
interface Queued {
  /** Decisions by purpose, merged over every choice made while unacknowledged. */
  d: Record<string, boolean>;
  /** The choice was a withdrawal (sent to consent:withdraw). */
  w?: boolean;
  s: Source;
  /** The site's user it was made for (site tokens only), when known. */
  u?: string;
  /** Idempotency key: the same on every retry of the same request. */
  k: string;
}

/** The anonymous visitor's token, kept in localStorage (never in a cookie). */
interface StoredToken {
  subject_id: string;
  token: string;
  expire_time: string;
}

interface Auth {
  subject: string;
  token: string;
}

type HttpError = Error & { status?: number };

const TOKEN_KEY = "consentd.token";
const QUEUE_KEY = "consentd.queue";
// The policy and its ETag: the banner and preference center work offline.
const POLICY_KEY = "consentd.policy";
// Written on every change, to tell other tabs (see the storage listener).
const TABS_KEY = "consentd.tabs";

export function createConsent(options: ConsentOptions): Consent {
  const endpoint = options.endpoint.replace(/\/+$/, "");
  const region = options.region;
  const cookieName = options.cookieName || "consentd";
  const retryDelays = options.retryDelays || [1000, 5000, 30000, 120000];
  // Called as a plain function: a browser's fetch called as a method of
  // another object throws "Illegal invocation".
  const fetchFn: typeof fetch = options.fetch || ((input, init) => fetch(input, init));
  const hasDocument = typeof document != "undefined";
  const gpc = typeof navigator != "undefined" && (navigator as { globalPrivacyControl?: unknown }).globalPrivacyControl === true;
  const listeners = new Set<(e: ChangeEvent) => void>();
  // Where localStorage is blocked (some private modes, sandboxed frames)
  // the queue, token and policy live in memory for the page's lifetime.
  const memory: Record<string, string | null> = {};

  let policy: Policy | null = load(POLICY_KEY)?.p || null;
  let policyRequest: Promise<Policy> | null = null;
  let authRequest: Promise<Auth> | null = null;
  // With a site token: the user this page last spoke for.
  let user: string | undefined;
  let flushing: Promise<ConsentState> | null = null;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let attempt = 0;
  // The policy the listeners last heard of: its arrival is a change too
  // (the UI waits for it to render).
  let announced: Policy | null = null;
  // The newest answer the service gave this page, to drop a slower, older
  // one (a read that raced a write). Not the cookie's revision: a record
  // erased or expired at the service legitimately starts again at 0.
  let seenSubject = "";
  let seenRevision = -1;
  // The service answered on this page view (so the cookie's grants count),
  // and the linked flag it gave.
  let confirmed = false;
  let linked = false;
  let queue: Queued | null = load(QUEUE_KEY);
  // The answer POST /v1/visitors gave for the visitor it just minted, until
  // the first answer is taken.
  let fresh: ServiceConsent | null = null;
  // The cookie value this page last wrote: unchanged, it is not written again.
  let written = "";

  let state = fromCookie();

  if (typeof addEventListener == "function") {
    // A page waiting for the network tries again as soon as the browser is
    // back online, not only at the next backoff step.
    addEventListener("online", () => void sync().catch(noop));
    // Other tabs of this site keep in step: a tab that changed the state
    // writes TABS_KEY after the cookie and queue, and the others read them
    // again. A storage event (not a BroadcastChannel message, which can
    // arrive before the queue's change is visible in this tab) comes after
    // the changes made before it.
    addEventListener("storage", (e) => {
      queue = load(QUEUE_KEY);
      if (e.key == TABS_KEY) {
        confirmed ||= !!load(TABS_KEY)?.c;
        commit(fromCookie(), true);
      }
    });
  }

  function load(key: string): any {
    try {
      const raw = key in memory ? memory[key] : localStorage.getItem(key);
      return raw ? JSON.parse(raw) : null;
    } catch {
      return null;
    }
  }

  function save(key: string, value: unknown): void {
    const raw = value == null ? null : JSON.stringify(value);
    try {
      if (raw == null) localStorage.removeItem(key);
      else localStorage.setItem(key, raw);
      delete memory[key];
    } catch {
      memory[key] = raw;
    }
  }

  // The queue as this page last read or wrote it: localStorage is read once
  // (and again when another tab writes it), not on every has().
  function readQueue(): Queued | null {
    return queue?.k && queue.d ? queue : null;
  }

  function saveQueue(q: Queued | null): void {
    save(QUEUE_KEY, (queue = q));
  }

  function readCookie(): string {
    for (const part of document.cookie.split("; ")) {
      if (part.startsWith(cookieName + "=")) return part.slice(cookieName.length + 1);
    }
    return "";
  }

  function writeCookie(value: string): void {
    let cookie = `${cookieName}=${value}; Path=/; Max-Age=${((options.cookieDays ?? 390) * 86400) | 0}; SameSite=Lax`;
    if (options.cookieDomain) cookie += "; Domain=" + options.cookieDomain;
    if (location.protocol == "https:") cookie += "; Secure";
    document.cookie = cookie;
  }

  /** The state the cookie and the queue hold. */
  function fromCookie(): ConsentState {
    const c = hasDocument ? decodeCookie(readCookie()) : null;
    return makeState(c?.subjectId ?? null, c?.revision ?? 0, overlay(c?.purposes || {}));
  }

  function inPolicyNecessary(id: string): boolean {
    return id == "necessary" || !!policy?.purposes.some((p) => p.id == id && p.necessary);
  }

  // Called while the first state is being made: must not read `state`.
  function asks(id: string): boolean {
    return options.askFor ? options.askFor.includes(id) : !id.includes(".") && !inPolicyNecessary(id);
  }

  /** The purposes known now: the policy's once known, else those of purposes (default: the state's). */
  function knownPurposes(purposes = state.purposes): string[] {
    return policy ? policy.purposes.map((p) => p.id) : Object.keys(purposes);
  }

  function makeState(subjectId: string | null, revision: number, purposes: Record<string, PurposeState>): ConsentState {
    return {
      subjectId,
      revision,
      purposes,
      gpc,
      gpcHonoured: Object.values(purposes).some((p) => p.reason == "gpc"),
      needsPrompt: needsPrompt(purposes, asks),
      pending: !!readQueue(),
      confirmed,
      linked,
    };
  }

  /** Applies the queued (unacknowledged) choice over purposes: what the page must obey now. */
  function overlay(purposes: Record<string, PurposeState>): Record<string, PurposeState> {
    const q = readQueue();
    const out = { ...purposes };
    if (q?.w) {
      for (const id of knownPurposes(purposes)) {
        if (!inPolicyNecessary(id) && purposes[id]?.reason != "necessary") out[id] = { allowed: false, reason: "explicit" };
      }
    }
    for (const id in q?.d) out[id] = { allowed: q!.d[id], reason: "explicit" };
    return out;
  }

  function commit(next: ConsentState, quiet?: boolean): ConsentState {
    const previous = state;
    state = next;
    const value = encodeCookie(next);
    if (hasDocument && value != written) writeCookie((written = value));
    if (JSON.stringify(next) != JSON.stringify(previous) || announced != policy) {
      announced = policy;
      if (!quiet) save(TABS_KEY, { c: confirmed, k: randomKey() }); // a new value every time: an event every time
      for (const listener of [...listeners]) {
        try {
          listener({ state: next, previous });
        } catch (err) {
          // One broken listener must not stop enforcement by the others.
          setTimeout(() => {
            throw err;
          });
        }
      }
    }
    return next;
  }

  /** Re-derives the state (the policy says which purposes are necessary and asked about). */
  function refresh(): ConsentState {
    return commit(makeState(state.subjectId, state.revision, overlay(state.purposes)));
  }

  /** Takes the service's answer, unless it is older than what we hold. */
  function accept(c: ServiceConsent): ConsentState {
    const revision = Number(c.revision) || 0;
    // (A link makes the visitor's reads the user's record, whose revision
    // may be lower: that answer is newer, not older.)
    if (c.subject_id == seenSubject && revision < seenRevision && !!c.linked == linked) return state;
    seenSubject = c.subject_id;
    seenRevision = revision;
    fresh = null;
    confirmed = true;
    linked = !!c.linked;
    const purposes: Record<string, PurposeState> = {};
    for (const p of c.purposes || []) {
      // "REASON_EXPLICIT" -> "explicit"
      purposes[p.purpose] = { allowed: !!p.allowed, reason: (p.reason || "").slice(7).toLowerCase() as Reason };
    }
    return commit(makeState(c.subject_id, revision, overlay(purposes)));
  }

  /**
   * One call to consentd, bounded by options.timeout. With tag, a
   * conditional request: null when the service answers 304 (unchanged).
   * The answer's ETag is returned as `etag`.
   */
  async function request(method: string, path: string, body?: unknown, token?: string, tag?: string): Promise<any> {
    const headers: Record<string, string> = {};
    if (token) headers.Authorization = "Bearer " + token;
    // No Content-Type: fetch sends a JSON string as text/plain, which
    // consentd reads as JSON, and POST /v1/visitors (no Authorization) stays
    // a CORS simple request: no preflight round trip on a first visit.
    if (tag) headers["If-None-Match"] = tag;
    const res = await fetchFn(endpoint + path, {
      method,
      headers,
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(options.timeout || 3000),
    });
    if (res.status == 304) return null;
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      const err: HttpError = new Error(`consentd: ${method} ${path}: ${res.status} ${data.message || ""}`);
      err.status = res.status;
      throw err;
    }
    data.etag = res.headers.get("ETag");
    return data;
  }

  /** The anonymous visitor's token: stored, refreshed when under 7 days are left, or freshly minted. */
  async function visitorToken(): Promise<StoredToken> {
    const stored: StoredToken | null = load(TOKEN_KEY);
    const left = stored ? Date.parse(stored.expire_time) - Date.now() : 0;
    if (stored && left > 7 * 864e5) return stored; // 7 days
    if (stored && left > 0) {
      try {
        const r = await request("POST", "/v1/tokens:refresh", {}, stored.token);
        return storeToken({ subject_id: stored.subject_id, ...r.token });
      } catch (err) {
        // Unreachable: the old token still works. 401: it was revoked or its key retired.
        if ((err as HttpError).status != 401) return stored;
      }
    }
    const r = await request("POST", "/v1/visitors", { region });
    fresh = r.consent; // the new visitor's answer: no read needed
    return storeToken({ subject_id: r.subject_id, ...r.token });
  }

  function storeToken(t: StoredToken): StoredToken {
    save(TOKEN_KEY, t);
    return t;
  }

  function auth(): Promise<Auth> {
    return (authRequest ||= (async (): Promise<Auth> => {
      const given = options.token;
      if (given) {
        const token = typeof given == "string" ? given : await given();
        return { token, subject: (user = jwtSubject(token)) };
      }
      const t = await visitorToken();
      return { token: t.token, subject: t.subject_id };
    })().catch((err) => {
      authRequest = null;
      throw err;
    }));
  }

  /**
   * Calls the API as the subject. A 401 means the token is dead: drop it and
   * try once more with a new one (for a visitor, a new visitor: the old
   * choices are gone and the banner asks again). tag(subject) may make the
   * request conditional.
   */
  async function call(method: string, path: (subject: string) => string, body?: unknown, tag?: (subject: string) => string | undefined): Promise<any> {
    for (let retried = false; ; retried = true) {
      const used = auth();
      const { subject, token } = await used;
      try {
        return await request(method, path(encodeURIComponent(subject)), body, token, tag?.(subject));
      } catch (err) {
        if ((err as HttpError).status != 401 || retried) throw err;
        // Calls made in parallel all fail with the same token: the first
        // drops it, the others then share its replacement.
        if (authRequest == used) {
          authRequest = null;
          if (!options.token) save(TOKEN_KEY, null);
        }
      }
    }
  }

  /** The policy (public: no token needed, so it loads while a visitor is minted): fetched, or revalidated by its ETag when cached. */
  function loadPolicy(): Promise<Policy> {
    return (policyRequest ||= request("GET", "/v1/policy", undefined, undefined, policy && load(POLICY_KEY)?.e).then(
      (r) => {
        if (r) save(POLICY_KEY, { e: r.etag, p: (policy = r.policy as Policy) });
        return policy!;
      },
      (err) => {
        policyRequest = null;
        throw err;
      },
    ));
  }

  function writeBody(q: Queued, withDecisions: boolean): Record<string, unknown> {
    const body: Record<string, unknown> = { source: "SOURCE_" + q.s.toUpperCase(), idempotency_key: q.k };
    if (withDecisions) body.decisions = q.d;
    if (region) body.region = region;
    if (state.gpc) body.gpc = true;
    return body;
  }

  /** Unreachable, overloaded, or a site token that stopped working (the next page brings a new one). */
  function retryable(err: unknown): boolean {
    const status = (err as HttpError).status;
    return !status || status >= 500 || status == 429 || (status == 401 && !!options.token);
  }

  /** Tries sync() again after the next backoff step. */
  function later(): void {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => void sync().catch(noop), retryDelays[Math.min(attempt++, retryDelays.length - 1)]);
    (retryTimer as { unref?: () => void }).unref?.(); // lets a Node process (tests, SSR) exit
  }

  /**
   * Sends the queued choice until the service acknowledges it. One flush at
   * a time; a choice merged into the queue while a request was out gets a
   * new key and goes out next.
   */
  async function flush(): Promise<ConsentState> {
    if (!readQueue()) return state;
    return (flushing ||= (async () => {
      let q: Queued | null;
      while ((q = readQueue())) {
        let answer: { consent: ServiceConsent };
        try {
          // A site's user is a known person: never send one user's choice
          // for another who logged in on this browser before it went out.
          // (A visitor's choice does follow a newly minted visitor id.)
          if (q.u && q.u != (await auth()).subject) {
            saveQueue(null);
            accept(await readAnswer());
            continue;
          }
          answer = q.w
            ? await call("POST", (id) => `/v1/subjects/${id}/consent:withdraw`, writeBody(q, false))
            : await call("PATCH", consentPath, writeBody(q, true));
        } catch (err) {
          if (retryable(err)) {
            later();
            return state;
          }
          // The service refused the request itself (it will never succeed):
          // drop it so it does not block later choices, put the page back on
          // the service's state, and say so.
          if (readQueue()?.k == q.k) saveQueue(null);
          await readAnswer().then(accept, noop);
          throw err;
        }
        attempt = 0;
        if (readQueue()?.k == q.k) saveQueue(null);
        accept(answer.consent);
      }
      return state;
    })().finally(() => {
      flushing = null;
    }));
  }

  /** Queues a choice, applies it at once (enforcement must not wait for the network), then sends it. */
  function choose(decisions: Record<string, boolean>, withdraw: boolean, source: Source): Promise<ConsentState> {
    const previous = readQueue();
    const d: Record<string, boolean> = {};
    if (previous?.w && !withdraw) {
      // A withdrawal still queued, then a new choice: send both as one update.
      for (const id of knownPurposes()) if (!isNecessary(id)) d[id] = false;
    }
    if (!withdraw) Object.assign(d, previous?.d);
    for (const id in decisions) {
      // Never deny `necessary` (the service refuses it); granting it is a no-op.
      if (!isNecessary(id)) d[id] = !!decisions[id];
    }
    saveQueue({ d, w: withdraw || undefined, s: source, k: randomKey(), u: options.token ? user : undefined });
    refresh();
    return flush();
  }

  function isNecessary(id: string): boolean {
    return inPolicyNecessary(id) || state.purposes[id]?.reason == "necessary";
  }

  async function setAll(allowed: boolean, source: Source): Promise<ConsentState> {
    if (!knownPurposes().some(asks)) {
      // Nothing known yet (a first visit while consentd is unreachable): a
      // rejection is queued as a withdrawal of everything non-necessary (no
      // purpose list needed); an acceptance needs the purposes it grants.
      if (!allowed) return choose({}, true, source);
      await loadPolicy();
    }
    const decisions: Record<string, boolean> = {};
    for (const id of knownPurposes()) if (asks(id)) decisions[id] = allowed;
    return choose(decisions, false, source);
  }

  function consentPath(id: string): string {
    return `/v1/subjects/${id}/consent`;
  }

  /**
   * The service's answer; with conditional, revalidating the cached one by
   * its answerTag (null: unchanged). Not when this browser sends GPC: the
   * answer's gpc_time tells whether the service has recorded the signal.
   */
  async function readAnswer(conditional?: boolean): Promise<ServiceConsent> {
    await auth();
    if (fresh) return fresh;
    return call(
      "GET",
      (id) => consentPath(id) + (region ? "?region=" + encodeURIComponent(region) : ""),
      undefined,
      (subject) => (conditional && !state.gpc && subject == state.subjectId ? `"${answerTag(state)}"` : undefined),
    ).then((r) => r && r.consent);
  }

  /** Takes the answer to the revalidation: null (304) confirms the cached state. */
  async function revalidated(answer: ServiceConsent | null): Promise<void> {
    attempt = 0;
    if (!answer) {
      confirmed = true;
      refresh();
      return;
    }
    if (state.gpc && !answer.gpc_time) {
      // The service has not seen this browser's GPC signal: record it
      // before obeying an answer made without it, which in an opt-out
      // region allows the very tracking GPC opts out of.
      answer = await call("PATCH", consentPath, writeBody({ d: {}, s: "api", k: randomKey() }, true)).then(
        (r) => r.consent,
        () => answer, // not recorded this time; the next sync tries again
      );
    }
    accept(answer!);
  }

  async function sync(): Promise<ConsentState> {
    try {
      // A queued choice's answer is the newest state (and carries the GPC
      // signal): no separate read. The answer is taken even if the policy
      // cannot be fetched: it is what lets the cookie's grants count.
      await Promise.all([loadPolicy(), readQueue() ? flush() : readAnswer(true).then(revalidated)]);
      return refresh();
    } catch (err) {
      if (retryable(err)) later();
      throw err;
    }
  }

  return {
    get: () => state,
    has(purpose) {
      // A grant from the cookie counts once the service confirmed it, or when
      // the person chose it on this browser and it is still on its way.
      return isNecessary(purpose) || (!!state.purposes[purpose]?.allowed && (confirmed || readQueue()?.d[purpose] === true));
    },
    choice(purpose) {
      const p = state.purposes[purpose];
      return p?.reason == "explicit" ? p.allowed : undefined;
    },
    asked: () => knownPurposes().filter(asks),
    policy: () => policy,
    sync,
    set: (decisions, source = "api") => choose(decisions, false, source),
    acceptAll: (source = "api") => setAll(true, source),
    rejectAll: (source = "api") => setAll(false, source),
    withdraw: (source = "api") => choose({}, true, source),
    on(_event, listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
  };
}

/** The subject a site's token is bound to: the JWT's "sub" claim. */
function jwtSubject(token: string): string {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const sub = JSON.parse(atob(payload)).sub;
    if (typeof sub == "string" && SUBJECT_ID.test(sub)) return sub;
  } catch {
    // reported below
  }
  throw new Error("consentd: token is not a subject token");
}

/** 128 random bits, e.g. "3921-77-40551-2873902": an idempotency key per choice. getRandomValues works on http pages too. */
function randomKey(): string {
  return crypto.getRandomValues(new Uint32Array(4)).join("-");
}

function noop(): void {}
