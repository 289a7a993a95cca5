// The UI alone in a real headless Chromium, against a fake core (the
// Consent interface of src/types.ts), on a page with a strict CSP: banner,
// preference center, keyboard path, languages, GPC notice, floating button,
// axe-core. No consentd: a small server serves the page, src/ui.ts bundled
// on the fly, and axe. Screenshots go to test-results/ (or $ARTIFACTS).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFileSync, mkdirSync } from "node:fs";
import { build } from "esbuild";
import { chromium } from "playwright-core";
import { axePath, chromiumFlags, chromiumPath, resultsDir, sdkDir } from "./harness.mjs";

const root = sdkDir + "/";
const artifacts = process.env.ARTIFACTS || resultsDir;

const POLICY = {
  version: "1",
  default_region: "eea",
  regions: [],
  purposes: [
    ["necessary", true, "Necessary", "Notwendig", "Keeps the site working.", "Hält die Website am Laufen."],
    ["analytics", false, "Analytics", "Statistik", "Counts visits <b>anonymously</b>.", "Zählt Besuche."],
    ["ads", false, "Advertising", "Werbung", "Personalised ads.", "Personalisierte Werbung."],
    ["marketing.sms", false, "Text messages", "SMS", "Offers by SMS.", "Angebote per SMS."],
  ].map(([id, necessary, en, de, den, dde]) => ({
    id, necessary, version: 1, gpc: id == "ads", always_opt_in: false, legal_basis: "consent", lifetime_seconds: "0",
    titles: { en, de }, descriptions: { en: den, de: dde },
  })),
};

// Runs in the page (served as a file: the CSP forbids inline script).
// Query: granted= / denied= (explicit answers), defaults= (allowed by the
// region's default), guardian= (a grant awaiting a guardian), prompt=0 (no
// banner), gpc, linked, nopolicy, lang=, button= (false, left, right), link
// (the page has its own [data-consent-open] link), long (a page longer than
// the window).
const PAGE_JS = `
const q = new URLSearchParams(location.search);
const policy = ${JSON.stringify(POLICY)};
let pol = q.has("nopolicy") ? null : policy;
const list = (k) => (q.get(k) ? q.get(k).split(",") : []);
const answers = {};
for (const id of list("defaults")) answers[id] = { allowed: true, reason: "default" };
for (const id of list("guardian")) answers[id] = { allowed: false, reason: "awaiting_guardian" };
for (const id of list("denied")) answers[id] = { allowed: false, reason: "explicit" };
for (const id of list("granted")) answers[id] = { allowed: true, reason: "explicit" };
// Cookie purposes: what the core's asked() answers by default.
const ids = policy.purposes.filter((p) => !p.necessary && !p.id.includes(".")).map((p) => p.id);
let ask = q.get("prompt") == "0" ? [] : ids;
const listeners = [];
window.calls = [];
window.violations = [];
document.addEventListener("securitypolicyviolation", (e) => violations.push(e.violatedDirective + " " + e.blockedURI));
const state = () => ({
  subjectId: "v1", revision: 1, gpc: q.has("gpc"), gpcHonoured: q.has("gpc"), pending: false,
  confirmed: true, linked: q.has("linked"), needsPrompt: ask, purposes: { ...answers },
});
const emit = (previous) => { for (const l of listeners) l({ state: state(), previous }); return Promise.resolve(state()); };
const write = (name, decisions, source) => {
  calls.push([name, decisions, source]);
  const previous = state();
  for (const [id, on] of Object.entries(decisions)) answers[id] = { allowed: on, reason: "explicit" };
  ask = [];
  return emit(previous);
};
const all = (on) => Object.fromEntries(ids.map((id) => [id, on]));
const consent = {
  get: state,
  has: (id) => id == "necessary" || answers[id]?.allowed === true,
  choice: (id) => (answers[id]?.reason == "explicit" ? answers[id].allowed : undefined),
  asked: () => ids,
  policy: () => pol,
  sync: () => { pol = policy; return emit(state()); },
  set: (d, s) => write("set", d, s),
  acceptAll: (s) => write("acceptAll", all(true), s),
  rejectAll: (s) => write("rejectAll", all(false), s),
  withdraw: (s) => write("withdraw", all(false), s),
  on: (_, l) => { listeners.push(l); return () => listeners.splice(listeners.indexOf(l), 1); },
};
window.consent = consent;
window.addLink = () => {
  const a = document.createElement("a");
  a.href = "#privacy";
  a.id = "footer-link";
  a.setAttribute("data-consent-open", "");
  a.textContent = "Privacy settings";
  document.querySelector("main").append(a);
};
if (q.has("link")) addLink();
// A page longer than the window: its end is only seen scrolled to the bottom.
if (q.has("long")) for (let i = 0; i < 40; i++) document.querySelector("main").append(Object.assign(document.createElement("p"), { textContent: "Paragraph " + i }));
const button = q.get("button");
window.ui = ConsentdUI.mountUI(consent, { stylesheet: "/consentd.css", lang: q.get("lang") || undefined, button: button == "false" ? false : button || undefined });
`;

