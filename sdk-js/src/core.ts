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
//
// The parts are in core/: the cookie (codec and I/O), storage, http (requests
// and the subject token's lifecycle), the queued choice's record, and the
// options. The instance's state, and what changes it (deriving the state,
// sending the queue with its backoff, sync), stays in createConsent: every
// closure variable a module boundary has to carry costs bundle bytes, and
// the core's budget had 7 B to spare (a factory per part measured +50 to
// +230 B gzipped).

import { answerTag, decodeCookie, encodeCookie, needsPrompt, readCookie, writeCookie } from "./core/cookie.js";
import { consentPath, createHttp, retryable, type ServiceConsent } from "./core/http.js";
import { noop, randomKey, writeBody, type Queued } from "./core/queue.js";
import type { ConsentOptions } from "./core/options.js";
import { load, POLICY_KEY, QUEUE_KEY, save, TABS_KEY, type Memory } from "./core/storage.js";
import type { Consent, ConsentState, ChangeEvent, Policy, PurposeState, Reason, Source } from "./types.js";

// The cookie's codec, for tools that read the cookie themselves.
export { decodeCookie, encodeCookie, needsPrompt } from "./core/cookie.js";

// The public types, importable from "@consentd/sdk/core" (types cost no bytes).
export type { ConsentOptions } from "./core/options.js";
export type { ChangeEvent, Consent, ConsentState, Policy, Purpose, PurposeState, Reason, Source } from "./types.js";

export function createConsent(options: ConsentOptions): Consent {
  const region = options.region;
  const cookieName = options.cookieName || "consentd";
  const retryDelays = options.retryDelays || [1000, 5000, 30000, 120000];
  const hasDocument = typeof document != "undefined";
  const gpc = typeof navigator != "undefined" && (navigator as { globalPrivacyControl?: unknown }).globalPrivacyControl === true;
  const listeners = new Set<(e: ChangeEvent) => void>();
  // This instance's storage where localStorage is blocked (core/storage.ts).
  const memory: Memory = {};

  let policy: Policy | null = load<{ p: Policy }>(memory, POLICY_KEY)?.p || null;
  let policyRequest: Promise<Policy> | null = null;
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
  let queue = load<Queued>(memory, QUEUE_KEY);
  // The answer POST /v1/visitors gave for the visitor it just minted, until
  // the first answer is taken.
  let fresh: ServiceConsent | null = null;
  // The cookie value this page last wrote: unchanged, it is not written again.
  let written = "";

  const [request, auth, call, user] = createHttp(options, memory, (answer) => (fresh = answer));
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
      queue = load<Queued>(memory, QUEUE_KEY);
      if (e.key == TABS_KEY) {
        confirmed ||= !!load<{ c: boolean }>(memory, TABS_KEY)?.c;
        commit(fromCookie(), true);
      }
    });
  }

  // The queue as this page last read or wrote it: localStorage is read once
  // (and again when another tab writes it), not on every has().
  function readQueue(): Queued | null {
    return queue?.k && queue.d ? queue : null;
  }

  function saveQueue(q: Queued | null): void {
    save(memory, QUEUE_KEY, (queue = q));
  }

  /** The state the cookie and the queue hold. */
  function fromCookie(): ConsentState {
    const c = hasDocument ? decodeCookie(readCookie(cookieName)) : null;
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
    // biome-ignore lint/style/noNonNullAssertion: the loop runs only when q is set
    for (const id in q?.d) out[id] = { allowed: q!.d[id], reason: "explicit" };
    return out;
  }

  function commit(next: ConsentState, quiet?: boolean): ConsentState {
    const previous = state;
    state = next;
    const value = encodeCookie(next);
    if (hasDocument && value != written) writeCookie(cookieName, (written = value), options);
    if (JSON.stringify(next) != JSON.stringify(previous) || announced != policy) {
      announced = policy;
      if (!quiet) save(memory, TABS_KEY, { c: confirmed, k: randomKey() }); // a new value every time: an event every time
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

  /** The policy (public: no token needed, so it loads while a visitor is minted): fetched, or revalidated by its ETag when cached. */
  function loadPolicy(): Promise<Policy> {
    return (policyRequest ||= request("GET", "/v1/policy", undefined, undefined, policy && load<{ e: string }>(memory, POLICY_KEY)?.e).then(
      (r) => {
        if (r) save(memory, POLICY_KEY, { e: r.etag, p: (policy = r.policy as Policy) });
        // biome-ignore lint/style/noNonNullAssertion: set now, or cached before (only a cached policy's ETag gets a 304)
        return policy!;
      },
      (err) => {
        policyRequest = null;
        throw err;
      },
    ));
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
            ? await call("POST", (id) => consentPath(id) + ":withdraw", writeBody(q, false, region, state.gpc))
            : await call("PATCH", consentPath, writeBody(q, true, region, state.gpc));
        } catch (err) {
          if (retryable(err, !!options.token)) {
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
    saveQueue({ d, w: withdraw || undefined, s: source, k: randomKey(), u: options.token ? user() : undefined });
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
    ).then((r) => r?.consent);
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
      answer = await call("PATCH", consentPath, writeBody({ d: {}, s: "api", k: randomKey() }, true, region, state.gpc)).then(
        (r) => r.consent,
        () => answer, // not recorded this time; the next sync tries again
      );
    }
    // biome-ignore lint/style/noNonNullAssertion: checked above, and the GPC write keeps it or replaces it with its answer
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
      if (retryable(err, !!options.token)) later();
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
