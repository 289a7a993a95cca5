// A person: look a subject up, see every purpose's answer in a region, the
// history (paged, newest first), export with the hash chain's verdict, and
// the operator's actions: erase, restrict and lift, minor and guardian,
// link a visitor. Reads and writes that need a reason ask for it; the API
// records it.

import { useEffect, useState } from "preact/hooks";
import { call, query, seg } from "./api";
import { Field, html, Message, type Msg, Needs, REASONS, Section, errorText, short } from "./common";
import { formatTime } from "./dates";
import { missing } from "./scopes";
import type { Session } from "./main";

interface Decision {
  granted: boolean;
  decide_time?: string;
  expire_time?: string;
  policy_version?: number;
  region?: string;
}
interface PurposeConsent {
  purpose: string;
  allowed: boolean;
  reason: string;
  decision?: Decision;
}
export interface Consent {
  subject_id: string;
  revision: string;
  region: string;
  region_id: string;
  purposes: PurposeConsent[];
  restrict_time?: string;
  minor: boolean;
  guardian_confirm_time?: string;
  linked: boolean;
  gpc_time?: string;
}
interface ConsentEvent {
  revision: string;
  time: string;
  type: string;
  actor: string;
  source: string;
  policy_version: string;
  region: string;
  gpc: boolean;
  channel: string;
  changes: { purpose: string; old_granted?: boolean; new_granted: boolean }[];
  reason: string;
  linked_subject_id: string;
  guardian: string;
  minor: boolean;
}

const PAGE_SIZE = 10;
const MAX_REASON = 500;

const reasonProblem = (r: string) => (!r.trim() ? "give a reason (e.g. a ticket number): the API records it" : r.length > MAX_REASON ? `the reason is over ${MAX_REASON} characters` : null);

export function PersonScreen({ session }: { session: Session }) {
  const g = session.grants;
  const [idInput, setIdInput] = useState("");
  const [subject, setSubject] = useState("");
  const [lookupMsg, setLookupMsg] = useState<Msg>(null);
  const [consent, setConsent] = useState<Consent | null>(null);
  const [region, setRegion] = useState("");
  // Counts this screen's writes: a history on screen shows their events.
  const [writes, setWrites] = useState(0);
  // Bumped by an erasure: what the screen showed of the person is dropped.
  const [erasures, setErasures] = useState(0);

  const loadConsent = async (id: string, code: string) => {
    const r = await call<{ consent: Consent }>(session.key, "GET", `/v1/subjects/${seg(id)}/consent${query({ region: code })}`);
    setConsent(r.consent);
    return r.consent;
  };

  const lookup = async (e: Event) => {
    e.preventDefault();
    const id = idInput.trim();
    if (!id) return setLookupMsg({ kind: "error", text: "Type a subject id to look up." });
    setSubject(id);
    setConsent(null);
    if (missing(g, "lookup")) {
      setLookupMsg({ kind: "info", text: `Working on ${id}. Its consent cannot be shown: this key ${missing(g, "lookup")}.` });
      return;
    }
    setLookupMsg({ kind: "info", text: "Looking up…" });
    try {
      const c = await loadConsent(id, region);
      setLookupMsg(
        c.revision === "0"
          ? { kind: "info", text: `No consent stored for ${id}: nothing was ever recorded for this id (or it was erased). The answers below are the region's defaults.` }
          : { kind: "ok", text: `Found ${id}: revision ${c.revision}.` },
      );
    } catch (err) {
      setLookupMsg({ kind: "error", text: errorText(err) });
    }
  };

  /** After a write: the consent it returned, then (if readable) again in the chosen region. */
  const afterWrite = async (c: Consent | undefined) => {
    if (c) setConsent(c);
    setWrites((n) => n + 1);
    if (!missing(g, "lookup")) {
      try {
        await loadConsent(subject, region);
      } catch {
        // the write's own answer stays shown
      }
    }
  };

  return html`<div class="person">
    <form class="card lookup" onSubmit=${lookup} aria-labelledby="lookup-h">
      <h3 id="lookup-h">Look up a subject</h3>
      <div class="row">
        <${Field} id="subject-id" label="Subject id (a user id, or a visitor id v_…)" value=${idInput} onInput=${setIdInput} />
        <button type="submit" class="primary" id="lookup-btn">Look up</button>
      </div>
      ${missing(g, "lookup") && html`<p class="hint">This key cannot read consent (${missing(g, "lookup")}): looking up chooses the subject for the actions below.</p>`}
      <${Message} msg=${lookupMsg} id="lookup-msg" />
    </form>
    ${subject &&
    html`<${ConsentView} session=${session} subject=${subject} consent=${consent} region=${region}
        onRegion=${async (code: string) => {
          setRegion(code);
          try {
            await loadConsent(subject, code);
          } catch (err) {
            setLookupMsg({ kind: "error", text: errorText(err) });
          }
        }} />
      <${History} session=${session} subject=${subject} writes=${writes} key=${`h-${subject}-${erasures}`} />
      <div class="grid">
        <${Export} session=${session} subject=${subject} key=${`x-${subject}-${erasures}`} />
        <${Restrict} session=${session} subject=${subject} consent=${consent} onDone=${afterWrite} key=${"r-" + subject} />
        <${Minor} session=${session} subject=${subject} consent=${consent} onDone=${afterWrite} key=${"m-" + subject} />
        <${Link} session=${session} subject=${subject} onDone=${afterWrite} key=${"l-" + subject} />
        <${Erase} session=${session} subject=${subject} onDone=${() => {
          setConsent(null);
          setErasures((n) => n + 1);
        }} key=${"e-" + subject} />
      </div>`}
  </div>`;
}

