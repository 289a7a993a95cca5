// Builds the console into dist/ (or the folder given as the first argument,
// which `make check-console` uses to compare a fresh build with the
// committed one): console.js (src/main.ts and what it imports, the SDK's UI
// included, one minified ES2020 bundle), console.css (the console's styles,
// uPlot's and the SDK's ui.css) and index.html. esbuild's output depends only
// on its input and options, so the same sources give the same bytes.

import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] || join(root, "dist"));
const common = { absWorkingDir: root, bundle: true, minify: true, target: "es2020", logLevel: "warning", legalComments: "none", charset: "utf8" };

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const js = await build({ ...common, entryPoints: ["src/main.ts"], outfile: join(out, "console.js"), format: "esm", metafile: true });
await build({ ...common, entryPoints: ["src/console.css"], outfile: join(out, "console.css"), loader: { ".css": "css" } });
copyFileSync(join(root, "src/index.html"), join(out, "index.html"));

// The console runs under a strict Content-Security-Policy (console.go):
// no code from strings, no style attributes set as markup (the CSSOM,
// element.style, is allowed: preact and uPlot size things with it).
const forbidden = /\beval\(|new Function\(|setAttribute\(["']style/;
const code = readFileSync(join(out, "console.js"), "utf8");
const found = code.match(forbidden);
if (found) {
  console.error(`build: console.js contains "${found[0]}", which the console's CSP blocks`);
  process.exit(1);
}
const bytes = Object.values(js.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
if (!process.argv[2]) console.log(`built ${out}: console.js ${bytes} bytes, console.css, index.html`);
