// The TCF layer's code and stylesheet as the IAB entry bundles them: only
// types shared with the rest (no other part pulled in), nothing a strict CSP
// blocks, no side effect when imported, both languages complete, every
// selector under .consentd. Its behaviour in a browser: test/browser/iab-ui.test.mjs.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");

async function bundle(extra = {}) {
  const r = await build({
    absWorkingDir: root, entryPoints: ["src/iab/ui.ts"], bundle: true, write: false, format: "esm",
    target: "es2020", minify: true, metafile: true, logLevel: "silent", ...extra,
  });
  return { code: r.outputFiles[0].text, inputs: Object.keys(r.metafile.inputs) };
}

test("ui.ts pulls in no other module but its own parts (texts, DOM builders, purposes) and the banner funnel's (the rest: types only) and has nothing a strict CSP blocks", async () => {
  const { code, inputs } = await bundle();
  assert.deepEqual(inputs.sort(), ["src/funnel.ts", "src/iab/ui-dom.ts", "src/iab/ui-purposes.ts", "src/iab/ui-texts.ts", "src/iab/ui.ts"]);
  // The same rule as build.mjs's for every bundle.
  assert.equal(code.match(/\beval\(|new Function|\.style\b|cssText|setAttribute\(["']style/), null);
  assert.match(code, /export\{.*mountTCF/);
  console.log(`iab/ui.ts: ${code.length} B minified, ${gzipSync(code).length} B gzipped`);
});

test("importing ui.ts for nothing leaves no code (package.json sideEffects)", async () => {
  const r = await build({
    absWorkingDir: root, stdin: { contents: 'import "./src/iab/ui.ts";', resolveDir: root }, bundle: true, write: false,
    format: "esm", minify: true, ignoreAnnotations: true, logLevel: "silent",
  });
  assert.equal(r.outputFiles[0].text.trim(), "");
});

test("every language (de, fr) has every text, and the same {placeholders}", () => {
  // Without comments (a comment may name a placeholder).
  const src = readFileSync(join(root, "src/iab/ui-texts.ts"), "utf8").replace(/^\s*\/\/.*$/gm, "");
  const block = (start, end) => {
    const from = src.indexOf(start) + start.length;
    return src.slice(from, src.indexOf(end, from));
  };
  const keys = (s) => [...s.matchAll(/^\s+(\w+):/gm)].map((m) => m[1]);
  const holes = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
  const en = block("const en = {", "\n};");
  for (const l of ["de", "fr"]) {
    const texts = block(`  ${l}: {`, "\n  },");
    assert.deepEqual(keys(texts), keys(en), l);
    assert.deepEqual(holes(texts), holes(en), l);
  }
});

test("ui.css bundles consentd.css and keeps every rule under .consentd", async () => {
  const r = await build({ absWorkingDir: root, entryPoints: ["src/iab/ui.css"], bundle: true, write: false, loader: { ".css": "css" }, logLevel: "silent" });
  const css = r.outputFiles[0].text;
  assert.ok(css.includes(".consentd-switch"), "consentd.css is in");
  const own = readFileSync(join(root, "src/iab/ui.css"), "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
  const selectors = [...own.matchAll(/(^|[{}])\s*([^{}@]+?)\s*\{/g)].map((m) => m[2]).filter((s) => !s.startsWith("@"));
  assert.ok(selectors.length > 10);
  for (const list of selectors) {
    for (const s of list.split(",")) assert.match(s.trim(), /^\.consentd/, `selector ${s.trim()} is under .consentd`);
  }
});
