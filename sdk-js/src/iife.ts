// The plain <script> bundle (dist/consentd.iife.js). Configured by its own
// tag's data attributes:
//
//   <script src="https://cdn.example/consentd.iife.js"
//           data-endpoint="https://consent.shop.example" data-region="DE"
//           data-lang="de" data-gcm="true"
//           data-cookies='{"analytics": ["_ga", "_ga_*", "_gid"]}'
//           data-ask="functional analytics ads" data-button="right"
//           data-reload="false" data-funnel="off"></script>
//
// Load it early in <head>, without async or defer, before any Google tag: it
// sets Consent Mode's defaults and starts blocking from the cookie cache
// before any network call.

import { createConsent } from "./core.js";
import { enforce } from "./enforce.js";
import { consentMode, consentModeDefault } from "./gcm.js";
import { mountUI } from "./ui.js";

// Only set while this script runs for the first time: read it at once.
const script = document.currentScript as HTMLScriptElement | null;
const data = script ? script.dataset : ({} as DOMStringMap);
const src = script?.src;

let cookies: Record<string, string[]> = {};
try {
  if (data.cookies) cookies = JSON.parse(data.cookies);
} catch {
  // A typo in one attribute must not stop consent enforcement.
  console.error("consentd: data-cookies is not JSON: " + data.cookies);
}

if (data.gcm == "true") consentModeDefault();
// By default the service that serves the script.
const endpoint = data.endpoint || (src ? new URL(src).origin : location.origin);
const consent = createConsent({
  endpoint,
  region: data.region,
  cookieDomain: data.cookieDomain,
  // data-ask="analytics ads marketing.email": what the banner and preference center ask about.
  askFor: data.ask ? data.ask.split(" ").filter(Boolean) : undefined,
});
// data-reload="false": the page itself handles a withdrawal from scripts that ran.
enforce(consent, { cookies, reload: data.reload != "false" });
if (data.gcm == "true") consentMode(consent);
const ui = mountUI(consent, {
  lang: data.lang,
  // data-button="false": no floating button; "right": bottom right.
  button: data.button == "false" ? false : (data.button as "right") || true,
  stylesheet: data.stylesheet || (src ? new URL("consentd.css", src).href : undefined),
  // The banner's funnel goes where the consent does; data-funnel="off" (or "false"): not reported.
  endpoint,
  region: data.region,
  funnel: data.funnel != "off" && data.funnel != "false",
});
consent.sync().catch((err) => console.warn(err));

(window as unknown as { consentd: unknown }).consentd = { consent, ui };