const HTML = (lang) => `<!doctype html><html lang="${lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>UI test</title>
<script src="/ui.js"></script><script src="/axe.js"></script></head>
<body><main><h1>An article</h1><p>Some text.</p>
<script src="/page.js"></script></main>
<footer><p id="page-end">The end of the page.</p></footer></body></html>`;

let server, browser, base;

before(async () => {
  const ui = (await build({ entryPoints: [root + "src/ui.ts"], bundle: true, format: "iife", globalName: "ConsentdUI", write: false, minify: true })).outputFiles[0].text;
  const css = (await build({ entryPoints: [root + "src/ui.css"], bundle: true, write: false, minify: true })).outputFiles[0].text;
  const files = {
    "/ui.js": ["text/javascript", ui],
    "/page.js": ["text/javascript", PAGE_JS],
    "/axe.js": ["text/javascript", readFileSync(axePath, "utf8")],
    "/consentd.css": ["text/css", css],
  };
  server = createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    const [type, body] = files[url.pathname] || ["text/html", HTML(url.searchParams.get("html") || "en")];
    res.writeHead(200, {
      "content-type": type + "; charset=utf-8",
      "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'",
    });
    res.end(body);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${server.address().port}/`;
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumFlags });
});

after(async () => {
  await browser?.close();
  server?.close();
});

async function open(query = "", viewport = { width: 1280, height: 800 }) {
  const page = await browser.newPage({ viewport });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() == "error" && errors.push(m.text()));
  await page.goto(base + "?" + query);
  await page.waitForFunction(() => !document.querySelector(".consentd").hidden); // stylesheet loaded
  page.errors = errors;
  return page;
}

// Before axe runs: axe itself leaves empty style attributes behind.
async function noInlineStyles(page) {
  assert.deepEqual(await page.evaluate(() => [...document.querySelectorAll(".consentd [style], .consentd style")].map((e) => e.outerHTML)), []);
}

async function axe(page) {
  await noInlineStyles(page);
  const r = await page.evaluate(() => axe.run(document, { resultTypes: ["violations"] }));
  return r.violations.filter((v) => v.impact == "serious" || v.impact == "critical").map((v) => v.id + ": " + v.nodes.map((n) => n.target).join(" "));
}

async function strictCSPClean(page) {
  assert.deepEqual(await page.evaluate(() => violations), []);
  assert.deepEqual(page.errors, []);
}

test("banner: accept and reject with equal weight, no CSP violation, accessible", async () => {
  const page = await open("html=en");
  const banner = page.locator("[data-consent-banner]");
  assert.ok(await banner.isVisible());
  assert.equal(await banner.getAttribute("role"), "region");
  assert.equal(await banner.getAttribute("aria-label"), "Your privacy choices");
  assert.ok(await page.locator("[data-consent-banner] [data-consent-gpc-notice]").isHidden());
  assert.ok(await page.locator(".consentd-fab").isHidden());
  assert.equal(await banner.locator(".consentd-purposes").textContent(), "Purposes: Analytics, Advertising");
  const accept = banner.locator('[data-consent-action="accept-all"]');
  const reject = banner.locator('[data-consent-action="reject-all"]');
  assert.equal(await accept.evaluate((e) => e.tagName + e.className), await reject.evaluate((e) => e.tagName + e.className));
  const [a, r] = [await accept.boundingBox(), await reject.boundingBox()];
  assert.equal(a.width, r.width);
  assert.equal(a.height, r.height);
  const style = (el) => el.evaluate((e) => { const s = getComputedStyle(e); return [s.backgroundColor, s.color, s.fontSize, s.fontWeight, s.borderWidth].join(); });
  assert.equal(await style(accept), await style(reject));
  assert.deepEqual(await axe(page), []);
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: artifacts + "/ui-banner.png" });
  await reject.click();
  assert.deepEqual(await page.evaluate(() => calls), [["rejectAll", { analytics: false, ads: false }, "banner"]]);
  assert.ok(await banner.isHidden());
  assert.ok(await page.locator(".consentd-fab").isVisible());
  await strictCSPClean(page);
  await page.close();
});

/** Where the focus is: in the preference center, or (a native modal lets it) out in the browser's own UI; never on the page. */
const focusInDialog = (page) => page.evaluate(() => document.querySelector("[data-consent-preferences]").contains(document.activeElement) || !document.hasFocus());

test("keyboard: a native modal; the focus moves in, never reaches the page, Esc closes, the focus returns", async () => {
  const page = await open("prompt=0&granted=analytics");
  const fab = page.locator("[data-consent-open].consentd-fab");
  assert.ok(await page.locator("[data-consent-banner]").isHidden());
  await fab.focus();
  await page.keyboard.press("Enter");
  const dialog = page.locator("[data-consent-preferences]");
  assert.ok(await dialog.isVisible());
  assert.deepEqual(await dialog.evaluate((d) => [d.tagName, d.matches(":modal"), d.getAttribute("aria-labelledby") == d.querySelector("h2").id]), ["DIALOG", true, true]);
  const action = () => page.evaluate(() => document.activeElement.getAttribute("data-consent-action") || document.activeElement.getAttribute("data-consent-purpose"));
  assert.equal(await action(), "close");
  // ::backdrop covers the page, the reopen button included (a hit on it is the dialog's).
  const fabBox = await fab.boundingBox();
  assert.equal(await page.evaluate(([x, y]) => document.elementFromPoint(x, y).className, [fabBox.x + 5, fabBox.y + 5]), "consentd-dialog");
  const seen = [];
  for (let i = 0; i < 8; i++) {
    await page.keyboard.press("Tab");
    assert.ok(await focusInDialog(page), `Tab ${i + 1} reached the page`);
    seen.push(await action());
  }
  // After Save the browser's own UI may take a turn (null), then the dialog again.
  assert.deepEqual(seen.filter(Boolean).slice(0, 6), ["analytics", "ads", "accept-all", "reject-all", "save", "close"]);
  for (let i = 0; i < 8; i++) {
    await page.keyboard.press("Shift+Tab");
    assert.ok(await focusInDialog(page), `Shift+Tab ${i + 1} reached the page`);
  }
  await dialog.locator('[data-consent-action="save"]').focus();
  assert.equal(await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle), "solid");
  await page.keyboard.press("Escape");
  assert.ok(await dialog.isHidden());
  assert.equal(await page.evaluate(() => document.activeElement.className), "consentd-fab");
  assert.equal(await page.evaluate(() => getComputedStyle(document.documentElement).overflow), "visible", "the page scrolls again");

  // A click on the dialog's text takes the focus off its controls: Esc still closes it.
  await fab.click();
  assert.ok(await dialog.isVisible());
  assert.equal(await page.evaluate(() => getComputedStyle(document.documentElement).overflow), "hidden", "the page does not scroll under the modal");
  await dialog.locator(".consentd-text").first().click();
  assert.equal(await action(), null);
  await page.keyboard.press("Escape");
  assert.ok(await dialog.isHidden(), "Esc closes it after a click on its text");
  assert.equal(await page.evaluate(() => document.activeElement.className), "consentd-fab");

  // The page's own [data-consent-open] link, added later: the floating button goes, the link opens it and gets the focus back.
  await page.evaluate(() => addLink());
  await fab.waitFor({ state: "hidden" });
  await page.click("#footer-link");
  assert.ok(await dialog.isVisible());
  assert.ok(!page.url().endsWith("#privacy"));
  await page.click('[data-consent-preferences] [data-consent-action="close"]');
  assert.ok(await dialog.isHidden());
  assert.equal(await page.evaluate(() => document.activeElement.id), "footer-link");
  await strictCSPClean(page);
  await page.close();
});

test("preference center: what the site asks about, switches from the cached answer, save records only what the person did", async () => {
  const page = await open("granted=analytics");
  await page.click('[data-consent-banner] [data-consent-action="customise"]');
  const dialog = page.locator("[data-consent-preferences]");
  assert.ok(await dialog.isVisible());
  assert.deepEqual(await dialog.locator("input").evaluateAll((l) => l.map((i) => i.getAttribute("data-consent-purpose"))), ["necessary", "analytics", "ads"],
    "the necessary purposes and consent.asked(): not every policy purpose");
  const necessary = dialog.locator('input[data-consent-purpose="necessary"]');
  assert.ok((await necessary.isChecked()) && (await necessary.isDisabled()));
  assert.equal(await necessary.getAttribute("role"), "switch");
  assert.match(await dialog.locator(".consentd-purpose").first().textContent(), /Always active/);
  assert.ok(await dialog.locator('input[data-consent-purpose="analytics"]').isChecked());
  assert.ok(!(await dialog.locator('input[data-consent-purpose="ads"]').isChecked()));
  // Policy text is text, never HTML.
  assert.match(await dialog.textContent(), /Counts visits <b>anonymously<\/b>\./);
  assert.deepEqual(await axe(page), []);
  await page.screenshot({ path: artifacts + "/ui-preferences.png" });
  await page.getByLabel("Advertising").check(); // the label names the switch
  await page.getByLabel("Analytics").uncheck();
  await dialog.locator('[data-consent-action="save"]').click();
  assert.deepEqual(await page.evaluate(() => calls), [["set", { analytics: false, ads: true }, "preference_center"]]);
  assert.ok(await dialog.isHidden());
  assert.ok(await page.locator("[data-consent-banner]").isHidden());
  // The banner vanished under the focus: it went to the reopen button.
  assert.equal(await page.evaluate(() => document.activeElement.className), "consentd-fab");
  await strictCSPClean(page);
  await page.close();
});

test("save: a switch on by default records nothing, an untouched switch that is off a denial, nothing to record just closes", async () => {
  // An opt-out region: analytics and ads allowed by default, nothing asked.
  let page = await open("prompt=0&defaults=analytics,ads,functional");
  const dialog = page.locator("[data-consent-preferences]");
  await page.evaluate(() => ui.open());
  assert.ok(await dialog.locator('input[data-consent-purpose="analytics"]').isChecked());
  assert.ok(await dialog.locator('input[data-consent-purpose="ads"]').isChecked());
  await dialog.locator('[data-consent-action="save"]').click();
  assert.ok(await dialog.isHidden());
  assert.deepEqual(await page.evaluate(() => calls), [], "nothing recorded: the person chose nothing");
  // Off and on again: the person turned it on. Off: a denial.
  await page.evaluate(() => ui.open());
  await page.getByLabel("Analytics").uncheck();
  await page.getByLabel("Analytics").check();
  await page.getByLabel("Advertising").uncheck();
  await dialog.locator('[data-consent-action="save"]').click();
  assert.deepEqual(await page.evaluate(() => calls), [["set", { analytics: true, ads: false }, "preference_center"]]);
  await page.close();

  // A grant awaiting a guardian is the person's own: on, and not recorded again; an undecided switch is off and saved as a denial.
  page = await open("prompt=0&guardian=analytics");
  await page.evaluate(() => ui.open());
  assert.ok(await page.locator('[data-consent-preferences] input[data-consent-purpose="analytics"]').isChecked());
  await page.click('[data-consent-preferences] [data-consent-action="save"]');
  assert.deepEqual(await page.evaluate(() => calls), [["set", { ads: false }, "preference_center"]]);
  await page.close();
});

test("linked to an account: the preference center says the choices are saved with it", async () => {
  let page = await open("prompt=0&linked&lang=de");
  await page.evaluate(() => ui.open());
  const line = page.locator("[data-consent-preferences] p", { hasText: "Konto" });
  assert.equal(await line.textContent(), "Ihre Auswahl wird mit Ihrem Konto gespeichert.");
  assert.ok(await line.isVisible());
  await page.close();
  page = await open("prompt=0");
  await page.evaluate(() => ui.open());
  assert.equal(await page.locator("[data-consent-preferences] p", { hasText: "account" }).filter({ visible: true }).count(), 0);
  await page.close();
});

test("German page, GPC honoured, mobile bottom sheet", async () => {
  const page = await open("html=de-DE&gpc=1", { width: 375, height: 700 });
  const banner = page.locator("[data-consent-banner]");
  assert.equal(await banner.locator("h2").textContent(), "Ihre Datenschutz-Einstellungen");
  assert.equal(await page.locator("[data-consent-banner] [data-consent-gpc-notice]").textContent(),
    "Das Global-Privacy-Control-Signal Ihres Browsers wurde berücksichtigt: Werbung ist deaktiviert.");
  assert.ok(await page.locator("[data-consent-banner] [data-consent-gpc-notice]").isVisible());
  assert.equal(await banner.locator(".consentd-purposes").textContent(), "Zwecke: Statistik, Werbung");
  const box = await banner.boundingBox();
  assert.equal(box.x, 0);
  assert.equal(box.width, 375);
  assert.equal(box.y + box.height, 700);
  assert.deepEqual(await axe(page), []);
  await page.screenshot({ path: artifacts + "/ui-banner-mobile-de.png" });
  await banner.locator('[data-consent-action="customise"]').click();
  assert.equal(await page.locator('label[for$="-ads"]').textContent(), "Werbung");
  assert.deepEqual(await axe(page), []);
  await page.screenshot({ path: artifacts + "/ui-preferences-mobile-de.png" });
  await page.click('[data-consent-preferences] [data-consent-action="accept-all"]');
  assert.deepEqual(await page.evaluate(() => calls), [["acceptAll", { analytics: true, ads: true }, "preference_center"]]);
  await strictCSPClean(page);
  await page.close();
});

test("GPC honoured without a banner: a status notice, not modal, once per browser", async () => {
  const page = await open("prompt=0&gpc=1&lang=fr");
  const note = page.locator('.consentd [role="status"]');
  assert.ok(await note.isVisible(), "shown without opening anything");
  assert.equal(await note.locator("span").textContent(),
    "Le signal Global Privacy Control de votre navigateur a été respecté\u00a0: la publicité est désactivée.");
  assert.equal(await page.evaluate(() => document.querySelector(".consentd dialog").open), false, "not modal: nothing else opened");
  assert.deepEqual(await axe(page), []);
  await page.screenshot({ path: artifacts + "/ui-gpc-notice.png" });
  await note.locator('[data-consent-action="close"]').click();
  assert.ok(await note.isHidden());
  await page.evaluate(() => consent.sync()); // a change: it stays closed
  assert.ok(await note.isHidden());
  await page.reload();
  await page.waitForFunction(() => !document.querySelector(".consentd").hidden);
  assert.ok(await note.isHidden(), "once per browser");
  // The preference center still says it.
  await page.evaluate(() => ui.open());
  assert.ok(await page.locator("[data-consent-preferences] [data-consent-gpc-notice]").isVisible());
  await strictCSPClean(page);
  await page.close();
});

test("GPC notice where storage is blocked: once per page", async () => {
  const page = await browser.newPage();
  await page.addInitScript(() => Object.defineProperty(window, "localStorage", { get() { throw new DOMException("blocked", "SecurityError"); } }));
  for (let i = 0; i < 2; i++) {
    await page.goto(base + "?prompt=0&gpc=1");
    await page.waitForFunction(() => !document.querySelector(".consentd").hidden);
    const note = page.locator('.consentd [role="status"]');
    assert.ok(await note.isVisible(), `page ${i + 1}`);
    await page.evaluate(() => ui.close());
    await page.evaluate(() => consent.sync());
    assert.ok(await note.isHidden());
  }
  await page.close();
});

/** Points across an element's box (at its vertical middle) where something else is hit. */
function uncovered(page, selector) {
  return page.evaluate((sel) => {
    const el = document.querySelector(sel);
    const r = el.getBoundingClientRect();
    const hidden = [];
    for (let x = r.left + 2; x < r.right; x += 10) {
      const hit = document.elementFromPoint(x, r.top + r.height / 2);
      if (!el.contains(hit)) hidden.push(`${Math.round(x)}: ${hit?.className || hit?.tagName}`);
    }
    return hidden;
  }, selector);
}

test("floating button: never over the page's last content; bottom right on request; none with button false", async () => {
  const viewport = { width: 375, height: 500 };
  let page = await open("prompt=0&long", viewport);
  const fab = page.locator(".consentd-fab");
  assert.ok(await fab.isVisible());
  await page.evaluate(() => scrollTo(0, document.documentElement.scrollHeight));
  const end = await page.locator("#page-end").boundingBox();
  assert.ok(end.y + end.height <= viewport.height, "the page's end is in view");
  assert.deepEqual(await uncovered(page, "#page-end"), [], "what ends the page is not under the button");
  assert.ok((await fab.boundingBox()).x < 50, "bottom left");
  await page.close();

  page = await open("prompt=0&button=right", viewport);
  const box = await page.locator(".consentd-fab").boundingBox();
  assert.ok(box.x + box.width > 375 - 50, `bottom right: ${JSON.stringify(box)}`);
  await page.close();

  page = await open("prompt=0&button=false", viewport);
  assert.ok(await page.locator(".consentd-fab").isHidden());
  assert.ok(await page.locator(".consentd-end").isHidden(), "no room kept for no button");
  await page.close();
});

test("French texts; unknown languages fall back to English", async () => {
  let page = await open("lang=fr");
  assert.equal(await page.locator('[data-consent-banner] [data-consent-action="reject-all"]').textContent(), "Tout refuser");
  // The policy has no French: English purpose titles, marked as English.
  assert.equal(await page.locator(".consentd-purposes span").first().getAttribute("lang"), "en");
  await page.close();
  page = await open("html=pt-BR");
  assert.equal(await page.locator('[data-consent-banner] [data-consent-action="accept-all"]').textContent(), "Accept all");
  assert.equal(await page.locator(".consentd").getAttribute("lang"), "en");
  await page.close();
});

test("no policy yet: nothing until the core's change after sync; open() waits too", async () => {
  const page = await open("nopolicy=1");
  assert.ok(await page.locator("[data-consent-banner]").isHidden());
  await page.evaluate(() => ui.open());
  assert.ok(await page.locator("[data-consent-preferences]").isHidden());
  await page.evaluate(() => consent.sync());
  assert.ok(await page.locator("[data-consent-banner]").isVisible());
  assert.ok(await page.locator("[data-consent-preferences]").isVisible());
  await page.close();
});

test("destroy removes everything it added and its listeners", async () => {
  const page = await open("link");
  const before = await page.evaluate(() => document.querySelectorAll('link[href="/consentd.css"], link[href$="/consentd.css"]').length);
  assert.equal(before, 1);
  await page.evaluate(() => ui.destroy());
  assert.equal(await page.locator(".consentd, .consentd-end").count(), 0);
  assert.equal(await page.locator('link[href$="/consentd.css"]').count(), 0);
  await page.click("#footer-link");
  assert.ok(page.url().endsWith("#privacy")); // no longer intercepted
  await page.evaluate(() => consent.sync()); // a change: nothing comes back
  assert.equal(await page.locator(".consentd").count(), 0);
  await page.close();
});
