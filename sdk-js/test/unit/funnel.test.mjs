// The banner funnel's reporter (src/funnel.ts, bundled into ui.js and the
// script tag's bundle; not exported on its own, so bundled here on the fly):
// what one report sends, once per step, and that no failure escapes.
// The real banner's reports are checked in test/browser/funnel.test.mjs.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { build } from "esbuild";

let funnel;
const realFetch = globalThis.fetch;
let calls;

before(async () => {
  const out = await build({
    entryPoints: [new URL("../../src/funnel.ts", import.meta.url).pathname],
    bundle: true, format: "esm", write: false, logLevel: "silent",
  });
  ({ funnel } = await import("data:text/javascript;base64," + Buffer.from(out.outputFiles[0].text).toString("base64")));
});

after(() => {
  globalThis.fetch = realFetch;
});

/** Replaces fetch with one that records its calls and answers with answer(). */
function fakeFetch(answer = () => Promise.resolve(new Response(null, { status: 200 }))) {
  calls = [];
  globalThis.fetch = (url, init) => {
    calls.push({ url, init });
    return answer();
  };
}

/** Lets report's promise chains settle. */
const settle = () => new Promise((r) => setTimeout(r));

test("a report is one anonymous POST of the step and the region to /v1/banner-events", async () => {
  fakeFetch();
  const report = funnel("https://consent.example/", "DE");
  report("shown");
  await settle();
  assert.equal(calls.length, 1);
  const { url, init } = calls[0];
  assert.equal(url, "https://consent.example/v1/banner-events");
  assert.equal(init.method, "POST");
  assert.deepEqual(JSON.parse(init.body), { step: "BANNER_STEP_SHOWN", region: "DE" });
  assert.equal(init.credentials, "omit", "no cookie, even to consentd on the page's own origin");
  assert.equal(init.referrerPolicy, "no-referrer", "the page's address is not sent");
  assert.equal(init.keepalive, true, "sent even when the page is being left");
  assert.equal(init.headers, undefined, "no Authorization, no Content-Type (a CORS simple request)");
  assert.deepEqual(Object.keys(init).sort(), ["body", "credentials", "keepalive", "method", "referrerPolicy"]);
});

test("each step is reported at most once per reporter (page view); other steps still go", async () => {
  fakeFetch();
  const report = funnel("https://consent.example", "US-CA");
  for (const step of ["shown", "shown", "customise", "shown", "customise", "accept-all", "accept-all"]) report(step);
  await settle();
  assert.deepEqual(calls.map((c) => JSON.parse(c.init.body).step), ["BANNER_STEP_SHOWN", "BANNER_STEP_CUSTOMISED", "BANNER_STEP_ACCEPT_ALL"]);
  // A new reporter is a new page view (a new mountUI): it reports again.
  funnel("https://consent.example", "US-CA")("shown");
  await settle();
  assert.equal(calls.length, 4);
});

test("the steps are named as in the contract: shown and the banner's buttons' actions", async () => {
  fakeFetch();
  const report = funnel("https://consent.example", "DE");
  for (const step of ["shown", "accept-all", "reject-all", "customise", "close"]) report(step);
  await settle();
  assert.deepEqual(calls.map((c) => JSON.parse(c.init.body).step), [
    "BANNER_STEP_SHOWN", "BANNER_STEP_ACCEPT_ALL", "BANNER_STEP_REJECT_ALL", "BANNER_STEP_CUSTOMISED", "BANNER_STEP_CLOSED",
  ]);
});

test("without a region the body says so with an empty one (consentd counts it under the policy's default)", async () => {
  fakeFetch();
  funnel("https://consent.example", undefined)("close");
  await settle();
  assert.deepEqual(JSON.parse(calls[0].init.body), { step: "BANNER_STEP_CLOSED", region: "" });
});

test("off (no endpoint, or false): nothing is sent", async () => {
  fakeFetch();
  funnel(undefined, "DE")("shown");
  funnel(false, "DE")("shown");
  funnel("", "DE")("shown");
  await settle();
  assert.equal(calls.length, 0);
});

test("failures are silent: an error status, a rejected fetch, a fetch that throws; none is retried", async () => {
  const unhandled = [];
  const onUnhandled = (e) => unhandled.push(e);
  process.on("unhandledRejection", onUnhandled);
  try {
    for (const answer of [
      () => Promise.resolve(new Response('{"code":12}', { status: 501 })),
      () => Promise.resolve(new Response("{}", { status: 429, headers: { "Retry-After": "1" } })),
      () => Promise.reject(new TypeError("Failed to fetch")),
      () => {
        throw new TypeError("fetch is broken");
      },
    ]) {
      fakeFetch(answer);
      const report = funnel("https://consent.example", "DE");
      assert.doesNotThrow(() => report("shown"));
      assert.doesNotThrow(() => report("shown"));
      await settle();
      assert.equal(calls.length, 1, "sent once, not retried");
    }
    await settle();
    assert.deepEqual(unhandled, []);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});
