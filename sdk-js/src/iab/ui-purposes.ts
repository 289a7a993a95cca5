// What the TCF layer (ui.ts in this folder) says about purposes: the first
// layer's list (grouped by stacks) and the second layer's purposes pane, a
// switch per consentd purpose with the TCF purposes it covers, an objection
// switch where it covers legitimate interests, the special features (one
// decision, two switches) and the special purposes and features for
// information.

import type { Consent } from "../types";
import type { Stack, Vendor } from "./gvl";
import type { TCFPurposeMapping } from "./types";
import { type Builders, fill, uniq } from "./ui-dom";
import type { Texts } from "./ui-texts";

// The first layer's list of what the partners do: the vendor list's stacks
// that group only purposes the site asks for (largest first, no overlap),
// then the remaining purposes, and the special features apart.
export function purposeUses(b: Builders, t: Texts, stacks: Stack[], purposes: number[], features: number[]): Node[] {
  const { el, list, named, explained } = b;
  const left = new Set(purposes);
  const leftF = new Set(features);
  const items: Node[] = [];
  const featureItems: Node[] = [];
  const sorted = [...stacks].sort((x, y) => y.purposes.length + y.specialFeatures.length - x.purposes.length - x.specialFeatures.length);
  for (const s of sorted) {
    if (s.purposes.length + s.specialFeatures.length < 2) continue;
    if (s.purposes.every((p) => left.has(p)) && s.specialFeatures.every((f) => leftF.has(f))) {
      for (const p of s.purposes) left.delete(p);
      for (const f of s.specialFeatures) leftF.delete(f);
      // A stack's disclosure names the purposes and special features it groups.
      const d = explained(s);
      d.append(list("consentd-desc consentd-facts", [...s.purposes.map((p) => named("purposes", p).name), ...s.specialFeatures.map((f) => named("specialFeatures", f).name)]));
      (s.purposes.length ? items : featureItems).push(d);
    }
  }
  for (const p of left) items.push(explained(named("purposes", p)));
  const out: Node[] = [el("p", "consentd-text", t.uses), list("consentd-tcf-items", items)];
  const sf = [...featureItems, ...Array.from(leftF, (f) => explained(named("specialFeatures", f)))];
  if (sf.length) out.push(el("p", "consentd-text", t.withConsent), list("consentd-tcf-items", sf));
  return out;
}


/** The second layer's purposes pane. */
export function purposesPane(b: Builders, t: Texts, uid: string, consent: Consent, mappings: TCFPurposeMapping[], vendors: Vendor[], granted: (purpose: string) => boolean): Node[] {
  const { el, list, localised, named, marked, explained, switchRow } = b;
  const policy = consent.policy();
  const out: Node[] = [el("p", "consentd-text", t.prefsIntro)];
  const ul = el("ul", "consentd-list");
  const asked = consent.asked();
  const mapped = new Set(mappings.map((m) => m.purpose));
  const ordered = (policy?.purposes || []).filter((p) => p.necessary || asked.includes(p.id) || mapped.has(p.id));
  for (const p of ordered) {
    const id = uid + "-" + p.id;
    const m = mappings.find((x) => x.purpose == p.id);
    const item = el("li", "consentd-purpose");
    const label = localised(el("label", "consentd-name", "", { id: id + "-l" }), p.titles, p.id);
    const { row, input } = switchRow(id, label, { "data-consent-purpose": p.id, "data-tcf-kind": "consent", "aria-describedby": id + "-d" }, p.necessary || granted(p.id));
    input.disabled = p.necessary;
    if (p.necessary) {
      input.before(el("span", "consentd-always", t.always, { id: id + "-a" }));
      input.setAttribute("aria-describedby", id + "-a " + id + "-d");
    }
    item.append(row, localised(el("p", "consentd-desc", "", { id: id + "-d" }), p.descriptions, ""));
    if (m?.consent.length) {
      item.append(el("p", "consentd-sub", t.consentTo), list("consentd-tcf-items", m.consent.map((n) => explained(named("purposes", n)))));
    }
    if (m?.legitimate_interest.length) {
      const box = el("div", "consentd-li");
      // Named with its purpose: "Object to legitimate interest, Personalised advertising".
      const o = switchRow(
        id + "-o",
        el("label", "consentd-name", t.object, { id: id + "-o-l" }),
        { "data-consent-purpose": p.id, "data-tcf-kind": "object", "aria-labelledby": `${id}-o-l ${id}-l`, "aria-describedby": id + "-ol" },
        consent.choice(p.id) === false,
      );
      box.append(o.row, list("consentd-tcf-items", m.legitimate_interest.map((n) => explained(named("purposes", n)))));
      box.lastElementChild?.setAttribute("id", id + "-ol");
      item.append(box);
    }
    ul.append(item);
  }
  out.push(ul);

  // Special features: opted in with their purpose's consent (one decision, two switches).
  const sfs = mappings.flatMap((m) => m.special_features.map((f) => [f, m.purpose] as const));
  if (sfs.length) {
    const sul = el("ul", "consentd-list");
    for (const [f, p] of sfs) {
      const id = `${uid}-sf${f}`;
      const feature = named("specialFeatures", f);
      const title = policy?.purposes.find((x) => x.id == p);
      const label = marked(el("label", "consentd-name", feature.name));
      const item = el("li", "consentd-purpose");
      const { row } = switchRow(id, label, { "data-consent-purpose": p, "data-tcf-kind": "consent", "data-tcf-special-feature": String(f), "aria-describedby": id + "-d" }, granted(p));
      const d = el("p", "consentd-desc", fill(t.sfWith, { name: localised(el("span", ""), title?.titles, p).textContent || p }), { id: id + "-d" });
      if (feature.description) d.append(": ", marked(el("span", "", feature.description)));
      item.append(row, d);
      sul.append(item);
    }
    out.push(el("h3", "consentd-h3", t.sf), el("p", "consentd-desc", t.sfIntro), sul);
  }

  // Special purposes and features: information only (the vendors' union).
  const vs = vendors;
  const sp = uniq(vs.flatMap((v) => v.specialPurposes || []));
  const fe = uniq(vs.flatMap((v) => v.features || []));
  if (sp.length || fe.length) {
    out.push(el("h3", "consentd-h3", t.info), el("p", "consentd-desc", t.infoIntro));
    if (sp.length) out.push(el("p", "consentd-sub", t.specialPurposes), list("consentd-tcf-items", sp.map((n) => explained(named("specialPurposes", n)))));
    if (fe.length) out.push(el("p", "consentd-sub", t.features), list("consentd-tcf-items", fe.map((n) => explained(named("features", n)))));
  }
  return out;
}