function ConsentView({ session, subject, consent, region, onRegion }: { session: Session; subject: string; consent: Consent | null; region: string; onRegion: (c: string) => void }) {
  const policy = session.policy;
  const m = missing(session.grants, "lookup");
  const regions = policy?.regions || [];
  const defaultRegion = regions.find((r) => r.id === policy?.default_region);
  return html`<${Section} title=${"Consent of " + subject} id="consent">
    <${Needs} missing=${m} />
    ${!m &&
    html`<div class="field">
        <label for="region">Region the answers are computed for</label>
        <select id="region" value=${region} onChange=${(e: Event) => onRegion((e.target as HTMLSelectElement).value)}>
          <option value="">The subject's last region (or the policy's default)</option>
          ${regions.map(
            (r) => html`<optgroup label=${`${r.id} (${short(r.mechanism, "MECHANISM_")})`}>
              ${r.codes.map((c) => html`<option value=${c}>${c}</option>`)}
              ${r.codes.length === 0 && r.id === defaultRegion?.id && html`<option value="ZZ">any other code (ZZ)</option>`}
            </optgroup>`,
          )}
        </select>
        <p class="hint">GetConsent takes a region code: each answer below is the API's own, computed for that region.</p>
      </div>`}
    ${consent &&
    html`<p class="facts" id="consent-facts">
        Revision <strong>${consent.revision}</strong> · region <strong>${consent.region || "none"}</strong> (${consent.region_id})
        ${consent.restrict_time ? html` · <strong class="flag">restricted</strong> since ${formatTime(consent.restrict_time)}` : ""}
        ${consent.minor ? html` · <strong class="flag">minor</strong>${consent.guardian_confirm_time ? ", guardian confirmed " + formatTime(consent.guardian_confirm_time) : ", no guardian confirmation"}` : ""}
        ${consent.linked ? " · linked to a user (reads follow the user's record)" : ""}
        ${consent.gpc_time ? " · GPC since " + formatTime(consent.gpc_time) : ""}
      </p>
      <div class="scroll" tabindex="0" role="region" aria-label="Answers per purpose">
        <table class="answers" id="answers">
          <thead><tr><th scope="col">Purpose</th><th scope="col">Answer</th><th scope="col">Reason</th><th scope="col">Decision stored</th></tr></thead>
          <tbody>
            ${consent.purposes.map(
              (p) => html`<tr data-purpose=${p.purpose}>
                <th scope="row">${titleOf(session, p.purpose)} <code>${p.purpose}</code></th>
                <td class=${p.allowed ? "yes" : "no"}>${p.allowed ? "allowed" : "denied"}</td>
                <td><code>${short(p.reason, "REASON_")}</code> <span class="muted">${REASONS[p.reason] || ""}</span></td>
                <td>${p.decision ? `${p.decision.granted ? "granted" : "denied"} ${formatTime(p.decision.decide_time)}${p.decision.region ? " in " + p.decision.region : ""}, purpose version ${p.decision.policy_version ?? ""}` : "none"}</td>
              </tr>`,
            )}
          </tbody>
        </table>
      </div>`}
  </${Section}>`;
}

