// Test doubles for the unit tests: a browser's globals (document.cookie,
// localStorage, navigator, location, window events) and an in-memory
// consentd answering the REST calls the SDK makes, recording each one.
// Real-browser behaviour is covered by test/browser/.

const DAY = 864e5;

/** Installs fresh browser globals and returns handles to inspect them. */
export function fakeBrowser({ gpc = false, host = "shop.example", protocol = "https:", storage = new Map(), jar = new Map(), tabs = false } = {}) {
  const events = new EventTarget();
  const cookieWrites = [];
  define("document", {
    get cookie() {
      return [...jar.values()].map((c) => `${c.name}=${c.value}`).join("; ");
    },
    set cookie(line) {
      cookieWrites.push(line);
      const [pair, ...attrs] = line.split("; ");
      const eq = pair.indexOf("=");
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const attr = (n) => attrs.find((a) => a.toLowerCase().startsWith(n.toLowerCase() + "="))?.split("=")[1];
      const domain = (attr("Domain") || "").replace(/^\./, "");
      const key = name + "|" + domain;
      if (attr("Max-Age") === "0") jar.delete(key);
      else jar.set(key, { name, value, domain, attrs });
    },
  });
  define("localStorage", {
    getItem: (k) => (storage.has(k) ? storage.get(k) : null),
    setItem(k, v) {
      storage.set(k, String(v));
      // With tabs, every SDK instance on this fake browser is a tab: each
      // hears of a write as a browser's other tabs do (the writer too, which
      // a browser spares; hearing its own write changes nothing).
      if (tabs) setTimeout(() => events.dispatchEvent(Object.assign(new Event("storage"), { key: k })));
    },
    removeItem: (k) => storage.delete(k),
  });
  define("navigator", { globalPrivacyControl: gpc });
  define("location", { protocol, hostname: host, origin: `${protocol}//${host}` });
  define("window", globalThis);
  define("addEventListener", events.addEventListener.bind(events));
  define("removeEventListener", events.removeEventListener.bind(events));
  define("dispatchEvent", events.dispatchEvent.bind(events));
  return {
    jar,
    storage,
    cookieWrites,
    /** The first-party cookie's value, or undefined. */
    cookie: (name = "consentd") => [...jar.values()].find((c) => c.name === name)?.value,
    stored: (key) => (storage.has(key) ? JSON.parse(storage.get(key)) : null),
    /** The same storage and cookies in a new page (a reload). */
    reload: (opts = {}) => fakeBrowser({ gpc, host, protocol, storage, jar, tabs, ...opts }),
  };
}

function define(name, value) {
  Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
}

export const policy = {
  version: "test-1",
  default_region: "rest_of_world",
  purposes: [
    { id: "necessary", version: 1, necessary: true, gpc: false },
    { id: "functional", version: 1, necessary: false, gpc: false },
    { id: "analytics", version: 1, necessary: false, gpc: false },
    { id: "ads", version: 1, necessary: false, gpc: true },
    { id: "marketing.email", version: 1, necessary: false, gpc: false },
  ].map((p) => ({ always_opt_in: false, legal_basis: "consent", lifetime_seconds: "0", titles: { en: p.id }, descriptions: {}, ...p })),
  regions: [
    { id: "eea", mechanism: "MECHANISM_OPT_IN", codes: ["DE"] },
    { id: "us", mechanism: "MECHANISM_OPT_OUT", codes: ["US"] },
  ],
};

/**
 * An in-memory consentd. `down = true` makes every call fail as a network
 * error would; `status = 503` answers every call with that status.
 */
