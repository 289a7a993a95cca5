// The console's only way out: the REST API on the same origin, with the
// operator's API key as a bearer token. The key lives in this tab's
// sessionStorage (never a cookie, never a URL): it is gone when the tab
// closes, and other tabs and sites cannot read it.

const KEY = "consentd.console.key";

export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function storeKey(key: string | null) {
  if (key === null) sessionStorage.removeItem(KEY);
  else sessionStorage.setItem(KEY, key);
}

/** An answer the API gave with an error status (a google.rpc.Status body). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    readonly apiMessage: string,
  ) {
    super(describe(status, code, apiMessage));
  }
}

// gRPC codes as the REST gateway sends them in the error body.
const UNAUTHENTICATED = 16;
const PERMISSION_DENIED = 7;
const UNIMPLEMENTED = 12;
const UNAVAILABLE = 14;
const RESOURCE_EXHAUSTED = 8;

/** A sentence for a person: what happened and, where it helps, what to do. */
function describe(status: number, code: number, message: string): string {
  if (code === UNAUTHENTICATED || status === 401) return "That key was not accepted (the API answered 401: " + message + "). Sign in again.";
  if (code === PERMISSION_DENIED || status === 403) return "The API refused this call for this key (403 PERMISSION_DENIED: " + message + ").";
  if (code === UNIMPLEMENTED || status === 501) return "This server does not implement this call yet (501 UNIMPLEMENTED: " + message + ").";
  if (code === UNAVAILABLE || status === 503) return "consentd cannot reach its storage right now (503: " + message + "). Try again in a moment.";
  if (code === RESOURCE_EXHAUSTED || status === 429) return "Too many calls: the API's rate limit was reached (429). Wait a moment and try again.";
  return `The API answered ${status}: ${message}`;
}

export interface Caller {
  kind: string;
  name: string;
  scopes: string[];
  subject_id: string;
}

/** Calls the API with key; the parsed JSON answer, or throws ApiError (or a network TypeError). */
export async function call<T>(key: string, method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Authorization: "Bearer " + key };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let r: Response;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store", credentials: "omit" });
  } catch (e) {
    throw new Error("consentd did not answer (" + (e as Error).message + "). Is it running?");
  }
  const text = await r.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: reported below
  }
  if (!r.ok) {
    const err = (json || {}) as { code?: number; message?: string };
    throw new ApiError(r.status, err.code ?? 0, err.message || text.slice(0, 200) || r.statusText);
  }
  return json as T;
}

/** A path segment: subject ids may hold ':' '@' '+', which must not end the segment or change the verb. */
export const seg = (s: string) => encodeURIComponent(s);

export const query = (params: Record<string, string | number | undefined>) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? "?" + s : "";
};
