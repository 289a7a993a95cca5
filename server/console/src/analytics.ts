// Analytics: GET /v1/stats for a range of UTC days, filtered by purpose and
// region, drawn with uPlot (small, canvas) and printed as tables with the
// same numbers (for screen readers, for people who want the figures, and for
// the tests).

import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import { call, query } from "./api";
import { html, Message, type Msg, errorText } from "./common";
import { addDays, dayMs, spanDays, today } from "./dates";
import {
  type DayStats,
  type Filter,
  METHOD_LABELS,
  METHODS,
  STEP_LABELS,
  STEPS,
  decisionTotals,
  decisionsByDay,
  funnel,
  methodsByDay,
  percent,
  regionsIn,
} from "./stats";
import type { Session } from "./main";

const MAX_DAYS = 90;

// Colours with their line style: a series is told apart by its dash too,
// never by colour alone. Contrast ≥ 3:1 on white.
const SERIES = [
  { stroke: "#1d6b3a", dash: [] as number[] },
  { stroke: "#b42318", dash: [6, 3] },
  { stroke: "#6941c6", dash: [2, 3] },
  { stroke: "#175cd3", dash: [10, 4, 2, 4] },
  { stroke: "#b54708", dash: [4, 4] },
  { stroke: "#344054", dash: [1, 2] },
  { stroke: "#c11574", dash: [8, 2] },
];

export function AnalyticsScreen({ session }: { session: Session }) {
  const end0 = today();
  const [start, setStart] = useState(addDays(end0, -29));
  const [end, setEnd] = useState(end0);
  const [filter, setFilter] = useState<Filter>({ purpose: "", region: "" });
  const [days, setDays] = useState<DayStats[] | null>(null);
  const [msg, setMsg] = useState<Msg>(null);

  const load = async (e?: Event) => {
    e?.preventDefault();
    const n = spanDays(start, end);
    if (!(n >= 1)) return setMsg({ kind: "error", text: "Choose a first day on or before the last day." });
    if (n > MAX_DAYS) return setMsg({ kind: "error", text: `That is ${n} days: the console shows at most ${MAX_DAYS} at a time.` });
    setMsg({ kind: "info", text: "Loading…" });
    try {
      const r = await call<{ days: DayStats[] }>(session.key, "GET", "/v1/stats" + query({ start_day: start, end_day: end }));
      setDays(r.days || []);
      setMsg({ kind: "ok", text: `${start} to ${end} (UTC days): ${(r.days || []).length} days.` });
    } catch (err) {
      setDays(null);
      setMsg({ kind: "error", text: errorText(err) });
    }
  };
  useEffect(() => {
    load();
  }, []);

  const purposes = session.policy?.purposes.map((p) => p.id) || [];
  const regions = days ? regionsIn(days) : [];
  const select = (id: string, label: string, value: string, options: string[], all: string, set: (v: string) => void) =>
    html`<div class="field"><label for=${id}>${label}</label>
      <select id=${id} value=${value} onChange=${(e: Event) => set((e.target as HTMLSelectElement).value)}>
        <option value="">${all}</option>
        ${options.map((o) => html`<option value=${o}>${o}</option>`)}
      </select></div>`;
  return html`<div class="analytics">
    <form class="card filters" onSubmit=${load} aria-label="Range and filters">
      <div class="field"><label for="start-day">First day (UTC)</label><input id="start-day" type="date" value=${start} max=${end0} onInput=${(e: Event) => setStart((e.target as HTMLInputElement).value)} /></div>
      <div class="field"><label for="end-day">Last day (UTC)</label><input id="end-day" type="date" value=${end} max=${end0} onInput=${(e: Event) => setEnd((e.target as HTMLInputElement).value)} /></div>
      <button type="submit" class="primary" id="stats-btn">Show</button>
      ${select("purpose-filter", "Purpose", filter.purpose, purposes, "All purposes", (purpose) => setFilter({ ...filter, purpose }))}
      ${select("region-filter", "Region", filter.region, regions.includes(filter.region) || !filter.region ? regions : [...regions, filter.region], "All regions", (region) => setFilter({ ...filter, region }))}
    </form>
    <${Message} msg=${msg} id="stats-msg" />
    ${days && html`<${Charts} days=${days} filter=${filter} />`}
  </div>`;
}

