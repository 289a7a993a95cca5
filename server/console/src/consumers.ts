// Feed consumers: per durable consumer of the change feed, the opt-outs it
// has not acknowledged and the age of the oldest, against a deadline in
// business days the operator sets here (kept in this browser's
// localStorage; default 10, CAN-SPAM's).

import { useEffect, useState } from "preact/hooks";
import { call } from "./api";
import { html, Message, type Msg, errorText } from "./common";
import { businessDaysSince, formatTime } from "./dates";
import type { Session } from "./main";

interface FeedConsumer {
  name: string;
  unacknowledged: string;
  unacknowledged_opt_outs: string;
  oldest_unacknowledged_opt_out_time?: string;
  trimmed_unacknowledged: string;
}

const DEADLINE = "consentd.console.deadline";
export const DEFAULT_DEADLINE = 10;

function storedDeadline(): number {
  try {
    const v = Number(localStorage.getItem(DEADLINE));
    return Number.isInteger(v) && v >= 1 && v <= 365 ? v : DEFAULT_DEADLINE;
  } catch {
    return DEFAULT_DEADLINE;
  }
}

export function ConsumersScreen({ session }: { session: Session }) {
  const [deadline, setDeadline] = useState(storedDeadline());
  const [input, setInput] = useState(String(storedDeadline()));
  const [consumers, setConsumers] = useState<FeedConsumer[] | null>(null);
  const [msg, setMsg] = useState<Msg>(null);
  const [checked, setChecked] = useState(0);

  const load = async () => {
    setMsg({ kind: "info", text: "Loading…" });
    try {
      const r = await call<{ consumers: FeedConsumer[] }>(session.key, "GET", "/v1/consumers");
      setConsumers(r.consumers || []);
      setChecked(Date.now());
      setMsg(null);
    } catch (err) {
      setMsg({ kind: "error", text: errorText(err) });
    }
  };
  useEffect(() => {
    load();
  }, []);

  const saveDeadline = (e: Event) => {
    e.preventDefault();
    const v = Number(input);
    if (!Number.isInteger(v) || v < 1 || v > 365) return setMsg({ kind: "error", text: "The deadline is a whole number of business days from 1 to 365." });
    setDeadline(v);
    try {
      localStorage.setItem(DEADLINE, String(v));
    } catch {
      // storage blocked: the deadline holds for this page only
    }
    setMsg({ kind: "ok", text: `Deadline set to ${v} business days (kept in this browser).` });
  };

  return html`<div class="consumers">
    <form class="card filters" onSubmit=${saveDeadline} aria-label="Deadline" novalidate>
      <div class="field">
        <label for="deadline">Deadline to honour an opt-out (business days, Monday to Friday)</label>
        <input id="deadline" type="number" min="1" max="365" step="1" inputmode="numeric" value=${input} onInput=${(e: Event) => setInput((e.target as HTMLInputElement).value)} />
      </div>
      <button type="submit" id="deadline-btn">Set deadline</button>
      <button type="button" id="consumers-refresh" onClick=${load}>Refresh</button>
    </form>
    <${Message} msg=${msg} id="consumers-msg" />
    ${consumers && consumers.length === 0 && html`<p class="card" id="no-consumers">No feed consumers are registered (POST /v1/consumers registers one).</p>`}
    ${consumers &&
    consumers.length > 0 &&
    html`<div class="scroll" tabindex="0" role="region" aria-label="Feed consumers (table)">
      <table class="data" id="consumers-table">
        <caption>Feed consumers against a deadline of ${deadline} business days</caption>
        <thead><tr><th scope="col">Consumer</th><th scope="col">Unacknowledged</th><th scope="col">Opt-outs unacknowledged</th><th scope="col">Oldest opt-out</th><th scope="col">Age (business days)</th><th scope="col">Status</th><th scope="col">Lost to retention</th></tr></thead>
        <tbody>${consumers.map((c) => {
          const t = c.oldest_unacknowledged_opt_out_time;
          const age = t ? businessDaysSince(Date.parse(t), checked) : null;
          const late = age !== null && age > deadline;
          return html`<tr data-consumer=${c.name} class=${late ? "late" : ""}>
            <th scope="row">${c.name}</th>
            <td>${c.unacknowledged}</td>
            <td>${c.unacknowledged_opt_outs}</td>
            <td>${t ? formatTime(t) : "none"}</td>
            <td>${age === null ? "–" : age}</td>
            <td class="status">${late ? html`<strong class="badge late">⚠ late</strong> over the deadline by ${age - deadline}` : age === null ? "nothing waiting" : "within the deadline"}</td>
            <td>${c.trimmed_unacknowledged !== "0" ? html`<strong class="badge late">${c.trimmed_unacknowledged} lost</strong>` : "0"}</td>
          </tr>`;
        })}</tbody>
      </table>
    </div>`}
  </div>`;
}