const titleOf = (s: Session, id: string) => s.policy?.purposes.find((p) => p.id === id)?.titles?.en || id;

/** A reason input shared by the actions of one section. */
function Reason({ id, value, onInput, disabled }: { id: string; value: string; onInput: (v: string) => void; disabled: boolean }) {
  return html`<${Field} id=${id} label="Reason (recorded by the API; e.g. a ticket number, not the person's identity)" value=${value} onInput=${onInput} disabled=${disabled} />`;
}

function History({ session, subject, writes }: { session: Session; subject: string; writes: number }) {
  const m = missing(session.grants, "history");
  const [reason, setReason] = useState("");
  const [events, setEvents] = useState<ConsentEvent[] | null>(null);
  const [tokens, setTokens] = useState<string[]>([""]); // page tokens of the pages shown so far: the last is this page's
  const [next, setNext] = useState("");
  const [msg, setMsg] = useState<Msg>(null);

  const load = async (token: string, stack: string[]) => {
    const problem = reasonProblem(reason);
    if (problem) return setMsg({ kind: "error", text: "Not read: " + problem + "." });
    setMsg({ kind: "info", text: "Reading the history…" });
    try {
      const r = await call<{ events: ConsentEvent[]; next_page_token: string }>(
        session.key,
        "GET",
        `/v1/subjects/${seg(subject)}/events${query({ reason, page_size: PAGE_SIZE, page_token: token })}`,
      );
      setEvents(r.events);
      setNext(r.next_page_token);
      setTokens(stack);
      setMsg({
        kind: "ok",
        text: r.events.length ? `Page ${stack.length}: ${r.events.length} events, newest first. Each read is recorded in the history with your reason.` : `No history stored for ${subject}.`,
      });
    } catch (err) {
      setMsg({ kind: "error", text: errorText(err) });
    }
  };
  // After an action on this screen, a history showing its newest page is
  // read again (with the same reason, recorded like any read), so the
  // action's event shows at the top.
  useEffect(() => {
    if (writes > 0 && events && tokens.length === 1 && !reasonProblem(reason)) load("", [""]);
  }, [writes]);
  return html`<${Section} title="History" id="history">
    <${Needs} missing=${m} />
    <${Reason} id="history-reason" value=${reason} onInput=${setReason} disabled=${!!m} />
    <div class="actions">
      <button type="button" id="history-btn" disabled=${!!m} onClick=${() => load("", [""])}>Show the newest events</button>
      <button type="button" id="history-newer" disabled=${!!m || tokens.length < 2 || !events} onClick=${() => load(tokens[tokens.length - 2], tokens.slice(0, -1))}>Newer page</button>
      <button type="button" id="history-older" disabled=${!!m || !next || !events} onClick=${() => load(next, [...tokens, next])}>Older page</button>
    </div>
    <${Message} msg=${msg} id="history-msg" />
    ${events && events.length > 0 && html`<ol class="timeline" id="timeline" aria-label="History, newest first">${events.map((e) => html`<${EventItem} e=${e} />`)}</ol>`}
  </${Section}>`;
}

