// A user's code against the packed @consentd/sdk: every public value and type,
// used so that tsc fails when one is missing or is `any`. test/types/run.mjs
// compiles it under each module resolution a user may have (bundler,
// nodenext, node10). Never run, only type-checked.

import {
  createConsent,
  type ChangeEvent,
  type Consent,
  type ConsentOptions,
  type ConsentState,
  type Policy,
  type Purpose,
  type PurposeState,
  type Reason,
  type Source,
} from "@consentd/sdk/core";
import { enforce, type EnforceOptions } from "@consentd/sdk/enforce";
import { consentMode, consentModeDefault, consentSignals, defaultMapping, type Signal } from "@consentd/sdk/gcm";
import { mountUI, type UI, type UIOptions } from "@consentd/sdk/ui";
import { mountTCF, type TCFUI, type TCFUIOptions } from "@consentd/sdk/iab/ui";
import { attachIAB, type AdSignals, type IABOptions, type IABPolicy, type TCFController, gppString, scopeOf, tcString } from "@consentd/sdk/iab";

// true when T is `any` (nothing else is both 0 and 1 & T).
type IsAny<T> = 0 extends 1 & T ? true : false;
// true when A and B are the same type (any equals only any).
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
// biome-ignore lint/correctness/noUnusedVariables: T is the assertion: check<X>() compiles only when X is true
function check<T extends true>(): void {}

// Nothing public is `any`.
check<Equal<IsAny<typeof createConsent>, false>>();
check<Equal<IsAny<typeof enforce>, false>>();
check<Equal<IsAny<typeof consentMode>, false>>();
check<Equal<IsAny<typeof consentModeDefault>, false>>();
check<Equal<IsAny<typeof consentSignals>, false>>();
check<Equal<IsAny<typeof defaultMapping>, false>>();
check<Equal<IsAny<typeof mountUI>, false>>();
check<Equal<IsAny<ConsentOptions>, false>>();
check<Equal<IsAny<Consent>, false>>();
check<Equal<IsAny<ConsentState>, false>>();
check<Equal<IsAny<ChangeEvent>, false>>();
check<Equal<IsAny<Policy>, false>>();
check<Equal<IsAny<Purpose>, false>>();
check<Equal<IsAny<PurposeState>, false>>();
check<Equal<IsAny<Reason>, false>>();
check<Equal<IsAny<Source>, false>>();
check<Equal<IsAny<EnforceOptions>, false>>();
check<Equal<IsAny<Signal>, false>>();
check<Equal<IsAny<UI>, false>>();
check<Equal<IsAny<UIOptions>, false>>();

// core
const options: ConsentOptions = { endpoint: "https://consent.shop.example", region: "DE", askFor: ["analytics"] };
// @ts-expect-error endpoint is required
const noEndpoint: ConsentOptions = { region: "DE" };
const consent: Consent = createConsent(options);
check<Equal<ReturnType<typeof createConsent>, Consent>>();

const state: ConsentState = consent.get();
check<Equal<ConsentState["subjectId"], string | null>>();
check<Equal<ConsentState["revision"], number>>();
check<Equal<ConsentState["purposes"], Record<string, PurposeState>>>();
check<Equal<ConsentState["needsPrompt"], string[]>>();
const revision: number = state.revision;
const confirmed: boolean = state.confirmed;
const linked: boolean = state.linked;
const gpc: boolean = state.gpc && state.gpcHonoured && state.pending;
// @ts-expect-error a revision is a number
const revisionText: string = state.revision;

const purposeState: PurposeState = state.purposes.analytics;
const allowed: boolean = purposeState.allowed;
const reason: Reason = purposeState.reason;
check<Equal<Reason, "explicit" | "default" | "gpc" | "expired" | "policy_changed" | "necessary" | "restricted" | "awaiting_guardian">>();
// @ts-expect-error not a reason
const notAReason: Reason = "maybe";

const source: Source = "preference_center";
check<Equal<Source, "banner" | "preference_center" | "api">>();

