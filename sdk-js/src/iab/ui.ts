// The TCF layer of the preference center: the banner and preference center
// shown instead of the default ones (ui.ts) in the policy's TCF regions, with
// what the IAB's TCF v2.2 policies ask of a consent UI.
//
// First layer (the banner): the number of partners (vendors) and a way to
// their list, the purposes (grouped by the vendor list's stacks where one
// fits) and special features, that some partners rely on legitimate interest
// and that the person may object to it, that choices apply to this site and
// can be changed at any time (the "Privacy choices" button), and "Accept
// all", "Reject all" (same element, class and size) and "Manage options".
//
// Second layer (a native modal <dialog>): per consentd purpose of the
// policy's iab.tcf.purposes, a consent switch (its TCF purposes and special
// features with their vendor-list names, descriptions and illustrations) and,
// where it carries legitimate interests, an objection switch; special
// purposes and features for information; and the partners: each with its
// privacy policy, purposes by legal basis, retention, device storage and data
// categories, a consent switch and (for legitimate interests) an objection
// switch.
//
// Purpose, objection and special-feature choices are consentd decisions
// (consent.set on the mapped purpose): an objection to a purpose's legitimate
// interests is a denial of that purpose, which also withdraws its consent;
// consentd keeps one decision per purpose, so lifting an objection means
// granting the purpose. Per-partner choices go to the signals part
// (controller.setVendors). Same rules as ui.ts: DOM from createElement and
// textContent (vendor-list texts are not trusted HTML), no style attributes
// (a strict CSP works), shown and hidden with `hidden`; the look is
// iab/ui.css over ui.css's classes and variables.

import { funnel, type Step } from "../funnel";
import type { Consent, ConsentState } from "../types";
import type { Vendor, VendorList } from "./gvl";
import type { IABPolicy, TCFController, TCFPurposeMapping } from "./types";
import { builders, fill, uniq } from "./ui-dom";
import { purposesPane, purposeUses } from "./ui-purposes";
import { TEXTS } from "./ui-texts";

export interface TCFUIOptions {
  /** Language of the texts; default the page's <html lang>, then the browser's. English when unknown. */
  lang?: string;
  /** URL of the stylesheet (the IAB entry's, which includes consentd.css): added unless the page has it. */
  stylesheet?: string;
  /** Where the UI is inserted (as the first child). Default document.body. */
  container?: HTMLElement;
  /** The floating "Privacy choices" button: bottom left (true, "left"), bottom right ("right") or none (false). Default true. */
  button?: boolean | "left" | "right";
  /** consentd's base URL: where the banner's funnel is reported (as mountUI's). Without it nothing is reported. */
  endpoint?: string;
  /** The visitor's region code, reported with the funnel. */
  region?: string;
  /**
   * Report the first layer's funnel to consentd, as mountUI does: shown, and
   * accept all, reject all or customise (Manage options and the partners
   * link). Anonymous, at most once each per page view. false turns it off.
   */
  funnel?: boolean;
}

export interface TCFUI {
  /** Opens the preference center on its purposes (default) or on its list of partners. */
  open(view?: "purposes" | "vendors"): void;
  /** Closes the preference center. */
  close(): void;
  /** Removes everything the UI added, and its listeners. */
  destroy(): void;
}

let mounted = 0;


/**
 * Shows the TCF banner while the visitor must be asked (state.needsPrompt
 * non-empty), and wires every [data-consent-open] element (and a floating
 * "Privacy choices" button it adds) to the TCF preference center.
 */