function EventItem({ e }: { e: ConsentEvent }) {
  const changes = e.changes || [];
  return html`<li class="event" data-revision=${e.revision}>
    <p class="event-head"><strong>Revision ${e.revision}</strong> · <code>${short(e.type, "EVENT_TYPE_")}</code> · ${formatTime(e.time)}</p>
    <dl class="event-facts">
      <div><dt>Who</dt><dd>${e.actor || "–"}</dd></div>
      <div><dt>How</dt><dd>${e.source && e.source !== "SOURCE_UNSPECIFIED" ? short(e.source, "SOURCE_") : "–"}${e.channel ? " via " + e.channel : ""}${e.gpc ? ", with GPC" : ""}</dd></div>
      <div><dt>Policy version</dt><dd>${e.policy_version || "–"}</dd></div>
      ${e.region && html`<div><dt>Region</dt><dd>${e.region}</dd></div>`}
      ${e.reason && html`<div><dt>Reason</dt><dd>${e.reason}</dd></div>`}
      ${e.linked_subject_id && html`<div><dt>Linked</dt><dd>${e.linked_subject_id}</dd></div>`}
      ${e.guardian && html`<div><dt>Guardian</dt><dd>${e.guardian}</dd></div>`}
      ${e.type === "EVENT_TYPE_MARK_MINOR" && html`<div><dt>Minor</dt><dd>${e.minor ? "marked" : "mark cleared"}</dd></div>`}
    </dl>
    ${changes.length > 0 &&
    html`<ul class="changes">${changes.map(
      (c) => html`<li><code>${c.purpose}</code>: ${c.old_granted === undefined ? "no decision" : c.old_granted ? "granted" : "denied"} → <strong>${c.new_granted ? "granted" : "denied"}</strong></li>`,
    )}</ul>`}
  </li>`;
}

interface ExportDoc {
  chain: { valid: boolean; events_checked: string; first_invalid_revision: string; problem: string };
  events: unknown[];
}

function Export({ session, subject }: { session: Session; subject: string }) {
  const m = missing(session.grants, "export");
  const [reason, setReason] = useState("");
  const [msg, setMsg] = useState<Msg>(null);
  const [verdict, setVerdict] = useState<ExportDoc["chain"] | null>(null);
  const [url, setUrl] = useState("");
  const file = `consentd-export-${subject.replace(/[^A-Za-z0-9._-]/g, "_")}.json`;
  // The document is personal data: its blob goes when the section does (sign-out, another subject, an erasure).
  useEffect(() => () => url && URL.revokeObjectURL(url), [url]);
  const run = async () => {
    const problem = reasonProblem(reason);
    if (problem) return setMsg({ kind: "error", text: "Not exported: " + problem + "." });
    setMsg({ kind: "info", text: "Exporting…" });
    try {
      const path = `/v1/subjects/${seg(subject)}:export${query({ reason })}`;
      const doc = await call<ExportDoc>(session.key, "GET", path);
      setVerdict(doc.chain);
      const blobUrl = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2) + "\n"], { type: "application/json" }));
      setUrl(blobUrl);
      setMsg({ kind: "ok", text: `Exported ${doc.events.length} events (the export itself is recorded in the history). The download has started; the link below downloads it again.` });
      const a = document.createElement("a");
      a.href = blobUrl;
      a.download = file;
      a.hidden = true;
      document.body.append(a);
      a.click();
      a.remove();
    } catch (err) {
      setMsg({ kind: "error", text: errorText(err) });
    }
  };
  return html`<${Section} title="Export and verify the hash chain" id="export">
    <p class="hint">The history's hash-chain check is part of the export document (ExportSubject's chain).</p>
    <${Needs} missing=${m} />
    <${Reason} id="export-reason" value=${reason} onInput=${setReason} disabled=${!!m} />
    <div class="actions"><button type="button" id="export-btn" disabled=${!!m} onClick=${run}>Export and verify</button></div>
    <${Message} msg=${msg} id="export-msg" />
    ${verdict &&
    html`<p id="chain-verdict" class=${"verdict " + (verdict.valid ? "yes" : "no")}>
      ${verdict.valid ? `✓ Hash chain intact: ${verdict.events_checked} events checked.` : `✗ Hash chain broken at revision ${verdict.first_invalid_revision}: ${verdict.problem}`}
    </p>`}
    ${url && html`<p><a href=${url} download=${file} id="export-link">Download ${file}</a></p>`}
  </${Section}>`;
}

