// Makes the page obey the consent state: blocked scripts, iframes and images
// come alive when their purpose is allowed; iframes and images unload again
// when it no longer is, and a withdrawal from scripts that already ran
// reloads the page; cookies of a denied purpose are deleted.

import type { Consent } from "./types.js";

export interface EnforceOptions {
  /**
   * Cookie name patterns per purpose, deleted while the purpose is not
   * allowed, e.g. { analytics: ["_ga", "_ga_*", "_gid"] }. `*` matches any run
   * of characters.
   */
  cookies?: Record<string, string[]>;
  /** The document to enforce on. Default: the global document. */
  root?: Document;
  /**
   * A script that ran cannot be stopped: when a purpose whose gated script
   * ran on this page view is no longer allowed, reload the page (the choice
   * is already stored locally) so the script is gone. Default true; false:
   * the page handles it itself (consent.on("change")).
   */
  reload?: boolean;
}

/**
 * Starts enforcing consent on the page and returns a function that stops it.
 *
 * Markup:
 *   <script type="text/plain" data-consent="analytics" src="..."></script>
 *   <iframe data-consent="ads" data-consent-src="https://..."></iframe>
 * data-consent may list several purposes separated by spaces: all must be
 * allowed.
 */
export function enforce(consent: Consent, options: EnforceOptions = {}): () => void {
  const doc = options.root || document;
  const cookies = options.cookies || {};
  // Purposes of the gated scripts that ran on this page view.
  const ran = new Set<string>();
  // Iframes and images this loaded (and unloads when no longer allowed).
  const loaded = new WeakSet<Element>();

  const activateAll = () => activateIn(doc);

  function activateIn(node: ParentNode): void {
    const found = Array.from(node.querySelectorAll<HTMLElement>("[data-consent]"));
    if ((node as Element).hasAttribute?.("data-consent")) found.unshift(node as HTMLElement);
    for (const el of found) {
      const purposes = (el.getAttribute("data-consent") || "").split(/\s+/).filter(Boolean);
      const allowed = purposes.length && purposes.every((p) => consent.has(p));
      const src = el.getAttribute("data-consent-src");
      // Tag names, not instanceof: the root may be another frame's document.
      if (el.tagName == "SCRIPT") {
        if (allowed && (el as HTMLScriptElement).type == "text/plain") {
          activateScript(el as HTMLScriptElement);
          for (const p of purposes) ran.add(p);
        }
      } else if (src != null && allowed != loaded.has(el)) {
        // Without src an iframe's document goes away (the browser navigates
        // it to about:blank) and an image shows nothing; the element stays,
        // for pages holding a reference to it.
        if (allowed) {
          el.setAttribute("src", src);
          loaded.add(el);
        } else {
          el.removeAttribute("src");
          loaded.delete(el);
        }
      }
    }
  }

  function activateScript(blocked: HTMLScriptElement): void {
    // A script only runs when a new element is inserted: changing the type
    // of the existing one does nothing.
    const script = doc.createElement("script");
    for (const { name, value } of Array.from(blocked.attributes)) {
      if (name != "type" && name != "data-type" && name != "data-consent" && name != "nonce") script.setAttribute(name, value);
    }
    if (blocked.dataset.type) script.type = blocked.dataset.type;
    // Browsers hide a nonce attribute once parsed (it reads ""); the
    // property keeps the value, and a strict CSP needs it on the new script.
    if (blocked.nonce) script.nonce = blocked.nonce;
    // Inserted scripts are async by default; keep document order unless the
    // page asked for async.
    if (!blocked.hasAttribute("async")) script.async = false;
    script.text = blocked.text;
    blocked.replaceWith(script);
  }

  function clearCookies(): void {
    const names = doc.cookie.split("; ").map((c) => c.split("=")[0]).filter(Boolean);
    const domains = ["", ...cookieDomains(doc.location?.hostname || "")];
    for (const purpose in cookies) {
      // Denied (or never answered), not merely unconfirmed: has() is false
      // for a cookie's grant until the service confirms it, and deleting a
      // returning visitor's cookies on every page view would reset them.
      if (consent.get().purposes[purpose]?.allowed) continue;
      const patterns = cookies[purpose].map(globToRegExp);
      for (const name of names) {
        if (!patterns.some((re) => re.test(name))) continue;
        // A cookie is only deleted with the Domain it was set with, which
        // the page cannot read: try host-only and every parent domain.
        for (const domain of domains) {
          doc.cookie = `${name}=; Max-Age=0; Path=/${domain ? "; Domain=" + domain : ""}`;
        }
      }
    }
  }

  // While the parser is still adding the document, an inline script may be
  // seen before all its text has arrived: activate what the parser adds at
  // DOMContentLoaded, and what scripts add later (SPAs) as it is added.
  const observer = new MutationObserver((records) => {
    if (doc.readyState == "loading") return;
    for (const record of records) {
      record.addedNodes.forEach((node) => {
        if (node.nodeType == 1) activateIn(node as Element);
      });
    }
  });
  observer.observe(doc, { childList: true, subtree: true });
  doc.addEventListener("DOMContentLoaded", activateAll);

  const unsubscribe = consent.on("change", () => {
    clearCookies();
    if (options.reload != false && [...ran].some((p) => !consent.has(p))) doc.location.reload();
    else activateAll();
  });
  clearCookies();
  activateAll();

  return () => {
    observer.disconnect();
    doc.removeEventListener("DOMContentLoaded", activateAll);
    unsubscribe();
  };
}

/**
 * The Domain values a cookie of this host may have been set with:
 * "a.b.shop.example" -> ["a.b.shop.example", ".b.shop.example",
 * ".shop.example"]. The top-level label is left out (never a valid cookie
 * domain); browsers ignore the public suffixes among the rest. IP addresses
 * and single-label hosts only have host-only cookies: [].
 */
export function cookieDomains(host: string): string[] {
  if (!host.includes(".") || /^[\d.]+$|:/.test(host)) return [];
  const labels = host.split(".");
  const domains = [host];
  for (let i = 1; i < labels.length - 1; i++) domains.push("." + labels.slice(i).join("."));
  return domains;
}

function globToRegExp(glob: string): RegExp {
  return new RegExp("^" + glob.split("*").map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*") + "$");
}
