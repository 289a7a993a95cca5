// The TCF layer of the preference center as its own ES entry
// (`@consentd/sdk/iab/ui`, stylesheet `@consentd/sdk/iab/ui.css`): for
// pages that build their own bundle; the IAB script tag includes it.
export type { TCFUI, TCFUIOptions } from "./iab/ui.js";
export { mountTCF } from "./iab/ui.js";