function Restrict({ session, subject, consent, onDone }: { session: Session; subject: string; consent: Consent | null; onDone: (c?: Consent) => void }) {
  const m = missing(session.grants, "restrict");
  const [reason, setReason] = useState("");
  const [msg, setMsg] = useState<Msg>(null);
  const act = async (verb: "restrict" | "liftRestriction") => {
    const problem = reasonProblem(reason);
    if (problem) return setMsg({ kind: "error", text: "Nothing sent: " + problem + "." });
    try {
      const r = await call<{ consent: Consent }>(session.key, "POST", `/v1/subjects/${seg(subject)}:${verb}`, { reason });
      setMsg({ kind: "ok", text: `${verb === "restrict" ? "Restricted" : "Restriction lifted"}: recorded as revision ${r.consent.revision} with your reason.` });
      onDone(r.consent);
    } catch (err) {
      setMsg({ kind: "error", text: errorText(err) });
    }
  };
  return html`<${Section} title="Restrict processing" id="restrict">
    <p class="hint">While restricted, every non-necessary purpose reads denied (reason restricted); the person's choices still count again once lifted.
      ${consent ? (consent.restrict_time ? " Now: restricted." : " Now: not restricted.") : ""}</p>
    <${Needs} missing=${m} />
    <${Reason} id="restrict-reason" value=${reason} onInput=${setReason} disabled=${!!m} />
    <div class="actions">
      <button type="button" id="restrict-btn" disabled=${!!m} onClick=${() => act("restrict")}>Restrict</button>
      <button type="button" id="lift-btn" disabled=${!!m} onClick=${() => act("liftRestriction")}>Lift the restriction</button>
    </div>
    <${Message} msg=${msg} id="restrict-msg" />
  </${Section}>`;
}

function Minor({ session, subject, consent, onDone }: { session: Session; subject: string; consent: Consent | null; onDone: (c?: Consent) => void }) {
  const m = missing(session.grants, "minor");
  const [guardian, setGuardian] = useState("");
  const [msg, setMsg] = useState<Msg>(null);
  const post = async (verb: string, body: unknown, done: (c: Consent) => string) => {
    try {
      const r = await call<{ consent: Consent }>(session.key, "POST", `/v1/subjects/${seg(subject)}:${verb}`, body);
      setMsg({ kind: "ok", text: done(r.consent) });
      onDone(r.consent);
    } catch (err) {
      setMsg({ kind: "error", text: errorText(err) });
    }
  };
  const confirm = () => {
    if (!guardian.trim()) return setMsg({ kind: "error", text: "Nothing sent: name the guardian who confirmed (e.g. their account id)." });
    post("confirmGuardian", { guardian }, (c) => `Guardian's confirmation recorded as revision ${c.revision}: the grants made so far count.`);
  };
  return html`<${Section} title="Minor and guardian" id="minor">
    <p class="hint">A minor's grants wait for a guardian's confirmation (every region counts as opt-in).
      ${consent ? (consent.minor ? " Now: marked a minor." : " Now: not marked a minor.") : ""}</p>
    <${Needs} missing=${m} />
    <div class="actions">
      <button type="button" id="minor-btn" disabled=${!!m} onClick=${() => post("markMinor", { minor: true }, (c) => `Marked a minor: recorded as revision ${c.revision}.`)}>Mark as a minor</button>
      <button type="button" id="unminor-btn" disabled=${!!m} onClick=${() => post("markMinor", { minor: false }, (c) => `Minor mark cleared: recorded as revision ${c.revision}.`)}>Clear the mark</button>
    </div>
    <${Field} id="guardian" label="Guardian who confirmed (stored encrypted)" value=${guardian} onInput=${setGuardian} disabled=${!!m} />
    <div class="actions"><button type="button" id="guardian-btn" disabled=${!!m} onClick=${confirm}>Record the guardian's confirmation</button></div>
    <${Message} msg=${msg} id="minor-msg" />
  </${Section}>`;
}

