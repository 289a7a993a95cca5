// The console tests' world: a real redis-server and consentd (security on,
// an API keys file with one key per scope, the console served at /console/
// from the binary), and Debian's headless Chromium driven by playwright-core.
// freePort, waitFor and the Chromium flags are the SDK's browser harness's
// (sdk-js/test/browser/harness.mjs); the rest differs: the console is
// same-origin, needs one key per scope, and the erasure test reads Redis.
//
// Settings: CONSENTD_BIN, a consentd binary (default: built into a temp
// folder once per file); DEBUG_BROWSER=1 prints the page's console.

import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { chromiumFlags, chromiumPath, freePort, waitFor } from '../../../sdk-js/test/browser/harness.mjs';

export { waitFor };
const here = dirname(fileURLToPath(import.meta.url));
export const consoleDir = resolve(here, '..');
export const repoDir = resolve(consoleDir, '../..');
export const resultsDir = join(consoleDir, 'test-results');
const axeSource = readFileSync(join(consoleDir, 'node_modules/axe-core/axe.min.js'), 'utf8');

export const SCOPES = ['check', 'read', 'write', 'watch', 'rights', 'admin', 'token'];

function child(cmd, args, opts) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let log = '';
  const keep = (d) => { log = (log + d).slice(-20_000); };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  const exited = new Promise((r) => { proc.on('exit', r); proc.on('error', (e) => { keep(e.message); r(); }); });
  const dead = () => proc.exitCode !== null || proc.signalCode !== null;
  return {
    proc, dead, log: () => log,
    async stop() {
      if (dead()) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}

/**
 * A shop page with the SDK's script tag (sdk-js/dist: make sdk), on an
 * origin of its own, as a site would have it: env.shopUrl(region).
 */
async function startSite(env) {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const dist = join(repoDir, 'sdk-js/dist');
  if (!existsSync(join(dist, 'consentd.iife.js'))) throw new Error('sdk-js/dist/consentd.iife.js is missing: run make sdk first');
  const server = createServer((req, res) => {
    const url = new URL(req.url, origin);
    const file = { '/sdk/consentd.iife.js': 'consentd.iife.js', '/sdk/consentd.css': 'consentd.css' }[url.pathname];
    if (file) {
      res.writeHead(200, { 'Content-Type': file.endsWith('.js') ? 'text/javascript' : 'text/css', 'Cache-Control': 'no-store' });
      return res.end(readFileSync(join(dist, file)));
    }
    if (url.pathname === '/shop.html') {
      const region = url.searchParams.get('region') || 'DE';
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      return res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title>
<script src="/sdk/consentd.iife.js" data-endpoint="${env.url}" data-region="${region}" data-lang="en"></script></head>
<body><main><h1>Shop</h1><p><button type="button" data-consent-open>Privacy choices</button></p></main></body></html>`);
    }
    res.writeHead(url.pathname === '/favicon.ico' ? 204 : 404);
    res.end();
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  env.siteOrigin = origin;
  env.shopUrl = (region) => `${origin}/shop.html?region=${region}`;
  return () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); });
}

/**
 * Starts Redis and consentd. env.keys[scope] is an API key holding only
 * that scope; env.url the HTTP origin; env.stopAll() in after(). With
 * site, also a shop page with the SDK on another origin (env.shopUrl),
 * which consentd lets call it (--cors-origins).
 */
export async function startEnv({ site = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'consentd-console-'));
  const stops = [];
  const env = {
    dir,
    async stopAll() {
      for (const s of stops.reverse()) await s().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    const redisPort = await freePort();
    const redis = child('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]);
    stops.push(() => redis.stop());
    env.redisPort = redisPort;
    await waitFor(async () => {
      if (redis.dead()) throw new Error('redis-server exited: ' + redis.log());
      return (await redisCall(redisPort, ['PING'])) === 'PONG';
    }, { what: 'redis-server' });

    const bin = process.env.CONSENTD_BIN || join(dir, 'consentd');
    if (!process.env.CONSENTD_BIN) execFileSync('go', ['build', '-o', bin, './server/cmd/consentd'], { cwd: repoDir, stdio: 'inherit' });
    const keysFile = join(dir, 'keys.yaml');
    const list = (kind) => `${kind}_keys:\n  - id: ${kind}1\n    secret: ${randomBytes(32).toString('base64')}\n`;
    writeFileSync(keysFile, list('hmac') + list('encryption') + list('token'), { mode: 0o600 });
    env.keys = {};
    let apiKeys = 'keys:\n';
    for (const scope of SCOPES) {
      const key = randomBytes(30).toString('base64url');
      env.keys[scope] = key;
      apiKeys += `  - name: console-${scope}\n    hash: sha256:${createHash('sha256').update(key).digest('hex')}\n    scopes: [${scope}]\n`;
    }
    const apiKeysFile = join(dir, 'api-keys.yaml');
    writeFileSync(apiKeysFile, apiKeys, { mode: 0o600 });
    const httpPort = await freePort();
    const grpcPort = await freePort();
    env.url = `http://127.0.0.1:${httpPort}`;
    if (site) stops.push(await startSite(env));
    const consentd = child(bin, [
      '--redis-url', `redis://127.0.0.1:${redisPort}/0`,
      '--grpc-addr', `127.0.0.1:${grpcPort}`, '--http-addr', `127.0.0.1:${httpPort}`,
      '--keys-file', keysFile, '--api-keys-file', apiKeysFile,
      ...(env.siteOrigin ? ['--cors-origins', env.siteOrigin] : []),
      '--rate-limit-ip', '0', '--log-format', 'text', '--shutdown-timeout', '1s', '--drain-delay', '0s',
    ], {});
    stops.push(() => consentd.stop());
    env.consentdLog = consentd.log;
    await waitFor(async () => {
      if (consentd.dead()) throw new Error('consentd exited: ' + consentd.log());
      return (await fetch(env.url + '/readyz', { signal: AbortSignal.timeout(500) })).status === 200;
    }, { ms: 15_000, what: 'consentd /readyz' });
  } catch (e) {
    await env.stopAll();
    throw e;
  }
  return env;
}

/** Calls the REST API with the key of one scope: { status, body }. */
export async function api(env, scope, method, path, body, headers = {}) {
  const r = await fetch(env.url + path, {
    method,
    headers: { Authorization: `Bearer ${env.keys[scope]}`, 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

/**
 * One browser per test file, with one page in a fresh context.
 * page.problems collects console errors, page errors and CSP violations
 * (securitypolicyviolation events, reported by an init script that runs
 * before the console's own). newPage() opens another fresh context (a new
 * visitor: no cookies, no storage) in the same browser.
 */
export async function openBrowser(_env, { width = 1280, height = 900 } = {}) {
  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumFlags });
  async function newPage() {
    const context = await browser.newContext({ viewport: { width, height }, acceptDownloads: true });
    context.setDefaultTimeout(10_000);
    const page = await context.newPage();
    page.problems = [];
    // A violation must not be lost with its document: each is reported at once.
    await context.exposeBinding('__cspViolation', (_src, v) => page.problems.push('CSP: ' + v));
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__cspViolation?.(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`);
      });
    });
    page.on('console', (m) => {
      if (process.env.DEBUG_BROWSER) console.log(`[browser ${m.type()}] ${m.text()}`);
      if (m.type() === 'error') page.problems.push(`console: ${m.text()} (${m.location().url})`);
    });
    page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
    return page;
  }
  const page = await newPage();
  return { page, newPage, close: () => browser.close() };
}

/**
 * Console errors, page errors and CSP violations since the last call (the
 * violations the current document recorded itself, and those collected
 * before navigations).
 */
export async function problems(page) {
  await page.evaluate(() => 0); // a round trip: bindings called before it have arrived
  return page.problems.splice(0);
}

/**
 * Console errors the test caused on purpose: the browser logs every 4xx/5xx
 * response as "Failed to load resource". Only those with the given statuses
 * are dropped, and only from the list returned.
 */
export function withoutExpectedStatuses(list, statuses) {
  return list.filter((p) => !statuses.some((s) => p.includes(`status of ${s}`)));
}

/** Opens the console and signs in with the key of scope. */
export async function signIn(page, env, scope) {
  await page.goto(env.url + '/console/');
  // Signed out first, whatever an earlier test left.
  if (await page.evaluate(() => { const had = sessionStorage.length > 0; sessionStorage.clear(); return had; })) await page.reload();
  await page.fill('#api-key', env.keys[scope]);
  await page.click('button[type=submit]');
  await page.waitForSelector('#key-name');
}

/** axe-core over the page (evaluated through the DevTools protocol, so the page's CSP does not block it). */
export async function axe(page) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact}: ${v.id}: ${v.help}\n${v.nodes.map((n) => `  ${n.target.join(' ')}: ${n.failureSummary}`).join('\n')}`);
}

export async function screenshot(page, name, opts = {}) {
  mkdirSync(resultsDir, { recursive: true });
  await page.screenshot({ path: join(resultsDir, name), fullPage: true, ...opts });
}

/** Text of the cells of a table's body rows, keyed by the row header. */
export function tableRows(page, selector) {
  return page.$$eval(`${selector} tbody tr`, (rows) => Object.fromEntries(rows.map((r) => [r.querySelector('th').textContent.trim(), [...r.querySelectorAll('td')].map((td) => td.textContent.trim())])));
}

// --- a tiny Redis client (RESP), for reading everything Redis holds ----------

function encode(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Parses one RESP reply from buf at i: [value, next index] or null if incomplete. Bulk strings stay Buffers. */
function parse(buf, i) {
  const nl = buf.indexOf('\r\n', i);
  if (nl < 0) return null;
  const type = String.fromCharCode(buf[i]);
  const line = buf.toString('latin1', i + 1, nl);
  if (type === '+') return [line, nl + 2];
  if (type === '-') return [new Error(line), nl + 2];
  if (type === ':') return [Number(line), nl + 2];
  if (type === '$') {
    const n = Number(line);
    if (n < 0) return [null, nl + 2];
    if (buf.length < nl + 2 + n + 2) return null;
    return [buf.subarray(nl + 2, nl + 2 + n), nl + 2 + n + 2];
  }
  if (type === '*') {
    const n = Number(line);
    if (n < 0) return [null, nl + 2];
    const arr = [];
    let j = nl + 2;
    for (let k = 0; k < n; k++) {
      const r = parse(buf, j);
      if (!r) return null;
      arr.push(r[0]);
      j = r[1];
    }
    return [arr, j];
  }
  throw new Error('unexpected RESP type ' + type);
}

/** Runs commands on one connection; resolves with their replies in order. */
export function redisPipeline(port, commands) {
  return new Promise((res, rej) => {
    const sock = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const replies = [];
    let at = 0;
    sock.setTimeout(5000, () => { sock.destroy(); rej(new Error('redis timeout')); });
    sock.on('error', rej);
    sock.on('connect', () => sock.write(Buffer.concat(commands.map(encode))));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const r = parse(buf, at);
        if (!r) break;
        replies.push(r[0]);
        at = r[1];
      }
      if (replies.length === commands.length) { sock.end(); res(replies); }
    });
  });
}

export async function redisCall(port, args) {
  const [r] = await redisPipeline(port, [args]);
  if (r instanceof Error) throw r;
  return Buffer.isBuffer(r) ? r.toString() : r;
}

const flat = (v) => (Array.isArray(v) ? v.flatMap(flat) : v === null || v === undefined ? [] : [Buffer.isBuffer(v) ? v : Buffer.from(String(v))]);

/**
 * Everything Redis holds: per key its name, type, contents (read by type)
 * and its DUMP (with rdbcompression off, so no value hides in LZF).
 */
export async function redisDump(port) {
  await redisCall(port, ['CONFIG', 'SET', 'rdbcompression', 'no']);
  const keys = [];
  let cursor = '0';
  do {
    const [next, batch] = (await redisPipeline(port, [['SCAN', cursor, 'COUNT', '1000']]))[0];
    cursor = next.toString();
    keys.push(...batch);
  } while (cursor !== '0');
  const types = await redisPipeline(port, keys.map((k) => ['TYPE', k]));
  const read = { string: (k) => ['GET', k], hash: (k) => ['HGETALL', k], list: (k) => ['LRANGE', k, 0, -1], set: (k) => ['SMEMBERS', k], zset: (k) => ['ZRANGE', k, 0, -1, 'WITHSCORES'], stream: (k) => ['XRANGE', k, '-', '+'] };
  const contents = await redisPipeline(port, keys.map((k, i) => (read[types[i]] || ((x) => ['DUMP', x]))(k)));
  const dumps = await redisPipeline(port, keys.map((k) => ['DUMP', k]));
  return keys.map((k, i) => ({ key: k, type: types[i], bytes: Buffer.concat([k, ...flat(contents[i]), ...flat(dumps[i])]) }));
}
