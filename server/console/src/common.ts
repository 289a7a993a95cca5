// Shared pieces of the screens. The UI is preact with htm: plain functions
// returning tagged templates that htm turns into preact's h() calls at run
// time. No JSX, so no compile step beyond esbuild's TypeScript stripping,
// and no eval either (htm parses the template strings itself), which the
// console's CSP (script-src 'self') requires. preact + htm + hooks are
// about 6 KB gzipped.

import { h, type ComponentChildren } from "preact";
import htm from "htm";

export const html = htm.bind(h);

export type Msg = { kind: "error" | "ok" | "info"; text: string } | null;

/** A message: errors are alerts (read out at once), the rest polite status. Always present, so screen readers hear changes. */
export function Message({ msg, id }: { msg: Msg; id?: string }) {
  return html`<div id=${id} class=${"msg" + (msg ? " msg-" + msg.kind : "")} role=${msg?.kind === "error" ? "alert" : "status"}>${msg?.text || ""}</div>`;
}

/** Says which scope an action needs when the key lacks it. */
export function Needs({ missing }: { missing: string | null }) {
  return missing ? html`<p class="needs"><span class="badge">Disabled</span> ${missing}: this key cannot do this.</p>` : null;
}

export function Section({ title, id, children }: { title: string; id: string; children: ComponentChildren }) {
  return html`<section class="card" aria-labelledby=${id + "-h"} id=${id}><h3 id=${id + "-h"}>${title}</h3>${children}</section>`;
}

/** A labelled text input. */
export function Field(props: {
  id: string;
  label: string;
  value: string;
  onInput: (v: string) => void;
  disabled?: boolean;
  hint?: string;
  type?: string;
  required?: boolean;
  autocomplete?: string;
}) {
  return html`<div class="field">
    <label for=${props.id}>${props.label}</label>
    <input id=${props.id} type=${props.type || "text"} value=${props.value} disabled=${props.disabled} required=${props.required}
      autocomplete=${props.autocomplete || "off"} spellcheck="false" aria-describedby=${props.hint ? props.id + "-hint" : undefined}
      onInput=${(e: Event) => props.onInput((e.target as HTMLInputElement).value)} />
    ${props.hint && html`<p class="hint" id=${props.id + "-hint"}>${props.hint}</p>`}
  </div>`;
}

export const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

export const REASONS: Record<string, string> = {
  REASON_EXPLICIT: "the person's own decision",
  REASON_DEFAULT: "no decision: the region's default",
  REASON_GPC: "Global Privacy Control opted out",
  REASON_EXPIRED: "the decision expired: ask again",
  REASON_POLICY_CHANGED: "the purpose's version changed: ask again",
  REASON_NECESSARY: "strictly necessary: always allowed",
  REASON_RESTRICTED: "processing is restricted",
  REASON_AWAITING_GUARDIAN: "a minor: awaiting a guardian's confirmation",
  REASON_STORE_UNAVAILABLE: "storage unavailable",
};

export const short = (e: string, prefix: string) => e.replace(prefix, "").toLowerCase().replace(/_/g, " ");
