// Banner and preference center, built from the service's policy.
// Optional: takes the core instance and imports only its types. Works under
// a strict Content-Security-Policy: DOM built with createElement and
// textContent (policy texts are not trusted HTML), no style attributes,
// shown and hidden with the `hidden` attribute; the look is ui.css.

import type { Consent } from "./types";

export interface UIOptions {
  /** Language of the texts; default the page's <html lang>, then the browser's. English when unknown. */
  lang?: string;
  /** URL of consentd.css: added as a <link rel="stylesheet"> unless the page already has it. */
  stylesheet?: string;
  /** Where the UI is inserted (as the first child, so it comes early in the tab order). Default document.body. */
  container?: HTMLElement;
  /** The floating "Privacy choices" button; false when the page has its own [data-consent-open] link. Default true. */
  button?: boolean;
}

export interface UI {
  /** Opens the preference center (once the policy is known). */
  open(): void;
  close(): void;
  /** Removes everything the UI added, and its listeners. */
  destroy(): void;
}

const en = {
  title: "Your privacy choices",
  text: "We use cookies and similar technologies. Necessary ones keep this site working; the others are used only if you agree. You can change your choice at any time.",
  purposes: "Purposes: ",
  gpc: "Your browser's Global Privacy Control signal was honoured: advertising is off.",
  accept: "Accept all",
  reject: "Reject all",
  customise: "Customise",
  prefs: "Privacy preferences",
  intro: "Choose what you allow. You can change this at any time.",
  save: "Save choices",
  close: "Close",
  always: "Always active",
  open: "Privacy choices",
};

const TEXTS: Record<string, typeof en> = {
  en,
  de: {
    title: "Ihre Datenschutz-Einstellungen",
    text: "Wir verwenden Cookies und ähnliche Technologien. Notwendige halten diese Website funktionsfähig; alle anderen nutzen wir nur mit Ihrer Einwilligung. Sie können Ihre Wahl jederzeit ändern.",
    purposes: "Zwecke: ",
    gpc: "Das Global-Privacy-Control-Signal Ihres Browsers wurde berücksichtigt: Werbung ist deaktiviert.",
    accept: "Alle akzeptieren",
    reject: "Alle ablehnen",
    customise: "Anpassen",
    prefs: "Datenschutz-Präferenzen",
    intro: "Wählen Sie, was Sie erlauben. Sie können das jederzeit ändern.",
    save: "Auswahl speichern",
    close: "Schließen",
    always: "Immer aktiv",
    open: "Datenschutz-Einstellungen",
  },
  fr: {
    title: "Vos choix de confidentialité",
    text: "Nous utilisons des cookies et des technologies similaires. Ceux qui sont nécessaires assurent le fonctionnement de ce site\u00a0; les autres ne sont utilisés qu'avec votre accord. Vous pouvez modifier votre choix à tout moment.",
    purposes: "Finalités\u00a0: ",
    gpc: "Le signal Global Privacy Control de votre navigateur a été respecté\u00a0: la publicité est désactivée.",
    accept: "Tout accepter",
    reject: "Tout refuser",
    customise: "Personnaliser",
    prefs: "Préférences de confidentialité",
    intro: "Choisissez ce que vous autorisez. Vous pouvez le modifier à tout moment.",
    save: "Enregistrer mes choix",
    close: "Fermer",
    always: "Toujours actif",
    open: "Choix de confidentialité",
  },
};

const FOCUSABLE = "button,input:not(:disabled)";
let mounted = 0;

/**
 * Shows the banner when the visitor must be asked (state.needsPrompt non-empty)
 * — now and after every change — and wires every element with
 * [data-consent-open] (and a floating "Privacy choices" button it adds) to
 * open the preference center.
 */
