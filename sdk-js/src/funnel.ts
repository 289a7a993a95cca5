// The banner's funnel, reported to consentd (RecordBannerEvent, POST
// /v1/banner-events): the banner was shown, and which of its buttons was
// used. Part of the UI (ui.ts), not of the core.
//
// Anonymous: the body is the step and the region, nothing else. No subject
// id, no token (no Authorization), no cookie (credentials "omit", even when
// consentd is on the page's own origin), no Referer (the page's address is
// not needed to count a step). No Content-Type, as the core's requests: the
// body goes out as text/plain, which consentd reads as JSON, so the request
// stays a CORS simple request (no preflight round trip per step; a keepalive
// request that outlives the page needs none).
//
// Fire and forget: nothing waits for the answer, and a failure (501 from a
// consentd without it, 429, the network) is dropped without a word. Counts
// are statistics: losing one must never cost the page anything.

/**
 * A step of the banner: "shown", or the data-consent-action of the banner's
 * button. Its name in the contract follows: BANNER_STEP_SHOWN,
 * BANNER_STEP_ACCEPT_ALL, BANNER_STEP_REJECT_ALL, BANNER_STEP_CUSTOMISED,
 * BANNER_STEP_CLOSED.
 */
export type Step = "shown" | "accept-all" | "reject-all" | "customise" | "close";

/**
 * Returns report(step), which sends each step at most once (per call of
 * funnel, that is per page view of a mounted UI) and never throws. Without
 * an endpoint, report does nothing.
 */
export function funnel(endpoint: string | false | undefined, region: string | undefined): (step: Step) => void {
  const sent = new Set<Step>();
  return async (step) => {
    if (!endpoint || sent.has(step)) return;
    sent.add(step);
    try {
      await fetch(endpoint.replace(/\/+$/, "") + "/v1/banner-events", {
        method: "POST",
        body: JSON.stringify({ step: ("BANNER_STEP_" + step.replace("-", "_").replace(/e$/, "ed")).toUpperCase(), region: region || "" }),
        credentials: "omit",
        referrerPolicy: "no-referrer",
        // Sent even when the page is being left (a click on accept all that
        // navigates, a close of the tab right after the banner showed).
        keepalive: true,
      });
    } catch {
      // dropped: see above
    }
  };
}
