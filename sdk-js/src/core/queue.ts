// The retry queue's record: a choice is kept in localStorage until the
// service acknowledges it, so a choice made offline is never lost, and is
// sent with the same idempotency key on every retry, so it is never applied
// twice. Sending and the backoff are in core.ts, which holds their state.

import type { Source } from "../types.js";

/** A choice not yet acknowledged by the service, kept in localStorage. */
export interface Queued {
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

/** The body of a write; a withdrawal's has no decisions. */
export function writeBody(q: Pick<Queued, "d" | "s" | "k">, withDecisions: boolean, region: string | undefined, gpc: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = { source: "SOURCE_" + q.s.toUpperCase(), idempotency_key: q.k };
  if (withDecisions) body.decisions = q.d;
  if (region) body.region = region;
  if (gpc) body.gpc = true;
  return body;
}

/** 128 random bits, e.g. "3921-77-40551-2873902": an idempotency key per choice. getRandomValues works on http pages too. */
export function randomKey(): string {
  return crypto.getRandomValues(new Uint32Array(4)).join("-");
}

export function noop(): void {}
