// Cookie clearing by enforce(): which names, on which domains. (Scripts,
// iframes, images and the MutationObserver are tested in a real browser, in
// test/browser/.)

import assert from "node:assert/strict";
import { test } from "node:test";
import { cookieDomains, enforce } from "../../dist/enforce.js";
import { fakeBrowser } from "./fake.mjs";

test("cookieDomains: the host and every parent domain, never the top-level label", () => {
  assert.deepEqual(cookieDomains("a.b.shop.example"), ["a.b.shop.example", ".b.shop.example", ".shop.example"]);
  assert.deepEqual(cookieDomains("www.shop.co.uk"), ["www.shop.co.uk", ".shop.co.uk", ".co.uk"], "the browser ignores the public suffix .co.uk");
  assert.deepEqual(cookieDomains("shop.example"), ["shop.example"]);
});

test("cookieDomains: IP addresses and single-label hosts only have host-only cookies", () => {
  assert.deepEqual(cookieDomains("localhost"), []);
  assert.deepEqual(cookieDomains("127.0.0.1"), []);
  assert.deepEqual(cookieDomains("::1"), []);
  assert.deepEqual(cookieDomains(""), []);
});

/**
 * A document with cookies and no elements, and a consent whose answers the
 * test sets: allowed (has() and get()), and unconfirmed (allowed in get(),
 * a grant read from the cookie, but has() false until the service confirms).
 */
function page(allowed, unconfirmed = new Set()) {
  const browser = fakeBrowser({ host: "a.b.shop.example" });
  globalThis.MutationObserver = class {
    observe() {}
    disconnect() {}
  };
  const root = Object.create(document, {
    readyState: { value: "complete" },
    location: { value: { hostname: "a.b.shop.example" } },
    querySelectorAll: { value: () => [] },
    addEventListener: { value: () => {} },
    removeEventListener: { value: () => {} },
  });
  const listeners = new Set();
  const consent = {
    has: (p) => allowed.has(p),
    get: () => ({
      purposes: Object.fromEntries(["functional", "analytics", "ads"].map((p) => [p, { allowed: allowed.has(p) || unconfirmed.has(p), reason: "explicit" }])),
    }),
    on: (_e, fn) => {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    change: () => {
      for (const fn of listeners) fn({});
    },
    listeners,
  };
  const set = (line) => (root.cookie = line);
  set("_ga=GA1.1; Path=/; Domain=.shop.example");
  set("_ga_ABC123=GS1; Path=/; Domain=shop.example");
  set("_gid=GA1.2; Path=/; Domain=b.shop.example");
  set("_gat=1; Path=/"); // host-only
  set("session=s3cr3t; Path=/");
  set("ide=ad; Path=/");
  set("google_analytics_x=1; Path=/"); // matches no pattern: "_ga*" is anchored
  return { browser, root, consent, names: () => [...browser.jar.values()].map((c) => c.name).sort() };
}

const cookies = { analytics: ["_ga", "_ga_*", "_gid", "_gat"], ads: ["ide"] };

test("at start, cookies of a purpose that is not allowed are deleted, host-only and on every parent domain", () => {
  const { browser, root, consent, names } = page(new Set(["ads"]));
  enforce(consent, { cookies, root });
  assert.deepEqual(names(), ["google_analytics_x", "ide", "session"]);
  const deletions = browser.cookieWrites.filter((w) => w.startsWith("_ga=;"));
  assert.deepEqual(deletions, [
    "_ga=; Max-Age=0; Path=/",
    "_ga=; Max-Age=0; Path=/; Domain=a.b.shop.example",
    "_ga=; Max-Age=0; Path=/; Domain=.b.shop.example",
    "_ga=; Max-Age=0; Path=/; Domain=.shop.example",
  ]);
});

test("a change that denies a purpose deletes its cookies; stop() ends it", () => {
  const allowed = new Set(["analytics", "ads"]);
  const { root, consent, names } = page(allowed);
  const stop = enforce(consent, { cookies, root });
  assert.equal(names().length, 7, "everything allowed: nothing deleted");

  allowed.delete("ads");
  consent.change();
  assert.ok(!names().includes("ide"));
  assert.ok(names().includes("_ga"));

  stop();
  assert.equal(consent.listeners.size, 0);
  allowed.delete("analytics");
  consent.change();
  assert.ok(names().includes("_ga"), "stopped");
});

test("a grant awaiting the service's confirmation keeps its cookies: only a denial (or no answer) clears them", () => {
  // has("analytics") is false (not confirmed yet), but the cached answer is a grant.
  const { root, consent, names } = page(new Set(), new Set(["analytics"]));
  enforce(consent, { cookies: { ...cookies, functional: ["session"] }, root });
  assert.deepEqual(names(), ["_ga", "_ga_ABC123", "_gat", "_gid", "google_analytics_x"], "analytics' cookies stay, ads' and functional's go");
});
