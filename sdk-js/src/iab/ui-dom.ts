// The DOM the TCF layer (ui.ts in this folder) is built from, and a
// partner's details for its partners list: elements from createElement and
// textContent only (vendor-list texts are not trusted HTML), no style
// attributes (a strict CSP works). Texts from the vendor list are marked
// with its language where the page's differs.

import type { Named, Vendor, VendorList } from "./gvl";
import type { Texts } from "./ui-texts";

/** Fills a text's {placeholders}. */
export const fill = (s: string, v: Record<string, string | number>) => s.replace(/\{(\w+)\}/g, (_, k) => String(v[k]));

/** The distinct ids, ascending. */
export const uniq = (a: number[]) => Array.from(new Set(a)).sort((x, y) => x - y);

/** The builders of one mounted UI (see builders). */
export type Builders = ReturnType<typeof builders>;

/** The builders of one mounted UI: its document, texts and language, the page's language tag, and the vendor list once loaded. */
export function builders(doc: Document, t: Texts, lang: string, tag: string, vendorList: () => VendorList | null) {
  const primary = tag.split("-")[0];
  const el = <K extends keyof HTMLElementTagNameMap>(
    name: K,
    cls: string,
    text?: string,
    attrs?: Record<string, string>,
  ): HTMLElementTagNameMap[K] => {
    const e = doc.createElement(name);
    if (cls) e.className = cls;
    if (text) e.textContent = text;
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  };
  const actions = (names: [string, string, string?][]) => {
    const box = el("div", "consentd-actions");
    for (const [action, text, alt] of names)
      box.append(el("button", "consentd-btn" + (alt || ""), text, { type: "button", "data-consent-action": action }));
    return box;
  };
  const localised = (node: HTMLElement, map: Record<string, string> | undefined, fallback: string) => {
    const texts = map || {};
    const key = [tag, primary, "en"].find((k) => texts[k]) || Object.keys(texts)[0];
    node.textContent = (key && texts[key]) || fallback;
    if (key && key.split("-")[0] != lang) node.lang = key;
    return node;
  };
  const list = (cls: string, items: (string | Node)[]) => {
    const ul = el("ul", cls);
    for (const i of items) {
      const li = el("li", "");
      li.append(i);
      ul.append(li);
    }
    return ul;
  };
  const named = (kind: "purposes" | "specialPurposes" | "features" | "specialFeatures", id: number): Named =>
    vendorList()?.[kind]?.[id] || { id, name: (kind == "purposes" ? "Purpose " : kind == "specialFeatures" ? "Special feature " : kind == "features" ? "Feature " : "Special purpose ") + id };
  // A purpose (or feature) with its description and illustrations, behind a disclosure.
  // Its texts are in the vendor list's language (the GVL class's `language`; the JSON file's: English).
  const gvlLang = () => ((vendorList() as { language?: string } | null)?.language || "en").toLowerCase();
  const marked = <E extends HTMLElement>(e: E) => {
    if (gvlLang().split("-")[0] != lang) e.lang = gvlLang();
    return e;
  };
  const explained = (item: Named, label = item.name) => {
    const d = marked(el("details", "consentd-more"));
    d.append(el("summary", "", label));
    if (item.description) d.append(el("p", "consentd-desc", item.description));
    if (item.illustrations?.length) d.append(list("consentd-desc consentd-examples", item.illustrations));
    return d;
  };
  // A partner's privacy links, purposes with their retention, features, storage and data categories, behind a disclosure.
  function vendorDetails(v: Vendor) {
    const d = el("details", "consentd-more");
    d.append(el("summary", "", t.details));
    const urls = v.urls || [];
    const url = urls.find((u) => u.langId.toLowerCase() == tag) || urls.find((u) => u.langId.toLowerCase().split("-")[0] == primary) || urls.find((u) => u.langId == "en") || urls[0];
    const links = el("p", "consentd-desc consentd-links");
    const link = (href: string, text: string) => el("a", "", text, { href, target: "_blank", rel: "noopener noreferrer" });
    if (url?.privacy) links.append(link(url.privacy, t.privacy));
    if (url?.legIntClaim) links.append(link(url.legIntClaim, t.liClaim));
    if (links.childNodes.length) d.append(links);
    const r = v.dataRetention || {};
    // A vendor-list name (in its language) with how long the data is kept (in the page's).
    const kept = (name: string, days: number | undefined) => {
      const [before, after] = (days != null ? fill(t.retention, { name: "\u0000", d: days }) : "\u0000").split("\u0000");
      const f = doc.createDocumentFragment();
      f.append(before, marked(el("span", "", name)), after);
      return f;
    };
    const section = (title: string, items: (string | Node)[]) => {
      if (items.length) d.append(el("p", "consentd-sub", title), list("consentd-desc consentd-facts", items));
    };
    const name = (n: string) => marked(el("span", "", n));
    const li = v.legIntPurposes || [];
    section(t.consentPurposes, (v.purposes || []).map((p) => kept(named("purposes", p).name, r.purposes?.[p] ?? r.stdRetention)));
    section(t.liPurposes, li.map((p) => kept(named("purposes", p).name, r.purposes?.[p] ?? r.stdRetention)));
    section(t.specialPurposes, (v.specialPurposes || []).map((p) => kept(named("specialPurposes", p).name, r.specialPurposes?.[p] ?? r.stdRetention)));
    section(t.features, (v.features || []).map((f) => name(named("features", f).name)));
    section(t.sfShort, (v.specialFeatures || []).map((f) => name(named("specialFeatures", f).name)));
    const age = v.cookieMaxAgeSeconds;
    const cookie =
      v.usesCookies && age != null
        ? fill(age < 86400 ? t.cookiesSeconds : t.cookies, { d: age < 86400 ? age : Math.round(age / 86400) }) + (v.cookieRefresh ? t.refresh : "")
        : v.usesCookies
          ? fill(t.cookies, { d: "?" })
          : t.noCookies;
    section(t.storage, [cookie, v.usesNonCookieAccess ? t.nonCookie : t.noNonCookie]);
    section(t.categories, (v.dataDeclaration || []).map((c) => name(vendorList()?.dataCategories?.[c]?.name || String(c))));
    return d;
  }

  // A switch with its label in a row; kind "consent" or "object".
  function switchRow(id: string, label: string | HTMLElement, attrs: Record<string, string>, checked: boolean) {
    const row = el("div", "consentd-row");
    const l = typeof label == "string" ? el("label", "consentd-name", label) : label;
    l.setAttribute("for", id);
    const input = el("input", "consentd-switch", "", { type: "checkbox", role: "switch", id, ...attrs });
    input.checked = checked;
    row.append(l, input);
    return { row, input };
  }

  return { el, actions, list, localised, named, marked, explained, switchRow, vendorDetails };
}
