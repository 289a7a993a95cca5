// Talking to consentd: one bounded request, and the subject token every
// call but the public ones needs: a site's token for a logged-in user, else
// an anonymous visitor's, minted, kept, refreshed and dropped here.

import type { ConsentOptions } from "./options.js";
import { SUBJECT_ID } from "./cookie.js";
import { load, save, TOKEN_KEY, type Memory } from "./storage.js";

/** What the service returns for a subject (REST JSON of consent.v1.Consent). */
export interface ServiceConsent {
  subject_id: string;
  revision?: string;
  linked?: boolean;
  gpc_time?: string | null;
  purposes?: { purpose: string; allowed?: boolean; reason?: string }[];
}

export type HttpError = Error & { status?: number };

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

/**
 * One call to consentd, bounded by options.timeout. With tag, a conditional
 * request: null when the service answers 304 (unchanged). The answer's ETag
 * is returned as `etag`.
 */
// biome-ignore lint/suspicious/noExplicitAny: the answer's shape depends on the path; callers read what their path returns
export type Request = (method: string, path: string, body?: unknown, token?: string, tag?: string | null) => Promise<any>;

/**
 * Calls the API as the subject. A 401 means the token is dead: drop it and
 * try once more with a new one (for a visitor, a new visitor: the old
 * choices are gone and the banner asks again). tag(subject) may make the
 * request conditional.
 */
// biome-ignore lint/suspicious/noExplicitAny: as for Request
export type Call = (method: string, path: (subject: string) => string, body?: unknown, tag?: (subject: string) => string | undefined) => Promise<any>;

/**
 * The transport of one SDK instance: request, auth (the subject this page
 * speaks for, and its token), call, and user (with a site token: the user
 * this page last spoke for). A tuple, not an object: the bundle then carries
 * no property names for it. minted gets the answer that comes with a newly
 * minted visitor (no read needed).
 */
export function createHttp(
  options: ConsentOptions,
  memory: Memory,
  minted: (answer: ServiceConsent) => void,
): [request: Request, auth: () => Promise<Auth>, call: Call, user: () => string | undefined] {
  const endpoint = options.endpoint.replace(/\/+$/, "");
  // Called as a plain function: a browser's fetch called as a method of
  // another object throws "Illegal invocation".
  const fetchFn: typeof fetch = options.fetch || ((input, init) => fetch(input, init));
  let authRequest: Promise<Auth> | null = null;
  let user: string | undefined;

  const request: Request = async (method, path, body, token, tag) => {
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
  };

  /** The anonymous visitor's token: stored, refreshed when under 7 days are left, or freshly minted. */
  async function visitorToken(): Promise<StoredToken> {
    const stored = load<StoredToken>(memory, TOKEN_KEY);
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
    const r = await request("POST", "/v1/visitors", { region: options.region });
    minted(r.consent);
    return storeToken({ subject_id: r.subject_id, ...r.token });
  }

  function storeToken(t: StoredToken): StoredToken {
    save(memory, TOKEN_KEY, t);
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

  const call: Call = async (method, path, body, tag) => {
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
          if (!options.token) save(memory, TOKEN_KEY, null);
        }
      }
    }
  };

  return [request, auth, call, () => user];
}

export function consentPath(subject: string): string {
  return `/v1/subjects/${subject}/consent`;
}

/** Unreachable, overloaded, or a site token that stopped working (the next page brings a new one). */
export function retryable(err: unknown, siteToken: boolean): boolean {
  const status = (err as HttpError).status;
  return !status || status >= 500 || status == 429 || (status == 401 && siteToken);
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