export function mountTCF(consent: Consent, controller: TCFController, options: TCFUIOptions = {}): TCFUI {
  const doc = document;
  const tag = (options.lang || doc.documentElement.lang || navigator.language || "en").toLowerCase();
  const primary = tag.split("-")[0];
  const lang = TEXTS[primary] ? primary : "en";
  const t = TEXTS[lang];
  const uid = "consentd-tcf" + ++mounted;
  // The policy's iab.tcf and the vendor list: read once the policy is known (prepare()).
  let tcf: IABPolicy["tcf"];
  let mappings: TCFPurposeMapping[] = [];
  let tcfPurposes: number[] = [];
  let tcfFeatures: number[] = [];
  const report = funnel(options.funnel !== false && options.endpoint, options.region);

  // The vendor list's texts are English unless the signals part loaded a translation.
  let gvl: VendorList | null = null;
  let loaded = false;
  const b = builders(doc, t, lang, tag, () => gvl);
  const { el, actions, switchRow, vendorDetails } = b;
  const closeButton = () => el("button", "consentd-x", "×", { type: "button", "aria-label": t.close, "data-consent-action": "close" });
  const vendors = (): Vendor[] => {
    if (!gvl) return [];
    const all = Object.values(gvl.vendors).filter((v) => !v.deletedDate);
    const only = tcf?.vendors?.length ? new Set(tcf.vendors) : null;
    return all.filter((v) => !only || only.has(v.id)).sort((a, b) => a.name.localeCompare(b.name));
  };
  const count = () => (gvl ? vendors().length : tcf?.vendors?.length || 0);
  const mappedTo = (p: number) => mappings.find((m) => m.consent.includes(p))?.purpose;

  const root = el("div", "consentd consentd-tcf");
  root.lang = lang;
  root.hidden = true;

  // First layer.
  const banner = el("div", "consentd-banner consentd-tcf-banner", "", { role: "region", "aria-label": t.title, "data-consent-banner": "" });
  const intro = el("p", "consentd-text");
  const uses = el("div", "consentd-tcf-uses");
  const partners = el("button", "consentd-link", "", { type: "button", "data-consent-action": "vendors" });
  const liText = el("p", "consentd-text", t.li, { "data-tcf-li": "" });
  banner.append(
    el("h2", "consentd-title", t.title),
    intro,
    uses,
    liText,
    el("p", "consentd-text", t.change),
    partners,
    actions([
      ["accept-all", t.accept],
      ["reject-all", t.reject],
      ["customise", t.manage, " consentd-btn-alt"],
    ]),
  );

  // Second layer.
  const dialog = el("dialog", "consentd-dialog consentd-tcf-dialog", "", {
    "aria-labelledby": uid + "-title",
    closedby: "any",
    "data-consent-preferences": "",
  });
  const head = el("div", "consentd-head");
  head.append(el("h2", "consentd-title", t.prefs, { id: uid + "-title" }), closeButton());
  const tabs = el("div", "consentd-tabs");
  const tabP = el("button", "consentd-tab", t.tabPurposes, { type: "button", "data-tcf-view": "purposes", "aria-controls": uid + "-p" });
  const tabV = el("button", "consentd-tab", "", { type: "button", "data-tcf-view": "vendors", "aria-controls": uid + "-v" });
  tabs.append(tabP, tabV);
  const paneP = el("div", "consentd-pane", "", { id: uid + "-p", "data-tcf-pane": "purposes" });
  const paneV = el("div", "consentd-pane", "", { id: uid + "-v", "data-tcf-pane": "vendors" });
  dialog.append(
    head,
    tabs,
    paneP,
    paneV,
    actions([
      ["accept-all", t.accept],
      ["reject-all", t.reject],
      ["save", t.save, " consentd-btn-alt"],
    ]),
  );

  const fab = el("button", "consentd-fab" + (options.button == "right" ? " consentd-right" : ""), t.open, { type: "button", "data-consent-open": "" });
  const end = el("div", "consentd-end");
  banner.hidden = fab.hidden = end.hidden = true;
  root.append(banner, fab, dialog);

  let wantOpen: "purposes" | "vendors" | null = null;
  let touched = new WeakSet<EventTarget>();
  let state: ConsentState = consent.get();
  const shown = (e: Element) => e.getClientRects().length > 0;

  function renderBanner() {
    intro.textContent = fill(t.intro, { n: count() });
    partners.textContent = fill(t.partners, { n: count() });
    uses.replaceChildren(...purposeUses(b, t, Object.values(gvl?.stacks || {}), tcfPurposes, tcfFeatures));
    liText.hidden = !vendors().some((v) => v.legIntPurposes?.length) && !mappings.some((m) => m.legitimate_interest.length);
  }

  // Once the policy is known (the signals part reads its iab section from it): the mapping, and the vendor list loading.
  let loading = false;
  function prepare() {
    if (loading || !consent.policy()) return;
    let iab: IABPolicy;
    try {
      iab = controller.policy();
    } catch {
      return; // not yet: the next change
    }
    loading = true;
    tcf = iab.tcf;
    // (JSON may leave out an empty list.)
    mappings = (tcf?.purposes || []).map((m) => ({
      purpose: m.purpose,
      consent: m.consent || [],
      legitimate_interest: m.legitimate_interest || [],
      special_features: m.special_features || [],
    }));
    // The TCF purposes the site asks for, and its special features.
    tcfPurposes = uniq(mappings.flatMap((m) => [...m.consent, ...m.legitimate_interest]));
    tcfFeatures = uniq(mappings.flatMap((m) => m.special_features));
    controller
      .vendorList()
      .then(
        (list) => {
          gvl = list as VendorList;
        },
        (err) => console.warn("consentd: the vendor list did not load", err),
      )
      .then(() => {
        loaded = true;
        if (off) render();
      });
  }

  function render() {
    state = consent.get();
    const up = state.needsPrompt.length > 0;
    fab.hidden = end.hidden = up || options.button === false;
    doc.body.append(end);
    // The first layer needs the policy (what is asked) and the vendor list (its names, the number of partners).
    prepare();
    if (!consent.policy() || !loaded) return;
    if (up && banner.hidden) renderBanner();
    const refocus = !up && banner.contains(doc.activeElement);
    banner.hidden = !up;
    if (refocus && shown(fab)) fab.focus();
    seen();
    if (wantOpen) show(wantOpen);
  }

  // The funnel's "shown": up, styled, on a page the visitor looks at (as ui.ts).
  function seen() {
    if (banner.hidden || root.hidden) return;
    if (doc.visibilityState == "visible") report("shown");
    else doc.addEventListener("visibilitychange", seen, { once: true });
  }

  function view(which: "purposes" | "vendors") {
    if (paneP.hidden == (which == "purposes")) dialog.scrollTop = 0;
    paneP.hidden = which != "purposes";
    paneV.hidden = which != "vendors";
    tabP.setAttribute("aria-pressed", String(which == "purposes"));
    tabV.setAttribute("aria-pressed", String(which == "vendors"));
  }

  const granted = (p: string) => {
    const s = state.purposes[p];
    return !!s && (s.allowed || s.reason == "awaiting_guardian");
  };

  // A vendor's consent follows the purposes unless the person chose for it:
  // consent to any TCF purpose it declares (for consent or flexibly) whose
  // consentd purpose is on in the switches.
  function followsPurposes(v: Vendor) {
    return uniq([...(v.purposes || []), ...(v.flexiblePurposes || [])]).some((p) => {
      const m = mappedTo(p);
      return !!m && !!dialog.querySelector<HTMLInputElement>(`[data-tcf-pane="purposes"] input[data-tcf-kind="consent"][data-consent-purpose="${m}"]:checked`);
    });
  }

  function vendorsPane() {
    const chosen = controller.vendorConsents();
    const objected = controller.vendorObjections();
    const ul = el("ul", "consentd-list");
    for (const v of vendors()) {
      const id = `${uid}-v${v.id}`;
      const item = el("li", "consentd-purpose consentd-vendor", "", { "data-tcf-vendor-item": String(v.id) });
      item.append(el("h3", "consentd-h3 consentd-vname", v.name, { id: id + "-n" }));
      if (v.purposes?.length || v.specialFeatures?.length) {
        const s = switchRow(id, fill(t.consentFor, { name: v.name }), { "data-tcf-vendor": String(v.id), "data-tcf-kind": "consent" }, chosen[v.id] ?? followsPurposes(v));
        item.append(s.row);
      }
      if (v.legIntPurposes?.length) {
        const s = switchRow(id + "-o", el("label", "consentd-name", fill(t.objectFor, { name: v.name })), { "data-tcf-vendor": String(v.id), "data-tcf-kind": "object" }, !!objected[v.id]);
        item.append(s.row);
      }
      item.append(vendorDetails(v));
      ul.append(item);
    }
    paneV.replaceChildren(el("p", "consentd-text", t.vendorsIntro), ul);
  }

  function show(which: "purposes" | "vendors" = "purposes") {
    wantOpen = which;
    if (!consent.policy() || !loaded || root.hidden) return;
    wantOpen = null;
    if (dialog.open) return view(which);
    state = consent.get();
    touched = new WeakSet();
    tabV.textContent = fill(t.tabVendors, { n: count() });
    paneP.replaceChildren(...purposesPane(b, t, uid, consent, mappings, vendors(), granted));
    vendorsPane();
    view(which);
    dialog.showModal();
  }

  function close() {
    wantOpen = null;
    dialog.close();
  }

  // One decision per consentd purpose, shown by more than one switch: keep them in step.
  function onChange(e: Event) {
    const input = e.target as HTMLInputElement;
    if (!dialog.contains(input)) return;
    touched.add(input);
    const p = input.getAttribute("data-consent-purpose");
    if (p) {
      const kind = input.getAttribute("data-tcf-kind");
      const all = dialog.querySelectorAll<HTMLInputElement>(`input[data-consent-purpose="${p}"]`);
      all.forEach((i) => {
        if (i == input) return;
        if (i.getAttribute("data-tcf-kind") == kind) i.checked = input.checked;
        else if (input.checked) i.checked = false; // consent lifts the objection; an objection refuses consent
        // Consent turned off is a refusal, which is an objection too.
        else if (kind == "consent") i.checked = true;
        touched.add(i);
      });
      // Partners without a choice of their own follow the purposes.
      paneV.querySelectorAll<HTMLInputElement>('input[data-tcf-kind="consent"]').forEach((i) => {
        if (touched.has(i) || controller.vendorConsents()[Number(i.getAttribute("data-tcf-vendor"))] != null) return;
        const v = vendors().find((x) => String(x.id) == i.getAttribute("data-tcf-vendor"));
        if (v) i.checked = followsPurposes(v);
      });
    }
  }

  function save() {
    const decisions: Record<string, boolean> = {};
    let any = false;
    const purposes = new Set<string>();
    dialog.querySelectorAll<HTMLInputElement>("input[data-consent-purpose]:not(:disabled)").forEach((i) => {
      purposes.add(i.getAttribute("data-consent-purpose") as string);
    });
    for (const p of purposes) {
      const inputs = Array.from(dialog.querySelectorAll<HTMLInputElement>(`input[data-consent-purpose="${p}"]`));
      const on = inputs.filter((i) => i.getAttribute("data-tcf-kind") == "consent");
      const objection = inputs.find((i) => i.getAttribute("data-tcf-kind") == "object");
      const wasTouched = inputs.some((i) => touched.has(i));
      // As in ui.ts: a switch turned on is a grant, one left on by default records nothing, one off is a
      // denial (of a purpose with legitimate interests: the objection too). Only an objection the person
      // turned off themselves, without consent, records nothing: the interest stays, the purpose undecided
      // (consentd cannot store "no consent, no objection"; the banner asks again).
      if (on.some((i) => i.checked)) {
        if (wasTouched) decisions[p] = any = true;
      } else if (!objection || objection.checked || !touched.has(objection)) {
        decisions[p] = false;
        any = true;
      }
    }
    const consents: Record<number, boolean> = {};
    const objections: Record<number, boolean> = {};
    let vendorsChosen = false;
    paneV.querySelectorAll<HTMLInputElement>("input[data-tcf-vendor]").forEach((i) => {
      if (!touched.has(i)) return;
      const v = Number(i.getAttribute("data-tcf-vendor"));
      (i.getAttribute("data-tcf-kind") == "object" ? objections : consents)[v] = i.checked;
      vendorsChosen = true;
    });
    const done = any ? consent.set(decisions, "preference_center") : Promise.resolve(state);
    const after = () => (vendorsChosen ? controller.setVendors(consents, objections) : undefined);
    done.then(after, after).catch((err) => console.warn(err));
  }

  function onClick(e: MouseEvent) {
    const target = e.target as Element;
    const b = target.closest?.("[data-consent-action],[data-consent-open],[data-tcf-view]");
    if (!b) return;
    if (b.hasAttribute("data-tcf-view")) {
      if (dialog.contains(b)) view(b.getAttribute("data-tcf-view") as "purposes" | "vendors");
      return;
    }
    const action = b.getAttribute("data-consent-action");
    if (action == null) {
      e.preventDefault();
      return show();
    }
    if (!root.contains(b)) return;
    if (banner.contains(b)) report((action == "vendors" ? "customise" : action) as Step);
    if (action == "customise") return show();
    if (action == "vendors") return show("vendors");
    if (action == "close") return close();
    const source = dialog.contains(b) ? "preference_center" : "banner";
    const inDialog = dialog.open;
    close(); // first, so focus is back before the change hides the banner
    if (action == "save") {
      if (inDialog) save();
      return;
    }
    // All or nothing: per-partner choices go too (every partner follows the purposes again).
    const all = action == "accept-all";
    if (!all && action != "reject-all") return;
    controller
      .clearVendors()
      .catch((err) => console.warn(err))
      .then(() => (all ? consent.acceptAll(source) : consent.rejectAll(source)))
      .catch((err) => console.warn(err));
  }

  let link: HTMLLinkElement | null = null;
  let off: (() => void) | null = null;
  const href = options.stylesheet;
  if (href) {
    const url = new URL(href, doc.baseURI).href;
    const links = Array.from(doc.querySelectorAll<HTMLLinkElement>('link[rel~="stylesheet"]'));
    if (!links.some((l) => l.href == url)) {
      link = el("link", "", "", { rel: "stylesheet", href: url });
      link.onload = link.onerror = () => {
        root.hidden = false;
        if (off) render();
      };
      doc.head.append(link);
    }
  }
  if (!link) root.hidden = false;

  function start() {
    const container = options.container || doc.body;
    container.insertBefore(root, container.firstChild);
    doc.addEventListener("click", onClick, true);
    dialog.addEventListener("change", onChange);
    off = consent.on("change", render);
    render();
  }
  const ready = () => {
    doc.removeEventListener("DOMContentLoaded", ready);
    off ? render() : start();
  };
  if (options.container || doc.body) start();
  doc.addEventListener("DOMContentLoaded", ready);

  return {
    open: show,
    close,
    destroy() {
      doc.removeEventListener("DOMContentLoaded", ready);
      doc.removeEventListener("click", onClick, true);
      doc.removeEventListener("visibilitychange", seen);
      if (off) off();
      dialog.close();
      root.remove();
      end.remove();
      if (link) link.remove();
    },
  };
}
