// Banner, preference center and GPC notice, built from the service's policy.
// Optional: takes the core instance and imports only its types. Works under
// a strict Content-Security-Policy: DOM built with createElement and
// textContent (policy texts are not trusted HTML), no style attributes,
// shown and hidden with the `hidden` attribute (the preference center is a
// native <dialog>, opened with showModal()); the look is ui.css. The
// banner's funnel (shown, and the button used) is reported anonymously to
// consentd unless the site turns it off (funnel.ts).

import { funnel, type Step } from "./funnel";
import type { Consent } from "./types";

export interface UIOptions {
  /** Language of the texts; default the page's <html lang>, then the browser's. English when unknown. */
  lang?: string;
  /** URL of consentd.css: added as a <link rel="stylesheet"> unless the page already has it. */
  stylesheet?: string;
  /** Where the UI is inserted (as the first child, so it comes early in the tab order). Default document.body. */
  container?: HTMLElement;
  /**
   * The floating "Privacy choices" button: bottom left (true, "left"), bottom
   * right ("right") or none (false). Never shown while the page has its own
   * [data-consent-open] element; when shown, an empty block at the end of the
   * body keeps the page's last content from scrolling under it. Default true.
   */
  button?: boolean | "left" | "right";
  /**
   * consentd's base URL, as given to createConsent: where the banner's
   * funnel is reported. Without it nothing is reported. (The script tag
   * passes its data-endpoint.)
   */
  endpoint?: string;
  /**
   * The visitor's region code ("DE", "US-CA"), as given to createConsent,
   * reported with the funnel. None: consentd counts it under the policy's
   * default region.
   */
  region?: string;
  /**
   * Report the banner's funnel to consentd (POST /v1/banner-events): that the
   * banner was shown, and which of its buttons the visitor used (accept all,
   * reject all, customise, close), each at most once per page view (per
   * mountUI). Anonymous: only the step and the region are sent, with no
   * subject id, cookie or token. Fire and forget: a failure is ignored.
   * false turns it off. Default true (with an endpoint).
   */
  funnel?: boolean;
}

export interface UI {
  /** Opens the preference center (once the policy is known). */
  open(): void;
  /** Closes the preference center and the GPC notice. */
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
  linked: "Your choices are saved with your account.",
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
    linked: "Ihre Auswahl wird mit Ihrem Konto gespeichert.",
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
    linked: "Vos choix sont enregistrés avec votre compte.",
  },
};

// localStorage key: the GPC notice was shown in this browser.
const GPC_SHOWN = "consentd.gpc";
let mounted = 0;

/**
 * Shows the banner when the visitor must be asked (state.needsPrompt non-empty)
 * — now and after every change — and wires every element with
 * [data-consent-open] (and a floating "Privacy choices" button it adds) to
 * open the preference center. Where GPC was honoured without a banner to say
 * so, a notice says it, once per browser. The banner's close button sets it
 * aside for the page view without a choice. With options.endpoint, the
 * banner's funnel is reported to consentd (options.funnel).
 */
