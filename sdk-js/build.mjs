// Builds dist/: one minified ES module per entry, the <script> bundle, the
// stylesheet and the type declarations. `node build.mjs`.

import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { minify } from "terser";
import ts from "typescript";

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, "dist");
const entries = ["core", "enforce", "gcm", "ui", "iab", "iab-ui"];
const common = { absWorkingDir: root, bundle: true, minify: true, target: "es2020", logLevel: "warning", legalComments: "none" };

/**
 * The IAB's __tcfapi stub (@iabtechlabtcf/stub 1.5.21), loaded with two
 * lines changed. Each fails the build if a new version of the stub changes
 * it, so a patch is never silently lost (and can go once fixed upstream).
 * - It hides its locator frame with an inline style (style.cssText =
 *   "display:none"), which the strict CSP check below refuses: the frame is
 *   hidden by its `hidden` attribute instead (the same display:none, from
 *   the browser's own stylesheet).
 * - Its postMessage handler forgets the calling frame (r = null) right after
 *   passing the call on, so a call it queued (made before the CMP loaded) is
 *   answered to nobody: ad tags in iframes never got their answer. The
 *   frame is kept (test/browser/iab.test.mjs calls from an iframe).
 */
const patchedTcfStub = {
  name: "patched-tcf-stub",
  setup(b) {
    b.onLoad({ filter: /@iabtechlabtcf[\\/]stub[\\/]lib[\\/]stub\.js$/ }, ({ path }) => {
      const code = readFileSync(path, "utf8");
      let patched = code;
      for (const [from, to] of [['r.style.cssText="display:none"', "r.hidden=!0"], ["n.parameter),r=null", "n.parameter)"]]) {
        if (!patched.includes(from)) fail(`${path}: "${from}" is not in the stub any more: update patchedTcfStub in build.mjs`);
        patched = patched.replace(from, to);
      }
      return { contents: patched, loader: "js" };
    });
  },
};

rmSync(dist, { recursive: true, force: true });

// ES modules, one per entry. Entries only share types, so nothing is split.
const esm = await build({
  ...common,
  entryPoints: entries.map((e) => `src/${e}.ts`),
  outdir: "dist",
  format: "esm",
  metafile: true,
});

// The plain <script> bundle: core, enforcement, Consent Mode and UI.
const iife = await build({ ...common, entryPoints: ["src/iife.ts"], outfile: "dist/consentd.iife.js", format: "iife", metafile: true });
// The same with the IAB signals (__tcfapi, __gpp), and the stub a page runs
// before its ad tags. Separate files: the default bundle does not change.
const iabIife = await build({ ...common, entryPoints: ["src/iife-iab.ts"], outfile: "dist/consentd-iab.iife.js", format: "iife", metafile: true });
const stub = await build({
  ...common, entryPoints: ["src/iab/stub.ts"], outfile: "dist/consentd-iab-stub.js", format: "iife", metafile: true,
  plugins: [patchedTcfStub],
});
const iifes = [iife, iabIife, stub];

// A second minifier pass over the bundles: terser finds what esbuild's
// minifier leaves (~60 B gzipped of core.js, ~300 B of the script tag's
// bundle), which pays for the core being split into modules (src/core/)
// within its budget. ecma 2020: no syntax newer than esbuild's target.
for (const [file, module] of [
  ...entries.map((e) => [`dist/${e}.js`, true]),
  ...["consentd.iife.js", "consentd-iab.iife.js", "consentd-iab-stub.js"].map((f) => [`dist/${f}`, false]),
]) {
  const path = join(root, file);
  writeFileSync(path, (await minify(readFileSync(path, "utf8"), { module, ecma: 2020, compress: { passes: 2 } })).code);
}

await build({ ...common, entryPoints: ["src/ui.css"], outfile: "dist/consentd.css", loader: { ".css": "css" } });
// The IAB script tag's stylesheet: consentd.css and the TCF layer's rules (its @import).
await build({ ...common, entryPoints: ["src/iab/ui.css"], outfile: "dist/consentd-iab.css", loader: { ".css": "css" } });

// The core must stay headless: whoever imports it pays for no UI. Its
// parts are core.ts, the modules under src/core/ and the shared types.
for (const input of Object.keys(esm.metafile.outputs["dist/core.js"].inputs)) {
  if (!/^src\/(core\.ts|types\.ts|core\/[\w-]+\.ts)$/.test(input)) fail(`dist/core.js pulls in ${input}: the core must not import other parts`);
}