function Charts({ days, filter }: { days: DayStats[]; filter: Filter }) {
  const rows = decisionsByDay(days, filter);
  const totals = decisionTotals(rows);
  const methods = methodsByDay(days, filter);
  const methodTotals = Object.fromEntries(METHODS.map((m) => [m, methods.reduce((a, d) => a + d.counts[m], 0)]));
  const steps = funnel(days, filter);
  const x = days.map((d) => dayMs(d.day) / 1000);
  const scope = `${filter.purpose || "all purposes"}, ${filter.region || "all regions"}`;
  const shown = steps.BANNER_STEP_SHOWN;
  return html`<div class="charts">
    <section class="card" aria-labelledby="ch-decisions-h" id="ch-decisions">
      <h3 id="ch-decisions-h">Decisions per day</h3>
      <p class="summary" id="decisions-summary">Over the range (${scope}): granted <strong>${totals.granted}</strong>, denied <strong>${totals.denied}</strong>, withdrawn <strong>${totals.withdrawn}</strong>.</p>
      <${Plot} id="plot-decisions" x=${x} series=${[
        { label: "granted", values: rows.map((r) => r.granted) },
        { label: "denied", values: rows.map((r) => r.denied) },
        { label: "withdrawn", values: rows.map((r) => r.withdrawn) },
      ]} />
      <${DayTable} id="table-decisions" caption="Decisions per day" head=${["granted", "denied", "withdrawn"]}
        rows=${rows.map((r) => [r.day, r.granted, r.denied, r.withdrawn])} />
    </section>
    <section class="card" aria-labelledby="ch-rate-h" id="ch-rate">
      <h3 id="ch-rate-h">Opt-in rate per day</h3>
      <p class="summary" id="rate-summary">granted ÷ (granted + denied + withdrawn). Over the range (${scope}): <strong>${percent(totals.rate)}</strong>.</p>
      <${Plot} id="plot-rate" x=${x} percent=${true} series=${[{ label: "opt-in rate", values: rows.map((r) => (r.rate === null ? null : r.rate * 100)) }]} />
      <${DayTable} id="table-rate" caption="Opt-in rate per day" head=${["opt-in rate"]} rows=${rows.map((r) => [r.day, percent(r.rate)])} />
    </section>
    <section class="card wide" aria-labelledby="ch-methods-h" id="ch-methods">
      <h3 id="ch-methods-h">How decisions were made</h3>
      <p class="summary" id="methods-summary">Writes per way they were made (${filter.region || "all regions"}; counted per write, so the purpose filter does not apply):
        ${METHODS.filter((m) => methodTotals[m] > 0).map((m, i) => html`${i ? ", " : " "}${METHOD_LABELS[m]} <strong>${methodTotals[m]}</strong>`)}
        ${METHODS.every((m) => methodTotals[m] === 0) ? " none." : "."}</p>
      <${Plot} id="plot-methods" x=${x} series=${METHODS.map((m) => ({ label: METHOD_LABELS[m], values: methods.map((d) => d.counts[m]) }))} />
      <${DayTable} id="table-methods" caption="Writes per day and method" head=${METHODS.map((m) => METHOD_LABELS[m])}
        rows=${methods.map((d) => [d.day, ...METHODS.map((m) => d.counts[m])])} />
    </section>
    <section class="card" aria-labelledby="ch-funnel-h" id="ch-funnel">
      <h3 id="ch-funnel-h">Banner funnel</h3>
      <p class="summary">Totals over the range (${filter.region || "all regions"}; the banner is not per purpose).</p>
      <${Bars} id="plot-funnel" labels=${STEPS.map((s) => STEP_LABELS[s])} values=${STEPS.map((s) => steps[s])} />
      <table class="data" id="table-funnel">
        <caption>Banner funnel, totals</caption>
        <thead><tr><th scope="col">Step</th><th scope="col">Count</th><th scope="col">Of shown</th></tr></thead>
        <tbody>${STEPS.map(
          (s) => html`<tr data-step=${s}><th scope="row">${STEP_LABELS[s]}</th><td>${steps[s]}</td><td>${shown ? percent(steps[s] / shown) : "–"}</td></tr>`,
        )}</tbody>
      </table>
    </section>
  </div>`;
}

function DayTable({ id, caption, head, rows }: { id: string; caption: string; head: string[]; rows: (string | number)[][] }) {
  return html`<div class="scroll tall" tabindex="0" role="region" aria-label=${caption + " (table)"}>
    <table class="data" id=${id}>
      <caption>${caption}, newest first</caption>
      <thead><tr><th scope="col">Day</th>${head.map((h) => html`<th scope="col">${h}</th>`)}</tr></thead>
      <tbody>${[...rows].reverse().map((r) => html`<tr data-day=${r[0]}><th scope="row">${r[0]}</th>${r.slice(1).map((v) => html`<td>${v}</td>`)}</tr>`)}</tbody>
    </table>
  </div>`;
}

/** Keeps a uPlot instance in a div, its width following the div's. */
function useUPlot(make: (width: number) => uPlot.Options, data: uPlot.AlignedData, deps: unknown[]) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const width = () => Math.max(240, el.clientWidth);
    const plot = new uPlot(make(width()), data, el);
    const ro = new ResizeObserver(() => plot.setSize({ width: width(), height: 220 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, deps);
  return ref;
}

const utc = (ts: number) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC");

function Plot({ id, x, series, percent: pct }: { id: string; x: number[]; series: { label: string; values: (number | null)[] }[]; percent?: boolean }) {
  const key = JSON.stringify([x, series]);
  const ref = useUPlot(
    (width) => ({
      width,
      height: 220,
      tzDate: utc,
      legend: { show: true, live: false },
      cursor: { show: false },
      scales: { x: { time: true }, y: pct ? { range: [0, 100] } : { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      axes: [{}, { values: (_u, vals) => vals.map((v) => (pct ? v + "%" : String(v))) }],
      series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: SERIES[i % SERIES.length].stroke, dash: SERIES[i % SERIES.length].dash, width: 2, points: { show: x.length < 40 }, spanGaps: false }))],
    }),
    [x, ...series.map((s) => s.values)] as uPlot.AlignedData,
    [key],
  );
  // The canvas is a picture of the table next to it: hidden from assistive technology.
  return html`<div class="plot" id=${id} ref=${ref} aria-hidden="true"></div>`;
}

function Bars({ id, labels, values }: { id: string; labels: string[]; values: number[] }) {
  const key = JSON.stringify(values);
  const ref = useUPlot(
    (width) => ({
      width,
      height: 220,
      legend: { show: false },
      cursor: { show: false },
      scales: { x: { time: false, range: [-0.5, labels.length - 0.5] }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      axes: [{ values: (_u, vals) => vals.map((v) => (Number.isInteger(v) ? labels[v] || "" : "")), splits: () => labels.map((_, i) => i) }, {}],
      series: [{}, { label: "count", fill: "#175cd3", stroke: "#175cd3", paths: uPlot.paths.bars?.({ size: [0.6, 80] }), points: { show: false } }],
    }),
    [labels.map((_, i) => i), values],
    [key],
  );
  return html`<div class="plot" id=${id} ref=${ref} aria-hidden="true"></div>`;
}