export function fakeConsentd({ mechanism = "opt_in", tokenDays = 180 } = {}) {
  const svc = {
    calls: [],
    down: false,
    status: 0,
    mechanism,
    /** subject id -> { revision, decisions: {purpose: bool}, gpcTime } */
    subjects: new Map(),
    /** token -> { subject, expires } */
    tokens: new Map(),
    /** idempotency key -> { body, answer } */
    applied: new Map(),
    /** Rewrites an answer's purposes (to play expired or policy-changed reasons). */
    reasons: {},
    visitors: 0,
    fetch,
    /** Calls to a path ending in suffix, e.g. "/consent". */
    callsTo: (method, suffix) => svc.calls.filter((c) => c.method === method && c.path.endsWith(suffix)),
    mint(subject, days = tokenDays) {
      const token = `${subject}.${svc.tokens.size + 1}`;
      const expires = new Date(Date.now() + days * DAY);
      svc.tokens.set(token, { subject, expires });
      return { token, expire_time: expires.toISOString() };
    },
  };

  async function fetch(url, init = {}) {
    const u = new URL(url);
    const method = init.method || "GET";
    const body = init.body ? JSON.parse(init.body) : undefined;
    const auth = init.headers?.Authorization;
    svc.calls.push({ method, path: u.pathname, query: u.search, body, auth, headers: init.headers || {} });
    if (svc.down) throw new TypeError("Failed to fetch");
    if (svc.status) return json(svc.status, { code: 14, message: "unavailable" });
    return route(method, decodeURIComponent(u.pathname), body, auth, init.headers || {});
  }

  function route(method, path, body, auth, headers) {
    if (method === "POST" && path === "/v1/visitors") {
      // The new visitor's answer comes with it, as consentd sends it.
      const id = `v_visitor${++svc.visitors}`;
      return json(200, { subject_id: id, token: svc.mint(id), consent: answer(id, { revision: 0, decisions: {}, gpcTime: null }) });
    }
    // The policy is public: no token needed.
    if (method === "GET" && path === "/v1/policy") return conditional(headers, '"test-1"', { policy });
    const bearer = svc.tokens.get((auth || "").replace(/^Bearer /, ""));
    if (!bearer || bearer.expires < new Date()) return json(401, { code: 16, message: "subject token invalid" });
    if (method === "POST" && path === "/v1/tokens:refresh") return json(200, { token: svc.mint(bearer.subject) });
    const m = /^\/v1\/subjects\/([^/]+)\/consent(:withdraw)?$/.exec(path);
    if (!m) return json(404, { code: 5, message: "not found" });
    const id = m[1];
    if (id !== bearer.subject) return json(403, { code: 7, message: "token for another subject" });
    const subject = svc.subjects.get(id) || { revision: 0, decisions: {}, gpcTime: null };
    if (method === "GET" && !m[2]) {
      const consent = answer(id, subject);
      return conditional(headers, answerTag(consent), { consent });
    }
    if (method !== (m[2] ? "POST" : "PATCH")) return json(405, { code: 12, message: "method" });

    const replay = body.idempotency_key && svc.applied.get(body.idempotency_key);
    if (replay) {
      if (JSON.stringify(replay.body) !== JSON.stringify(body)) return json(400, { code: 3, message: "idempotency_key: reused for another request" });
      return json(200, replay.answer);
    }
    const decisions = m[2] ? Object.fromEntries(policy.purposes.filter((p) => !p.necessary).map((p) => [p.id, false])) : body.decisions || {};
    for (const [purpose, granted] of Object.entries(decisions)) {
      const known = policy.purposes.find((p) => p.id === purpose);
      if (!known) return json(400, { code: 3, message: `decisions: unknown purpose ${purpose}` });
      if (known.necessary && !granted) return json(400, { code: 3, message: "decisions: necessary cannot be denied" });
    }
    if (!m[2] && !Object.keys(decisions).length && !body.gpc) return json(400, { code: 3, message: "decisions: empty" });
    Object.assign(subject.decisions, decisions);
    if (body.gpc && !subject.gpcTime) subject.gpcTime = new Date().toISOString();
    subject.revision++;
    svc.subjects.set(id, subject);
    const out = { consent: answer(id, subject) };
    if (body.idempotency_key) svc.applied.set(body.idempotency_key, { body, answer: out });
    return json(200, out);
  }

  function answer(id, subject) {
    return {
      subject_id: id,
      revision: String(subject.revision), // int64 as a string, as protojson writes it
      region: "",
      region_id: svc.mechanism === "opt_in" ? "eea" : "us",
      ...(subject.gpcTime ? { gpc_time: subject.gpcTime } : {}),
      purposes: policy.purposes.map((p) => {
        const decided = subject.decisions[p.id];
        let allowed, reason;
        if (p.necessary) [allowed, reason] = [true, "REASON_NECESSARY"];
        else if (decided !== undefined) [allowed, reason] = [decided, "REASON_EXPLICIT"];
        else if (svc.mechanism === "opt_out" && p.gpc && subject.gpcTime) [allowed, reason] = [false, "REASON_GPC"];
        else [allowed, reason] = [svc.mechanism !== "opt_in", "REASON_DEFAULT"];
        if (svc.reasons[p.id]) [allowed, reason] = svc.reasons[p.id];
        return { purpose: p.id, allowed, reason, ...(decided !== undefined ? { decision: { granted: decided } } : {}) };
      }),
    };
  }

  return svc;
}

function json(status, data, headers = {}) {
  return new Response(JSON.stringify(data), { status, headers: { "Content-Type": "application/json", ...headers } });
}

/** 200 with an ETag, or 304 when the request's If-None-Match is that ETag (as consentd does). */
function conditional(headers, etag, data) {
  if (headers["If-None-Match"] === etag) return new Response(null, { status: 304, headers: { ETag: etag } });
  return json(200, data, { ETag: etag });
}

const CODES = { EXPLICIT: "e", DEFAULT: "d", GPC: "g", EXPIRED: "x", POLICY_CHANGED: "p", NECESSARY: "n", RESTRICTED: "r", AWAITING_GUARDIAN: "a" };

/** consentd's ETag of a consent answer: the SDK cookie's compact form, quoted. */
export function answerTag(consent) {
  const list = consent.purposes.map((p) => {
    const code = CODES[p.reason.replace(/^REASON_/, "")];
    return `${p.purpose}:${p.allowed ? code.toUpperCase() : code}`;
  });
  return `"${consent.revision}|${list.join("/")}"`;
}

/** Waits until check() is truthy (polling on a referenced timer keeps Node alive). */
export async function until(check, ms = 2000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for " + check);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Waits until check() is truthy by turning the event loop (setImmediate),
 * never by a timer: for tests that mock setTimeout and move time
 * themselves. Fails after turns turns.
 */
export async function settled(check, turns = 10_000) {
  for (let i = 0; !check(); i++) {
    if (i >= turns) throw new Error("never happened: " + check);
    await new Promise((r) => setImmediate(r));
  }
}

/** What is under way (requests answered at once by fakeConsentd) runs out: n turns of the event loop. */
export async function idle(n = 100) {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/** A token that looks like a consentd subject token (a JWT) for subject. */
export function jwtFor(subject) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${part({ alg: "HS256", kid: "k1" })}.${part({ sub: subject, exp: Math.floor(Date.now() / 1000) + 3600 })}.sig`;
}
