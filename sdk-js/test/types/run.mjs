// The public types as a user gets them: packs the built package (npm pack),
// installs the tarball into a temp project's node_modules/@consentd/sdk, and
// type-checks consumer.ts there with the pinned tsc under each module
// resolution in tsconfig.<mode>.json (bundler, nodenext, node10). Prints one
// pass/fail line; exits 1 on a failure. Run after `npm run build`
// (`npm run test:types`).

import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const sdkDir = resolve(here, '../..');
const tsc = join(sdkDir, 'node_modules/typescript/bin/tsc');
const tsVersion = JSON.parse(readFileSync(join(sdkDir, 'node_modules/typescript/package.json'), 'utf8')).version;
const entries = ['core', 'enforce', 'gcm', 'ui', 'iab', 'iab-ui'];
// mode -> the consumer project's package.json "type" (nodenext reads it:
// an ES module project; node10 projects are CommonJS).
const modes = { bundler: 'module', nodenext: 'module', node10: 'commonjs' };

function fail(message) {
  console.error(message);
  console.log('types: FAIL');
  process.exit(1);
}

for (const e of entries) {
  if (!existsSync(join(sdkDir, 'dist', `${e}.d.ts`))) fail(`dist/${e}.d.ts is missing: run npm run build first`);
}

const tmp = realpathSync(mkdtempSync(join(tmpdir(), 'consentd-types-')));
const failed = [];
try {
  // What npm publishes ("files"), exactly as a user's npm unpacks it (the
  // package has no dependencies, so unpacking is installing).
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--silent', '--pack-destination', tmp], {
    cwd: sdkDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
  }));
  const pkgDir = join(tmp, 'node_modules/@consentd/sdk');
  mkdirSync(pkgDir, { recursive: true });
  execFileSync('tar', ['-xzf', join(tmp, packed[0].filename), '-C', pkgDir, '--strip-components=1']);

  for (const [mode, type] of Object.entries(modes)) {
    const dir = join(tmp, mode);
    mkdirSync(dir);
    copyFileSync(join(here, 'consumer.ts'), join(dir, 'consumer.ts'));
    copyFileSync(join(here, `tsconfig.${mode}.json`), join(dir, 'tsconfig.json'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `consumer-${mode}`, private: true, type }) + '\n');
    const r = spawnSync(process.execPath, [tsc, '-p', '.', '--pretty', 'false', '--listFiles'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    const lines = (r.stdout + r.stderr).split('\n').filter(Boolean);
    const errors = lines.filter((l) => !l.startsWith('/'));
    // tsc must have read each entry's declarations from the installed
    // package, not from anywhere else.
    const missing = entries.filter((e) => !lines.includes(join(pkgDir, 'dist', `${e}.d.ts`)));
    if (r.status === 0 && !missing.length) {
      console.log(`  ok    ${mode}`);
    } else {
      failed.push(mode);
      console.log(`  FAIL  ${mode}${r.error ? `: ${r.error.message}` : ''}`);
      for (const l of errors) console.log(`        ${l}`);
      if (r.status === 0 && missing.length) console.log(`        tsc did not read ${missing.map((e) => `dist/${e}.d.ts`).join(', ')} from the packed package`);
    }
  }
} catch (e) {
  fail(`types: ${e.message}${e.stderr ? `\n${e.stderr}` : ''}`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

const summary = `${Object.keys(modes).join(', ')}; typescript ${tsVersion}, packed @consentd/sdk`;
if (failed.length) {
  console.log(`types: FAIL (${failed.join(', ')} of ${summary})`);
  process.exit(1);
}
console.log(`types: pass (${summary})`);