export function mountUI(consent: Consent, options: UIOptions = {}): UI {
  const doc = document;
  const html = doc.documentElement;
  const tag = (options.lang || html.lang || navigator.language || "en").toLowerCase();
  const primary = tag.split("-")[0];
  const lang = TEXTS[primary] ? primary : "en";
  const t = TEXTS[lang];
  const uid = "consentd" + ++mounted;
  const report = funnel(options.funnel !== false && options.endpoint, options.region);

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
  const closeButton = () => el("button", "consentd-x", "×", { type: "button", "aria-label": t.close, "data-consent-action": "close" });
  // Policy texts in the page's language, then English, then any.
  const localised = (node: HTMLElement, map: Record<string, string> | undefined, fallback: string) => {
    const texts = map || {};
    const key = [tag, primary, "en"].find((k) => texts[k]) || Object.keys(texts)[0];
    node.textContent = (key && texts[key]) || fallback;
    if (key && key.split("-")[0] != lang) node.lang = key;
    return node;
  };

  const root = el("div", "consentd");
  root.lang = lang;
  // Hidden until it is in the document with its styles.
  root.hidden = true;

  const banner = el("div", "consentd-banner", "", { role: "region", "aria-label": t.title, "data-consent-banner": "" });
  const bannerPurposes = el("p", "consentd-purposes");
  const gpcNotice = el("p", "consentd-gpc", t.gpc, { "data-consent-gpc-notice": "" });
  const bannerHead = el("div", "consentd-head");
  // The close button sets the banner aside for this page view without a
  // choice: nothing is recorded, undecided purposes stay as the region's
  // default has them (denied where consent is opt-in), and the next page asks
  // again. The "Privacy choices" button takes its place.
  bannerHead.append(el("h2", "consentd-title", t.title), closeButton());
  banner.append(
    bannerHead,
    el("p", "consentd-text", t.text),
    bannerPurposes,
    gpcNotice,
    actions([
      ["accept-all", t.accept],
      ["reject-all", t.reject],
      ["customise", t.customise, " consentd-btn-alt"],
    ]),
  );

  // A native modal: the page behind is inert (out of the accessibility tree
  // and the tab order), Esc closes it wherever the focus is, the focus goes
  // back where it was, ::backdrop dims the page; closedby="any" adds a click
  // on the backdrop where supported.
  const dialog = el("dialog", "consentd-dialog", "", {
    "aria-labelledby": uid + "-title",
    closedby: "any",
    "data-consent-preferences": "",
  });
  const dialogGpc = el("p", "consentd-gpc", t.gpc, { "data-consent-gpc-notice": "" });
  const linked = el("p", "consentd-text", t.linked);
  const list = el("ul", "consentd-list");
  const head = el("div", "consentd-head");
  head.append(el("h2", "consentd-title", t.prefs, { id: uid + "-title" }), closeButton());
  dialog.append(
    head,
    el("p", "consentd-text", t.intro),
    linked,
    dialogGpc,
    list,
    actions([
      ["accept-all", t.accept],
      ["reject-all", t.reject],
      ["save", t.save, " consentd-btn-alt"],
    ]),
  );

  const fab = el("button", "consentd-fab" + (options.button == "right" ? " consentd-right" : ""), t.open, { type: "button", "data-consent-open": "" });
  // Room for the floating button after the page's last content.
  const end = el("div", "consentd-end");
  // The GPC notice: a live region, empty (and not shown) until it speaks.
  const note = el("div", "consentd-note consentd-head", "", { role: "status" });
  banner.hidden = fab.hidden = end.hidden = true;
  root.append(banner, fab, note, dialog);

  let wantOpen = false;
  let noted = false;
  // The visitor closed the banner (its close button) on this page view.
  let dismissed = false;
  // The switches the person clicked since the preference center opened.
  let touched = new WeakSet<EventTarget>();
  const shown = (e: Element) => e.getClientRects().length > 0;

  function render() {
    const state = consent.get();
    const policy = consent.policy();
    const ask = state.needsPrompt.length > 0;
    // The banner is up: the visitor must be asked and did not close it.
    const up = ask && !dismissed;
    fab.hidden = end.hidden = up || options.button === false;
    // At the end, after what the parser or the page added since.
    doc.body.append(end);
    gpcNotice.hidden = dialogGpc.hidden = !state.gpcHonoured;
    linked.hidden = !state.linked;
    if (!policy) return; // the core emits a change after sync has fetched it
    const asked = policy.purposes.filter((p) => !p.necessary && state.needsPrompt.includes(p.id));
    bannerPurposes.hidden = !asked.length;
    bannerPurposes.replaceChildren(t.purposes);
    asked.forEach((p, i) => {
      bannerPurposes.append(i ? ", " : "", localised(el("span", ""), p.titles, p.id));
    });
    // The banner goes away under the keyboard user's focus: hand it to the reopen button.
    const refocus = !up && banner.contains(doc.activeElement);
    banner.hidden = !up;
    if (refocus && shown(fab)) fab.focus();
    seen();
    // GPC honoured where no banner says so (opt-out regions): say it once
    // per browser (once per page where storage is blocked).
    if (state.gpcHonoured && !ask && !noted) {
      noted = true;
      let seen: string | null | undefined;
      try {
        seen = localStorage.getItem(GPC_SHOWN);
        localStorage.setItem(GPC_SHOWN, "1");
      } catch {
        // blocked: this page's flag is all there is
      }
      if (!seen) note.append(el("span", "consentd-gpc", t.gpc), closeButton());
    }
    if (wantOpen) show();
  }

  // The funnel's "shown": the banner is up in the document with its styles
  // and the policy's texts, on a page the visitor looks at (a page
  // prerendered, or opened in a background tab, counts once it is looked
  // at). Once per page view: a render after a change, or the banner coming
  // back on the same page (a withdrawal made elsewhere), is the same showing.
  function seen() {
    if (banner.hidden || root.hidden) return;
    if (doc.visibilityState == "visible") report("shown");
    else doc.addEventListener("visibilitychange", seen, { once: true });
  }

  function show() {
    const policy = consent.policy();
    // Opened by the next change that brings the policy, or once the styles are there.
    wantOpen = !policy || root.hidden;
    if (!policy || wantOpen || dialog.open) return;
    const state = consent.get();
    const asked = consent.asked();
    touched = new WeakSet();
    list.replaceChildren();
    // What this site asks about (the necessary purposes for information).
    for (const p of policy.purposes.filter((p) => p.necessary || asked.includes(p.id))) {
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
      // The cached answer, not has(): a grant read from the cookie is still
      // the answer before the service confirms it, and a grant awaiting a
      // guardian is the person's own.
      const s = state.purposes[p.id];
      input.checked = p.necessary || (!!s && (s.allowed || s.reason == "awaiting_guardian"));
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
    dialog.showModal();
  }

  function close() {
    wantOpen = false;
    note.replaceChildren();
    // The browser gives the focus back to where it was when it opened.
    dialog.close();
  }

  function onClick(e: MouseEvent) {
    const target = e.target as Element;
    // While the modal is open, every click is in it (a label's click reaches its switch too).
    if (dialog.open) touched.add(target);
    const b = target.closest?.("[data-consent-action],[data-consent-open]");
    if (!b) return;
    const action = b.getAttribute("data-consent-action");
    if (action == null) {
      // [data-consent-open] anywhere on the page, now or added later.
      e.preventDefault();
      return show();
    }
    if (!root.contains(b)) return;
    if (banner.contains(b)) {
      // The funnel's steps are the banner's own buttons (not the preference center's).
      report(action as Step);
      if (action == "close") {
        dismissed = true;
        return render();
      }
    }
    if (action == "customise") return show();
    const source = dialog.contains(b) ? "preference_center" : "banner";
    // Only what the person did is theirs: a switch they turned on is a
    // grant, a switch that is off a denial; one that is on by default (a
    // region's default, a cached answer) records nothing.
    const decisions: Record<string, boolean> = {};
    let any = false;
    list.querySelectorAll<HTMLInputElement>("input:not(:disabled)").forEach((i) => {
      if (!i.checked || touched.has(i)) {
        // biome-ignore lint/style/noNonNullAssertion: every switch in the list is made with its purpose
        decisions[i.getAttribute("data-consent-purpose")!] = i.checked;
        any = true;
      }
    });
    close(); // first, so focus is back before the change hides the banner
    if (action == "accept-all") consent.acceptAll(source);
    if (action == "reject-all") consent.rejectAll(source);
    if (action == "save" && any) consent.set(decisions, source);
  }

  let link: HTMLLinkElement | null = null;
  let off: (() => void) | null = null;
  // The stylesheet is asked for at once, not once the body is there: its
  // download then overlaps the page's parsing instead of delaying the banner.
  const href = options.stylesheet;
  if (href) {
    const url = new URL(href, doc.baseURI).href;
    const links = Array.from(doc.querySelectorAll<HTMLLinkElement>('link[rel~="stylesheet"]'));
    if (!links.some((l) => l.href == url)) {
      link = el("link", "", "", { rel: "stylesheet", href: url });
      // Stay hidden until the styles are there (or failed), so nothing unstyled flashes.
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
    doc.addEventListener("click", onClick, true); // capture: a page stopping propagation cannot break the reopen link
    off = consent.on("change", render);
    render();
  }
  // Started while the parser was still adding the body: render again at its end.
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