export function mountUI(consent: Consent, options: UIOptions = {}): UI {
  const doc = document;
  const html = doc.documentElement;
  const tag = (options.lang || html.lang || navigator.language || "en").toLowerCase();
  const primary = tag.split("-")[0];
  const lang = TEXTS[primary] ? primary : "en";
  const t = TEXTS[lang];
  const uid = "consentd" + ++mounted;

  const el = <K extends keyof HTMLElementTagNameMap>(
    name: K,
    cls: string,
    text?: string,
    attrs?: Record<string, string>,
  ): HTMLElementTagNameMap[K] => {
    const e = doc.createElement(name);
    e.className = cls;
    if (text) e.textContent = text;
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  };
  // accept-all and reject-all share element, class and size: equal weight.
  const actions = (names: [string, string, string?][]) => {
    const box = el("div", "consentd-actions");
    for (const [action, text, alt] of names)
      box.append(el("button", "consentd-btn" + (alt || ""), text, { type: "button", "data-consent-action": action }));
    return box;
  };
  // Policy texts in the page's language, then English, then any.
  const localised = (node: HTMLElement, map: Record<string, string> | undefined, fallback: string) => {
    map = map || {};
    const key = [tag, primary, "en"].find((k) => map![k]) || Object.keys(map)[0];
    node.textContent = (key && map[key]) || fallback;
    if (key && key.split("-")[0] != lang) node.lang = key;
    return node;
  };

  const root = el("div", "consentd");
  root.lang = lang;

  const banner = el("div", "consentd-banner", "", { role: "region", "aria-label": t.title, "data-consent-banner": "" });
  const bannerPurposes = el("p", "consentd-purposes");
  const gpcNotice = el("p", "consentd-gpc", t.gpc, { "data-consent-gpc-notice": "" });
  banner.append(
    el("h2", "consentd-title", t.title),
    el("p", "consentd-text", t.text),
    bannerPurposes,
    gpcNotice,
    actions([
      ["accept-all", t.accept],
      ["reject-all", t.reject],
      ["customise", t.customise, " consentd-btn-alt"],
    ]),
  );

  const backdrop = el("div", "consentd-backdrop");
  const dialog = el("div", "consentd-dialog", "", {
    role: "dialog",
    "aria-modal": "true",
    "aria-labelledby": uid + "-title",
    "data-consent-preferences": "",
  });
  const dialogGpc = el("p", "consentd-gpc", t.gpc, { "data-consent-gpc-notice": "" });
  const list = el("ul", "consentd-list");
  const head = el("div", "consentd-head");
  head.append(
    el("h2", "consentd-title", t.prefs, { id: uid + "-title" }),
    el("button", "consentd-x", "×", { type: "button", "aria-label": t.close, "data-consent-action": "close" }),
  );
  dialog.append(
    head,
    el("p", "consentd-text", t.intro),
    dialogGpc,
    list,
    actions([
      ["accept-all", t.accept],
      ["reject-all", t.reject],
      ["save", t.save, " consentd-btn-alt"],
    ]),
  );

  const fab = el("button", "consentd-fab", t.open, { type: "button", "data-consent-open": "" });
  banner.hidden = dialog.hidden = backdrop.hidden = fab.hidden = true;
  // The reopen button before the backdrop: the open dialog's backdrop covers it.
  root.append(banner);
  if (options.button !== false) root.append(fab);
  root.append(backdrop, dialog);

  let opener: HTMLElement | null = null;
  let wantOpen = false;
  const visible = (e: HTMLElement | null): e is HTMLElement => !!e && e.isConnected && !e.closest("[hidden]");
  const focusables = () => dialog.querySelectorAll<HTMLElement>(FOCUSABLE);

  function render() {
    const state = consent.get();
    const policy = consent.policy();
    const ask = state.needsPrompt.length > 0;
    fab.hidden = ask;
    gpcNotice.hidden = dialogGpc.hidden = !state.gpcHonoured;
    if (!policy) return; // the core emits a change after sync has fetched it
    const asked = policy.purposes.filter((p) => !p.necessary && state.needsPrompt.includes(p.id));
    bannerPurposes.hidden = !asked.length;
    bannerPurposes.replaceChildren(t.purposes);
    asked.forEach((p, i) => bannerPurposes.append(i ? ", " : "", localised(el("span", ""), p.titles, p.id)));
    // The banner goes away under the keyboard user's focus: hand it to the reopen button.
    const refocus = !ask && banner.contains(doc.activeElement);
    banner.hidden = !ask;
    if (refocus && visible(fab)) fab.focus();
    if (wantOpen) show(opener);
  }

  function show(from: HTMLElement | null) {
    if (!dialog.hidden) return;
    opener = from;
    const policy = consent.policy();
    wantOpen = !policy; // opened by the next change that brings the policy
    if (!policy) return;
    list.replaceChildren();
    for (const p of policy.purposes) {
      const id = uid + "-" + p.id;
      const item = el("li", "consentd-purpose");
      const row = el("div", "consentd-row");
      const label = localised(el("label", "consentd-name", "", { for: id }), p.titles, p.id);
      const input = el("input", "consentd-switch", "", {
        type: "checkbox",
        role: "switch",
        id,
        "data-consent-purpose": p.id,
        "aria-describedby": id + "-d",
      });
      input.checked = p.necessary || consent.has(p.id);
      input.disabled = p.necessary;
      row.append(label);
      if (p.necessary) {
        row.append(el("span", "consentd-always", t.always, { id: id + "-a" }));
        input.setAttribute("aria-describedby", id + "-a " + id + "-d");
      }
      row.append(input);
      item.append(row, localised(el("p", "consentd-desc", "", { id: id + "-d" }), p.descriptions, ""));
      list.append(item);
    }
    dialog.hidden = backdrop.hidden = false;
    html.classList.add("consentd-lock");
    focusables()[0].focus();
  }

  function close() {
    wantOpen = false;
    if (dialog.hidden) return;
    dialog.hidden = backdrop.hidden = true;
    html.classList.remove("consentd-lock");
    const back = visible(opener) ? opener : visible(fab) ? fab : null;
    if (back) back.focus();
  }

  function onClick(e: MouseEvent) {
    const target = e.target as Element;
    const b = target.closest && target.closest("[data-consent-action],[data-consent-open]");
    if (target == backdrop) close();
    if (!b) return;
    const action = b.getAttribute("data-consent-action");
    if (action == null) {
      // [data-consent-open] anywhere on the page, now or added later.
      e.preventDefault();
      show(b as HTMLElement);
      return;
    }
    if (!root.contains(b)) return;
    const source = dialog.contains(b) ? "preference_center" : "banner";
    if (action == "customise") return show(b as HTMLElement);
    const decisions: Record<string, boolean> = {};
    list.querySelectorAll<HTMLInputElement>("input:not(:disabled)").forEach((i) => {
      decisions[i.getAttribute("data-consent-purpose")!] = i.checked;
    });
    close(); // first, so focus is back before the change hides the banner
    if (action == "accept-all") consent.acceptAll(source);
    if (action == "reject-all") consent.rejectAll(source);
    if (action == "save") consent.set(decisions, source);
  }

  function onKey(e: KeyboardEvent) {
    if (e.key == "Escape") {
      e.preventDefault();
      close();
    } else if (e.key == "Tab") {
      const f = focusables();
      const edge = f[e.shiftKey ? 0 : f.length - 1];
      if (doc.activeElement == edge) {
        e.preventDefault();
        f[e.shiftKey ? f.length - 1 : 0].focus();
      }
    }
  }

  // Focus that escapes the open dialog (a click, a script) is brought back.
  function onFocus(e: FocusEvent) {
    if (!dialog.hidden && !dialog.contains(e.target as Node)) focusables()[0].focus();
  }

  let link: HTMLLinkElement | null = null;
  let off: (() => void) | null = null;
  function start() {
    const href = options.stylesheet;
    if (href) {
      const url = new URL(href, doc.baseURI).href;
      const links = Array.from(doc.querySelectorAll<HTMLLinkElement>('link[rel~="stylesheet"]'));
      if (!links.some((l) => l.href == url)) {
        link = el("link", "", "", { rel: "stylesheet", href: url });
        // Stay hidden until the styles are there (or failed), so nothing unstyled flashes.
        root.hidden = true;
        link.onload = link.onerror = () => (root.hidden = false);
        doc.head.append(link);
      }
    }
    const container = options.container || doc.body;
    container.insertBefore(root, container.firstChild);
    doc.addEventListener("click", onClick, true); // capture: a page stopping propagation cannot break the reopen link
    doc.addEventListener("focusin", onFocus);
    dialog.addEventListener("keydown", onKey);
    off = consent.on("change", render);
    render();
  }
  const ready = () => {
    doc.removeEventListener("DOMContentLoaded", ready);
    start();
  };
  if (options.container || doc.body) start();
  else doc.addEventListener("DOMContentLoaded", ready);

  return {
    open: () => show(doc.activeElement as HTMLElement | null),
    close,
    destroy() {
      doc.removeEventListener("DOMContentLoaded", ready);
      doc.removeEventListener("click", onClick, true);
      doc.removeEventListener("focusin", onFocus);
      if (off) off();
      html.classList.remove("consentd-lock");
      root.remove();
      if (link) link.remove();
    },
  };
}
