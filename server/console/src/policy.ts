// Policy: purposes, regions and versions as GET /v1/policy gives them, and
// a preview of the banner and preference center exactly as a first visitor
// in a chosen region and language sees them: the SDK's own mountUI and
// ui.css, over a Consent that never writes (preview.ts).

import { useEffect, useRef, useState } from "preact/hooks";
import { mountUI, type UI } from "../../../sdk-js/src/ui";
import type { Policy } from "../../../sdk-js/src/types";
import { call } from "./api";
import { html, Message, type Msg, errorText, short } from "./common";
import { previewConsent, regionOf } from "./preview";
import type { Session } from "./main";

const days = (s: string) => (s === "0" ? "no expiry" : `${Math.round(Number(s) / 86400)} days`);

export function PolicyScreen({ session }: { session: Session }) {
  const [policy, setPolicy] = useState<Policy | null>(session.policy);
  const [msg, setMsg] = useState<Msg>(null);
  useEffect(() => {
    call<{ policy: Policy }>(session.key, "GET", "/v1/policy")
      .then((r) => setPolicy(r.policy))
      .catch((e) => setMsg({ kind: "error", text: errorText(e) }));
  }, []);
  if (!policy) return html`<${Message} msg=${msg || { kind: "info", text: "Loading the policy…" }} id="policy-msg" />`;
  return html`<div class="policy">
    <${Message} msg=${msg} id="policy-msg" />
    <p class="facts" id="policy-facts">Policy version <strong>${policy.version}</strong> · default region <strong>${policy.default_region}</strong></p>
    <section class="card" aria-labelledby="purposes-h">
      <h3 id="purposes-h">Purposes</h3>
      <div class="scroll" tabindex="0" role="region" aria-label="Purposes (table)">
        <table class="data" id="purposes-table">
          <thead><tr><th scope="col">Purpose</th><th scope="col">Title (en)</th><th scope="col">Version</th><th scope="col">Legal basis</th><th scope="col">Lifetime</th><th scope="col">Properties</th></tr></thead>
          <tbody>${policy.purposes.map(
            (p) => html`<tr data-purpose=${p.id}><th scope="row"><code>${p.id}</code></th><td>${p.titles.en || ""}</td><td>${p.version}</td><td>${p.legal_basis}</td><td>${days(p.lifetime_seconds)}</td>
              <td>${[p.necessary && "necessary", p.gpc && "GPC opts out", p.always_opt_in && "always opt-in"].filter(Boolean).join(", ") || "–"}</td></tr>`,
          )}</tbody>
        </table>
      </div>
    </section>
    <section class="card" aria-labelledby="regions-h">
      <h3 id="regions-h">Regions</h3>
      <div class="scroll" tabindex="0" role="region" aria-label="Regions (table)">
        <table class="data" id="regions-table">
          <thead><tr><th scope="col">Region</th><th scope="col">Mechanism</th><th scope="col">Codes</th></tr></thead>
          <tbody>${policy.regions.map(
            (r) => html`<tr data-region=${r.id}><th scope="row">${r.id}${r.id === policy.default_region ? " (default)" : ""}</th><td>${short(r.mechanism, "MECHANISM_")}</td><td>${r.codes.join(", ") || "any code not listed elsewhere"}</td></tr>`,
          )}</tbody>
        </table>
      </div>
    </section>
    <${Preview} policy=${policy} />
  </div>`;
}

function Preview({ policy }: { policy: Policy }) {
  const langs = [...new Set(policy.purposes.flatMap((p) => Object.keys(p.titles)))].sort();
  const codes = policy.regions.flatMap((r) => r.codes);
  const [code, setCode] = useState(codes.includes("DE") ? "DE" : codes[0] || "ZZ");
  const [lang, setLang] = useState(langs.includes("en") ? "en" : langs[0] || "en");
  const [note, setNote] = useState<Msg>(null);
  const [banner, setBanner] = useState(true);
  const box = useRef<HTMLDivElement>(null);
  const ui = useRef<UI | null>(null);
  useEffect(() => {
    if (!box.current) return;
    setNote(null);
    const consent = previewConsent(policy, code, (what) => setNote({ kind: "info", text: `Preview: “${what}” was clicked. Nothing was recorded.` }));
    setBanner(consent.get().needsPrompt.length > 0);
    // No endpoint and funnel off: the preview reports nothing to the funnel.
    ui.current = mountUI(consent, { lang, container: box.current, button: false, funnel: false });
    return () => ui.current?.destroy();
  }, [code, lang]);
  const region = regionOf(policy, code);
  return html`<section class="card" aria-labelledby="preview-h" id="preview">
    <h3 id="preview-h">Preview: what a first visitor sees</h3>
    <div class="filters">
      <div class="field"><label for="preview-region">Visitor's region code</label>
        <select id="preview-region" value=${code} onChange=${(e: Event) => setCode((e.target as HTMLSelectElement).value)}>
          ${policy.regions.map(
            (r) => html`<optgroup label=${r.id}>${r.codes.map((c) => html`<option value=${c}>${c}</option>`)}
              ${r.codes.length === 0 && html`<option value="ZZ">any other code (ZZ)</option>`}</optgroup>`,
          )}
        </select></div>
      <div class="field"><label for="preview-lang">Language</label>
        <select id="preview-lang" value=${lang} onChange=${(e: Event) => setLang((e.target as HTMLSelectElement).value)}>
          ${langs.map((l) => html`<option value=${l}>${l}</option>`)}
        </select></div>
      <button type="button" id="preview-open" onClick=${() => ui.current?.open()}>Open the preference center</button>
    </div>
    <p class="hint" id="preview-about">${code} is in region <strong>${region?.id}</strong> (${short(region?.mechanism || "", "MECHANISM_")}).
      ${banner ? " A first visitor sees this banner. " : " No banner: nothing needs asking here (every purpose the banner asks about is allowed by default); the preference center opens from the site's Privacy choices link. "}
      ${"This is the SDK's own UI; its buttons record nothing here."}</p>
    <div class="preview-box" ref=${box} id="preview-box"></div>
    <${Message} msg=${note} id="preview-msg" />
  </section>`;
}