const has: boolean = consent.has("analytics");
const choice: boolean | undefined = consent.choice("marketing.email");
const asked: string[] = consent.asked();
const policy: Policy | null = consent.policy();
if (policy) {
  const version: string = policy.version;
  const first: Purpose = policy.purposes[0];
  const id: string = first.id;
  const purposeVersion: number = first.version;
  const titles: Record<string, string> = first.titles;
  void [version, id, purposeVersion, titles];
}
const unsubscribe: () => void = consent.on("change", (e: ChangeEvent) => {
  const now: ConsentState = e.state;
  const before: ConsentState = e.previous;
  void [now, before];
});
// @ts-expect-error the only event is "change"
consent.on("changed", () => {});
const results: Promise<ConsentState>[] = [
  consent.sync(),
  consent.set({ "marketing.email": true }, source),
  consent.acceptAll("banner"),
  consent.rejectAll(),
  consent.withdraw("api"),
];
// @ts-expect-error decisions are booleans
consent.set({ analytics: "yes" });

// enforce
const enforceOptions: EnforceOptions = { cookies: { analytics: ["_ga", "_ga_*"] } };
// @ts-expect-error cookie patterns are lists
const badEnforce: EnforceOptions = { cookies: { analytics: "_ga" } };
const stopEnforcing: () => void = enforce(consent, enforceOptions);

// gcm
consentModeDefault({ waitForUpdate: 500, region: ["DE"] });
const signal: Signal = "analytics_storage";
// @ts-expect-error not a Consent Mode signal
const notASignal: Signal = "cookie_storage";
const mapping: Record<Signal, string[]> = defaultMapping;
const stopGcm: () => void = consentMode(consent, { mapping: { ad_storage: ["ads", "analytics"] } });
const signals: Record<string, "granted" | "denied"> = consentSignals(consent, mapping);
// @ts-expect-error a signal is granted or denied
const signalValue: boolean = signals[signal];

// ui
const uiOptions: UIOptions = { lang: "de", button: false, stylesheet: "/consentd.css" };
// @ts-expect-error button is a boolean
const badUI: UIOptions = { button: "no" };
const ui: UI = mountUI(consent, uiOptions);
ui.open();
ui.close();
ui.destroy();
// @ts-expect-error UI has no such method
ui.show();

void [noEndpoint, revision, confirmed, linked, gpc, revisionText, allowed, reason, notAReason, has, choice, asked];
void [unsubscribe, results, badEnforce, stopEnforcing, notASignal, stopGcm, signalValue, badUI];

// iab
check<Equal<IsAny<typeof attachIAB>, false>>();
check<Equal<IsAny<TCFController>, false>>();
check<Equal<IsAny<IABPolicy>, false>>();
const iabOptions: IABOptions = { endpoint: "https://consent.shop.example", region: "DE", lang: "de" };
const controller: TCFController = attachIAB(consent, iabOptions);
const adSignals: AdSignals = controller.signals();
const tcText: string = adSignals.tcString;
const gppText: string = adSignals.gppString;
const stopSignals: () => void = controller.on("signals", (s: AdSignals) => void s.revision);
const vendorChoices: Record<number, boolean> = controller.vendorConsents();
const setting: Promise<void> = controller.setVendors({ 10: false }, { 755: true });
// @ts-expect-error the only event is "signals"
controller.on("change", () => {});
const builders: [typeof gppString, typeof scopeOf, typeof tcString] = [gppString, scopeOf, tcString];
void [tcText, gppText, stopSignals, vendorChoices, setting, builders];

// iab/ui: the TCF layer over the same controller
const tcfOptions: TCFUIOptions = { lang: "de", button: "right", endpoint: "https://consent.shop.example", region: "DE" };
const tcfUI: TCFUI = mountTCF(consent, controller, tcfOptions);
tcfUI.open("vendors");
// @ts-expect-error the views are "purposes" and "vendors"
tcfUI.open("stacks");