// package.json's "sideEffects" tells bundlers that no module here does
// anything when imported, so they drop what a page does not use. Hold every
// module of the ES entries to it: imported for nothing, it must leave no code
// behind. ignoreAnnotations makes esbuild judge the code, not the promise.
//
// The IAB's libraries bundled into dist/iab.js are exempt from this probe:
// their modules fill static tables (enums, class fields, a Map of section
// ids) at load, which esbuild cannot prove pure, and they are not ours to
// rewrite. What matters is held instead by importing dist/iab.js itself
// below: it must load without a window and leave no global behind.
const vendored = /^node_modules\/@(iabgpp|iabtechlabtcf)\//;
const modules = new Set(Object.values(esm.metafile.outputs).flatMap((o) => Object.keys(o.inputs)));
for (const input of modules) {
  if (vendored.test(input)) continue;
  const probe = await build({
    absWorkingDir: root, stdin: { contents: `import "./${input}";`, resolveDir: root }, bundle: true, write: false,
    format: "esm", minify: true, ignoreAnnotations: true, logLevel: "silent", external: ["@iabgpp/*", "@iabtechlabtcf/*"],
  });
  // (Our modules importing the libraries leave the libraries' bare imports, checked below.)
  const left = probe.outputFiles[0].text.replace(/import\s*(\{[^}]*\}\s*from\s*)?"@(iabgpp|iabtechlabtcf)\/[\w/.-]+";/g, "").trim();
  if (left) fail(`${input} has side effects when imported (package.json says it has none): ${left.slice(0, 200)}`);
}

{
  const before = new Set(Object.getOwnPropertyNames(globalThis));
  try {
    await import(pathToFileURL(join(dist, "iab.js")).href);
  } catch (err) {
    fail(`dist/iab.js does something when imported: ${err.message}`);
  }
  const added = Object.getOwnPropertyNames(globalThis).filter((k) => !before.has(k));
  if (added.length) fail(`dist/iab.js adds globals when imported: ${added.join(", ")}`);
}

// A strict Content-Security-Policy (no 'unsafe-eval', no 'unsafe-inline'
// styles) must work: no code from strings, no inline styles.
const forbidden = /\beval\(|new Function|\.style\b|cssText|setAttribute\(["']style/;
for (const file of [...Object.keys(esm.metafile.outputs), ...iifes.flatMap((b) => Object.keys(b.metafile.outputs))]) {
  const found = readFileSync(join(root, file), "utf8").match(forbidden);
  if (found) fail(`${file} contains "${found[0]}", which a strict CSP blocks`);
}

// Declarations for the ES entries, from tsc's JS API.
const config = ts.getParsedCommandLineOfConfigFile(join(root, "tsconfig.json"), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => fail(format([d])) });
const program = ts.createProgram(
  entries.map((e) => join(root, "src", `${e}.ts`)),
  { ...config.options, noEmit: false, declaration: true, emitDeclarationOnly: true, outDir: dist, rootDir: join(root, "src") },
);
const diagnostics = ts.getPreEmitDiagnostics(program);
if (diagnostics.length) fail(format(diagnostics));
program.emit(undefined, (file, text) => {
  // Users resolving with node16/nodenext need the extension on relative
  // imports ("./types.js"); sources may have left it out.
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text.replace(/(from\s+|import\()(["'])(\.\.?\/[^"']+?)(?<!\.js)\2/g, "$1$2$3.js$2"));
});

copyFileSync(join(root, "..", "LICENSE"), join(dist, "LICENSE"));
// iab.js, consentd-iab.iife.js and consentd-iab-stub.js bundle the IAB's
// libraries (Apache-2.0, which asks for its text to go with them).
{
  const bundled = ["@iabgpp/cmpapi", "@iabtechlabtcf/cmpapi", "@iabtechlabtcf/core", "@iabtechlabtcf/stub"].map((name) => {
    const pkg = JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8"));
    if (pkg.license != "Apache-2.0") fail(`${name} is ${pkg.license}, not Apache-2.0: update THIRD_PARTY_LICENSES in build.mjs`);
    return `${name} ${pkg.version} (Apache-2.0)`;
  });
  const text = readFileSync(join(root, "node_modules/@iabtechlabtcf/core/LICENSE"), "utf8");
  writeFileSync(join(dist, "THIRD_PARTY_LICENSES"), `dist/iab.js, dist/consentd-iab.iife.js and dist/consentd-iab-stub.js include:\n\n${bundled.join("\n")}\n\nunder this license:\n${text}`);
}
console.log("built " + [...Object.keys(esm.metafile.outputs), ...iifes.flatMap((b) => Object.keys(b.metafile.outputs)), "dist/consentd.css", "dist/consentd-iab.css"].map((f) => relative("dist", f)).join(", "));

function format(diags) {
  return ts.formatDiagnosticsWithColorAndContext(diags, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => root, getNewLine: () => "\n" });
}

function fail(message) {
  console.error("build: " + message);
  process.exit(1);
}
