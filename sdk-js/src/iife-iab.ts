// The <script> bundle with the IAB signals (dist/consentd-iab.iife.js):
// everything dist/consentd.iife.js does (src/iife.ts), plus `__tcfapi` and
// `__gpp` answered from the same choices (src/iab.ts). Same data attributes:
//
//   <script src="https://cdn.example/consentd-iab-stub.js"></script>
//   <script src="https://cdn.example/consentd-iab.iife.js"
//           data-endpoint="https://consent.shop.example" data-region="DE"
//           data-lang="de" data-gcm="true" ...></script>
//
// The stub first (inline or synchronous), before any ad tag. Kept apart
// from src/iife.ts so the default bundle stays as it is.

import { createConsent } from "./core.js";
import { enforce } from "./enforce.js";
import { consentMode, consentModeDefault } from "./gcm.js";
import { attachIAB } from "./iab.js";
import { scopeOf } from "./iab/rules.js";
import type { IABPolicy } from "./iab/types.js";
import { mountTCF } from "./iab/ui.js";
import type { Policy } from "./types.js";
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
  askFor: data.ask ? data.ask.split(" ").filter(Boolean) : undefined,
});
enforce(consent, { cookies, reload: data.reload != "false" });
if (data.gcm == "true") consentMode(consent);
const iab = attachIAB(consent, { endpoint, region: data.region, lang: data.lang });
const stylesheet = data.stylesheet || (src ? new URL("consentd-iab.css", src).href : undefined);
const button = data.button == "false" ? false : (data.button as "right") || true;
let ui: unknown = null;
// The UI needs the policy to know the region's kind: in the policy's TCF
// regions the preference center's TCF layer (src/iab/ui.ts), elsewhere the
// default banner and preference center. Mounted once the policy is known
// (at once when it is cached).
function mount(): boolean {
  const policy = consent.policy() as (Policy & { iab?: IABPolicy }) | null;
  if (!policy) return false;
  const options = {
    lang: data.lang,
    button,
    stylesheet,
    // The banner's funnel goes where the consent does; data-funnel="off" (or "false"): not reported.
    endpoint,
    region: data.region,
    funnel: data.funnel != "off" && data.funnel != "false",
  };
  ui = policy.iab?.tcf && scopeOf(policy, policy.iab, data.region).tcf ? mountTCF(consent, iab, options) : mountUI(consent, options);
  return true;
}
if (!mount()) {
  const off = consent.on("change", () => {
    if (mount()) off();
  });
}
consent.sync().catch((err) => console.warn(err));

(window as unknown as { consentd: unknown }).consentd = {
  consent,
  iab,
  get ui() {
    return ui;
  },
};
