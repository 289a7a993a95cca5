// Size is a budget, not a hope: prints the gzipped size of every built file
// and fails (exit 1) when an import set outgrows its budget in package.json
// ("sizeBudgets", gzipped bytes). Run after `npm run build`.

import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const root = new URL("../", import.meta.url);
const { sizeBudgets } = JSON.parse(readFileSync(new URL("package.json", root), "utf8"));

// What a visitor downloads for each way of using the SDK. Files are served
// separately, so a set's size is the sum of its files' gzipped sizes.
const sets = {
  core: ["dist/core.js"],
  "core + enforce + gcm": ["dist/core.js", "dist/enforce.js", "dist/gcm.js"],
  "core + ui + css": ["dist/core.js", "dist/ui.js", "dist/consentd.css"],
  "iife + css": ["dist/consentd.iife.js", "dist/consentd.css"],
  // The IAB entry (@consentd/sdk/iab) is mostly the IAB's own libraries.
  iab: ["dist/iab.js"],
  "iab + iab/ui + css": ["dist/iab.js", "dist/iab-ui.js", "dist/consentd-iab.css"],
  "iab iife + css": ["dist/consentd-iab.iife.js", "dist/consentd-iab.css"],
  "iab stub": ["dist/consentd-iab-stub.js"],
};

const files = [...new Set(Object.values(sets).flat())];
const size = {};
for (const file of files) {
  let bytes;
  try {
    bytes = readFileSync(new URL(file, root));
  } catch {
    console.error(`size: ${file} is missing: run npm run build first`);
    process.exit(1);
  }
  size[file] = { raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
}

const kb = (n) => (n / 1024).toFixed(2) + " KB";
const rows = [["file", "raw", "gzip", ""]];
for (const file of files) rows.push([file, kb(size[file].raw), kb(size[file].gzip), ""]);
rows.push(["", "", "", ""], ["import set", "raw", "gzip", "budget (gzip)"]);

const over = [];
for (const [name, parts] of Object.entries(sets)) {
  const raw = parts.reduce((n, f) => n + size[f].raw, 0);
  const gzip = parts.reduce((n, f) => n + size[f].gzip, 0);
  const budget = sizeBudgets[name];
  if (budget !== undefined && gzip > budget) over.push(`${name}: ${gzip} B gzipped, budget ${budget} B`);
  rows.push([name, kb(raw), kb(gzip), budget === undefined ? "-" : `${kb(budget)}${gzip > budget ? "  OVER" : ""}`]);
}

const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
for (const r of rows) console.log(r.map((c, i) => (i ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  ").trimEnd());

for (const name of Object.keys(sizeBudgets).filter((k) => k != "//")) {
  if (!sets[name]) over.push(`sizeBudgets.${name} names no import set (${Object.keys(sets).join(", ")})`);
}
if (over.length) {
  console.error("\nsize budget exceeded:\n  " + over.join("\n  "));
  process.exit(1);
}