function Link({ session, subject, onDone }: { session: Session; subject: string; onDone: (c?: Consent) => void }) {
  const m = missing(session.grants, "link");
  const [visitor, setVisitor] = useState("");
  const [msg, setMsg] = useState<Msg>(null);
  const link = async () => {
    if (!visitor.trim()) return setMsg({ kind: "error", text: "Nothing sent: type the visitor id (v_…) to link." });
    try {
      const r = await call<{ consent: Consent }>(session.key, "POST", `/v1/subjects/${seg(subject)}:link`, { visitor_id: visitor.trim() });
      setMsg({ kind: "ok", text: `Linked ${visitor.trim()} to ${subject}: recorded as revision ${r.consent.revision} (per purpose the more restrictive decision won).` });
      onDone(r.consent);
    } catch (err) {
      setMsg({ kind: "error", text: errorText(err) });
    }
  };
  return html`<${Section} title="Link a visitor to this user" id="link">
    <${Needs} missing=${m} />
    <${Field} id="visitor-id" label="Visitor id (v_…)" value=${visitor} onInput=${setVisitor} disabled=${!!m} />
    <div class="actions"><button type="button" id="link-btn" disabled=${!!m} onClick=${link}>Link</button></div>
    <${Message} msg=${msg} id="link-msg" />
  </${Section}>`;
}

function Erase({ session, subject, onDone }: { session: Session; subject: string; onDone: () => void }) {
  const m = missing(session.grants, "erase");
  const [reason, setReason] = useState("");
  const [typed, setTyped] = useState("");
  const [msg, setMsg] = useState<Msg>(null);
  const matches = typed === subject;
  const erase = async () => {
    if (!matches) return setMsg({ kind: "error", text: `Nothing sent: the typed id does not match ${subject}.` });
    const problem = reasonProblem(reason);
    if (problem) return setMsg({ kind: "error", text: "Nothing sent: " + problem + "." });
    try {
      const r = await call<{ erased: boolean; erase_time: string; linked_subjects_erased: number; linked_subject_ids?: string[] }>(
        session.key,
        "POST",
        `/v1/subjects/${seg(subject)}:erase`,
        { reason },
      );
      const n = r.linked_subjects_erased;
      const ids = r.linked_subject_ids || [];
      setMsg(
        r.erased
          ? {
              kind: "ok",
              text: `Erased ${subject} at ${formatTime(r.erase_time)}: its state, history, idempotency records and data key, and ${n} linked visitor${n === 1 ? "" : "s"} with it${ids.length ? ": " + ids.join(", ") : ""}. An anonymous tombstone keeps the time, your key's name and the reason.`,
            }
          : { kind: "info", text: `Nothing was stored about ${subject} (erased before, or never written): nothing to erase.` },
      );
      setTyped("");
      onDone();
    } catch (err) {
      setMsg({ kind: "error", text: errorText(err) });
    }
  };
  return html`<${Section} title="Erase" id="erase">
    <p class="hint">Erasure cannot be undone. It deletes the subject's state, history and data key, and the visitors linked to it.</p>
    <${Needs} missing=${m} />
    <${Reason} id="erase-reason" value=${reason} onInput=${setReason} disabled=${!!m} />
    <${Field} id="erase-confirm" label=${"To confirm, type the subject id: " + subject} value=${typed} onInput=${setTyped} disabled=${!!m}
      hint=${typed && !matches ? `Does not match ${subject}: the button stays disabled.` : undefined} />
    <div class="actions"><button type="button" class="danger" id="erase-btn" disabled=${!!m || !matches || !reason.trim()} onClick=${erase}>Erase ${subject}</button></div>
    <${Message} msg=${msg} id="erase-msg" />
  </${Section}>`;
}
