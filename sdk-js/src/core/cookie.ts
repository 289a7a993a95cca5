// The first-party cookie: the visitor's last answer in a compact form the
// page reads synchronously, and that consentd's ETag repeats (see
// answerTag). The codec is pure; readCookie and writeCookie are the only
// functions here that touch document.cookie.

import type { ConsentOptions } from "./options.js";
import type { ConsentState, PurposeState, Reason } from "../types.js";

// One letter per reason in the cookie, the letter of REASONS' reason at the
// same index: upper case allowed, lower case denied.
const REASONS: Reason[] = ["explicit", "default", "gpc", "expired", "policy_changed", "necessary", "restricted", "awaiting_guardian"];
const CODES = "edgxpnra";

export const SUBJECT_ID = /^[A-Za-z0-9._:@+-]{1,128}$/;
const COOKIE_PURPOSE = /^([a-z][a-z0-9_.]*):([a-zA-Z])$/;

/**
 * The answer in its compact form, "<revision>|<purpose>:<code>/...": the
 * code is the reason's letter, upper case when allowed. consentd's ETag for
 * GET /v1/subjects/{id}/consent is exactly this (quoted), so the cookie is
 * revalidated without storing anything else.
 */
export function answerTag(state: Pick<ConsentState, "revision" | "purposes">): string {
  const purposes = Object.keys(state.purposes).map((id) => {
    const p = state.purposes[id];
    const code = CODES[REASONS.indexOf(p.reason)] || "e";
    return id + ":" + (p.allowed ? code.toUpperCase() : code);
  });
  return state.revision + "|" + purposes.join("/");
}

/**
 * Encodes the cached state as the cookie value, e.g.
 * "1|v_4Fq...|3|necessary:N/functional:e/analytics:E/ads:g": version,
 * subject id, then answerTag. needsPrompt and gpcHonoured follow from the
 * reasons, so they cost no bytes. Every character is a valid cookie octet:
 * no escaping.
 */
export function encodeCookie(state: Pick<ConsentState, "subjectId" | "revision" | "purposes">): string {
  return "1|" + (state.subjectId || "") + "|" + answerTag(state);
}

/** Decodes a cookie value; null for anything not written by encodeCookie. */
export function decodeCookie(value: string): Pick<ConsentState, "subjectId" | "revision" | "purposes"> | null {
  const m = /^1\|([A-Za-z0-9._:@+-]{0,128})\|(\d{1,15})\|(.*)$/.exec(value);
  if (!m) return null;
  const purposes: Record<string, PurposeState> = {};
  for (const item of m[3] ? m[3].split("/") : []) {
    const p = COOKIE_PURPOSE.exec(item);
    const reason = p && REASONS[CODES.indexOf(p[2].toLowerCase())];
    if (!reason) return null;
    purposes[p[1]] = { allowed: p[2] < "a", reason }; // upper case: allowed
  }
  return { subjectId: m[1] || null, revision: +m[2], purposes };
}

/** Purposes to ask about: undecided and denied, or whose decision expired or whose policy changed. */
export function needsPrompt(purposes: Record<string, PurposeState>, askFor: (id: string) => boolean): string[] {
  return Object.keys(purposes).filter((id) => {
    const { allowed, reason } = purposes[id];
    return askFor(id) && (reason == "expired" || reason == "policy_changed" || (reason == "default" && !allowed));
  });
}

/** The value of the cookie called name; "" when there is none. */
export function readCookie(name: string): string {
  for (const part of document.cookie.split("; ")) {
    if (part.startsWith(name + "=")) return part.slice(name.length + 1);
  }
  return "";
}

/** Writes the cookie called name: the whole site, first-party, Secure on https. */
export function writeCookie(name: string, value: string, options: Pick<ConsentOptions, "cookieDays" | "cookieDomain">): void {
  let cookie = `${name}=${value}; Path=/; Max-Age=${((options.cookieDays ?? 390) * 86400) | 0}; SameSite=Lax`;
  if (options.cookieDomain) cookie += "; Domain=" + options.cookieDomain;
  if (location.protocol == "https:") cookie += "; Secure";
  document.cookie = cookie;
}
