// The browser tests' world: a real redis-server, a real consentd with
// security on, a small static site serving the test pages and the built SDK
// (another origin, so the SDK calls consentd through CORS like a real site),
// and Debian's headless Chromium driven by playwright-core. Everything
// listens on 127.0.0.1 on ports picked free at run time, and everything is
// stopped by the caller's after() hook through stopAll().
//
// Run: npm run build && node --test test/browser/ (from sdk-js). Settings:
// CONSENTD_BIN, a consentd binary to use instead of building one per file;
// SDK_DIST, another build of the SDK; DEBUG_BROWSER=1, the pages' console.
// Screenshots go to sdk-js/test-results/.

import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const sdkDir = resolve(here, '../..');
export const repoDir = resolve(sdkDir, '..');
// SDK_DIST: test another build of the SDK (default: sdk-js/dist from npm run build).
export const distDir = process.env.SDK_DIST ? resolve(process.env.SDK_DIST) : join(sdkDir, 'dist');
export const demoDir = join(sdkDir, 'demo');
export const resultsDir = join(sdkDir, 'test-results');
export const axePath = join(sdkDir, 'node_modules/axe-core/axe.min.js');

// Debian's Chromium (apt-get install chromium; never a downloaded browser),
// headless without its sandbox (CI runs as root), and with nothing that
// reaches out on its own (QUIC, background networking, component updates,
// sync), so a test talks only to what the test started. Exported for
// bench/bench.mjs, which launches one browser for many contexts.
export const chromiumPath = '/usr/bin/chromium';
export const chromiumFlags = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** Waits until check() returns a truthy value (returned), or fails after ms. */
export async function waitFor(check, { ms = 10_000, every = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Waits for promise, but at most ms (a stuck stop must not hang the suite). */
function bounded(promise, ms) {
  let timer;
  const timeout = new Promise((r) => { timer = setTimeout(r, ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A TCP port free on 127.0.0.1 right now (the kernel picks it). */
export function freePort() {
  return new Promise((res, rej) => {
    const s = createTcpServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

function tcpPing(port) {
  return new Promise((res) => {
    const sock = connect(port, '127.0.0.1');
    let out = '';
    sock.setTimeout(500, () => { sock.destroy(); res(false); });
    sock.on('error', () => res(false));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      out += d;
      if (out.includes('\r\n')) { sock.destroy(); res(out.startsWith('+PONG')); }
    });
  });
}

/** A child process that stop() ends: SIGTERM, then SIGKILL after a grace. */
function child(cmd, args, opts, name) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let log = '';
  const keep = (d) => { log = (log + d).slice(-20_000); };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let spawnError = null;
  const exited = new Promise((r) => {
    proc.on('exit', (code, sig) => r({ code, sig }));
    proc.on('error', (e) => { spawnError = e; keep(`${name}: ${e.message}`); r({ error: e }); });
  });
  const dead = () => spawnError !== null || proc.exitCode !== null || proc.signalCode !== null;
  return {
    proc,
    exited,
    dead,
    log: () => log,
    async stop(signal = 'SIGTERM', graceMs = 3000) {
      if (dead()) return;
      proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

async function startRedis(dir) {
  const port = await freePort();
  const redis = child('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
  ], {}, 'redis-server');
  await waitFor(() => {
    if (redis.dead()) throw new Error(`redis-server exited: ${redis.log()}`);
    return tcpPing(port);
  }, { what: `redis-server on ${port}` });
  return { ...redis, port };
}

function consentdBinary(dir) {
  const bin = process.env.CONSENTD_BIN || join(dir, 'consentd');
  if (!process.env.CONSENTD_BIN) {
    execFileSync('go', ['build', '-o', bin, './server/cmd/consentd'], { cwd: repoDir, stdio: 'inherit' });
  }
  return bin;
}

function writeKeysFile(dir) {
  const file = join(dir, 'keys.yaml');
  const list = (kind) => `${kind}_keys:\n  - id: ${kind}1\n    secret: ${randomBytes(32).toString('base64')}\n`;
  writeFileSync(file, list('hmac') + list('encryption') + list('token'), { mode: 0o600 });
  return file;
}

/**
 * consentd with security on (subject tokens for the browser, one API key with
 * every scope to read back over the API), its listeners split as in
 * production: the browser and the SDK use the public listener (url,
 * --public-addr: no API keys, only what a browser needs, and the demo site
 * in demo mode); the test's own calls with the API key and the readiness
 * probe use the internal one (internalUrl, --http-addr). start() can be
 * called again after stop(): same ports, same keys, same Redis.
 */
async function makeConsentd({ dir, redisPort, siteOrigin, demo = false, args = [] }) {
  const bin = consentdBinary(dir);
  const httpPort = await freePort();
  const publicPort = await freePort();
  const grpcPort = await freePort();
  const apiKey = randomBytes(30).toString('base64url').slice(0, 40);
  const keysFile = writeKeysFile(dir);
  const url = `http://127.0.0.1:${publicPort}`;
  const internalUrl = `http://127.0.0.1:${httpPort}`;
  const svc = {
    url, internalUrl, httpPort, publicPort, apiKey, current: null,
    async start() {
      svc.current = child(bin, [
        '--redis-url', `redis://127.0.0.1:${redisPort}/0`,
        '--grpc-addr', `127.0.0.1:${grpcPort}`,
        '--http-addr', `127.0.0.1:${httpPort}`,
        '--public-addr', `127.0.0.1:${publicPort}`,
        '--keys-file', keysFile,
        ...(siteOrigin ? ['--cors-origins', siteOrigin] : []),
        '--rate-limit-ip', '0',
        '--log-format', 'text',
        '--shutdown-timeout', '1s', '--drain-delay', '0s', // no load balancer to drain
        ...(demo ? ['--demo', '--demo-site', sdkDir] : []),
        ...args,
      ], { env: { ...process.env, CONSENTD_API_KEY: apiKey } }, 'consentd');
      const c = svc.current;
      await waitFor(async () => {
        if (c.dead()) throw new Error(`consentd exited: ${c.log()}`);
        const r = await fetch(`${internalUrl}/readyz`, { signal: AbortSignal.timeout(500) });
        return r.status === 200;
      }, { ms: 15_000, what: `consentd /readyz on ${httpPort}` });
    },
    /** Stops consentd at once, like a crash or a network cut. */
    async stop() {
      if (svc.current) await svc.current.stop('SIGKILL');
    },
    /** GET /v1/subjects/{id}/consent over the API with the key; null on a connection error. */
    async consent(subjectId) {
      const r = await fetch(`${internalUrl}/v1/subjects/${encodeURIComponent(subjectId)}/consent`, {
        headers: { Authorization: `Bearer ${apiKey}` },
        signal: AbortSignal.timeout(2000),
      });
      if (r.status !== 200) throw new Error(`GET consent: ${r.status} ${await r.text()}`);
      return (await r.json()).consent;
    },
    /** The service's answer for one purpose: { allowed, reason, ... }. */
    async purpose(subjectId, purpose) {
      const c = await svc.consent(subjectId);
      return c.purposes.find((p) => p.purpose === purpose);
    },
  };
  await svc.start();
  return svc;
}

const contentTypes = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.map': 'application/json', '.json': 'application/json', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.txt': 'text/plain; charset=utf-8',
};

/**
 * The website: /sdk/ is sdk-js/dist, /demo/ is sdk-js/demo (its analytics
 * script and ad frame are the test fixtures too), and pages the tests add
 * with site.page(path, html, headers).
 */
async function startSite() {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const pages = new Map();
  const server = createServer((req, res) => {
    const path = new URL(req.url, origin).pathname;
    const page = pages.get(path);
    if (page) {
      res.writeHead(200, { 'Content-Type': contentTypes['.html'], 'Cache-Control': 'no-store', ...page.headers });
      res.end(page.html);
      return;
    }
    let file = null;
    for (const [prefix, root] of [['/sdk/', distDir], ['/demo/', demoDir]]) {
      if (path.startsWith(prefix)) {
        const f = normalize(join(root, decodeURIComponent(path.slice(prefix.length)) || 'index.html'));
        if (f.startsWith(root)) file = f;
      }
    }
    if (!file || !existsSync(file)) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'Content-Type': contentTypes[extname(file)] || 'application/octet-stream', 'Cache-Control': 'no-store' });
    res.end(readFileSync(file));
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return {
    origin,
    page(path, html, headers = {}) {
      pages.set(path, { html, headers });
      return origin + path;
    },
    /** Serves body at path with the content type of its extension. */
    file(path, body) {
      pages.set(path, { html: body, headers: { 'Content-Type': contentTypes[extname(path)] } });
      return origin + path;
    },
    stop: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

/**
 * Starts Redis, consentd and the test site. Call env.stopAll() in after().
 * With demo, consentd runs as make run starts it (--demo --demo-site) and
 * serves the demo itself, on its public listener: env.site.origin is
 * consentd's own public origin. args:
 * more consentd flags (e.g. another --policy, --gvl).
 */
export async function startEnv({ demo = false, args = [] } = {}) {
  if (!existsSync(join(distDir, 'consentd.iife.js'))) {
    throw new Error(`${distDir}/consentd.iife.js is missing: run npm run build in sdk-js first`);
  }
  if (!existsSync(chromiumPath)) throw new Error(`${chromiumPath} is missing: apt-get install -y chromium`);
  const dir = mkdtempSync(join(tmpdir(), 'consentd-browser-'));
  const stops = [];
  const env = {
    dir,
    async stopAll() {
      for (const s of stops.reverse()) {
        await bounded(s().catch(() => {}), 5000);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    const redis = await startRedis(dir);
    stops.push(() => redis.stop());
    const site = demo ? null : await startSite();
    if (site) stops.push(() => site.stop());
    const consentd = await makeConsentd({ dir, redisPort: redis.port, siteOrigin: site?.origin, demo, args });
    stops.push(() => consentd.stop());
    Object.assign(env, { redis, consentd, site: site || { origin: consentd.url } });
  } catch (e) {
    await env.stopAll();
    throw e;
  }
  return env;
}

/**
 * A fresh browser (its own user-data dir: no cookies, no storage) with one
 * page. Console errors and page errors are collected in page.problems, CSP
 * violations in the page's window.__cspViolations. DEBUG_BROWSER=1 prints
 * the console and every response.
 */
export async function openBrowser(env, { gpc = false, viewport = { width: 1100, height: 800 } } = {}) {
  const userDataDir = mkdtempSync(join(env.dir, 'chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath, headless: true, args: chromiumFlags, viewport,
  });
  context.setDefaultTimeout(10_000); // fail in seconds, not playwright's 30
  if (gpc) {
    await context.addInitScript(() => {
      Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true, configurable: true });
    });
  }
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`);
    });
  });
  const page = context.pages()[0] || await context.newPage();
  page.problems = [];
  page.on('console', (m) => {
    if (process.env.DEBUG_BROWSER) console.log(`[browser ${m.type()}] ${m.text()}`);
    if (m.type() === 'error') page.problems.push(`console: ${m.text()} (${m.location().url})`);
  });
  if (process.env.DEBUG_BROWSER) {
    page.on('requestfailed', (r) => console.log(`[request failed] ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
    page.on('response', (r) => console.log(`[response] ${r.status()} ${r.request().method()} ${r.url()}`));
  }
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  return { context, page, close: () => bounded(context.close(), 5000) };
}

/**
 * Calls consentd's REST API with the env's API key (every scope), as a
 * backend would, on the internal listener: { status, body }.
 */
export async function api(env, method, path, body) {
  const r = await fetch(env.consentd.internalUrl + path, {
    method,
    headers: { Authorization: `Bearer ${env.consentd.apiKey}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

/** The SDK's state as the page sees it (window.consentd.consent.get()). */
export function sdkState(page) {
  return page.evaluate(() => window.consentd.consent.get());
}

/** Waits until the SDK has a subject id (the visitor was minted) and returns it. */
export function subjectId(page) {
  return waitFor(() => page.evaluate(() => window.consentd?.consent.get().subjectId), { what: 'a subject id' });
}

export function cookies(page) {
  return page.evaluate(() => Object.fromEntries(document.cookie.split('; ').filter(Boolean).map((c) => c.split('='))));
}

export function screenshot(page, name) {
  mkdirSync(resultsDir, { recursive: true });
  return page.screenshot({ path: join(resultsDir, name) });
}

// A Google tag as a site would load it after the SDK: it pushes to dataLayer.
const tagScript = `window.dataLayer = window.dataLayer || [];
function gtag() { window.dataLayer.push(arguments); }
gtag('js', new Date());
gtag('config', 'G-TEST');
`;

/**
 * A shop page with the SDK as a site would add it: analytics script and ads
 * iframe gated by purpose, GCM on. With nonce, the page is served with a
 * strict CSP whose scripts need that nonce. sdk false: the same page
 * without the SDK's script tag (bench/bench.mjs); attrs: more attributes on
 * the SDK's script tag (data-button="right"); openLink false: the page has no
 * [data-consent-open] element of its own; body: more HTML at the end of the
 * body; name: a suffix for the page's path, needed with attrs, openLink or
 * body.
 */
export function shopPage(env, { region = 'DE', lang = 'en', nonce = null, gcm = true, sdk = true, attrs = '', openLink = true, body = '', name = '' } = {}) {
  const n = nonce ? ` nonce="${nonce}"` : '';
  const cookies = JSON.stringify({ analytics: ['_demo_analytics'], ads: ['_demo_ads*'] });
  const html = `<!doctype html>
<html lang="${lang}">
<head>
<meta charset="utf-8">
<title>Trail shoes review</title>
${sdk ? `<script${n} src="/sdk/consentd.iife.js" data-endpoint="${env.consentd.url}" data-region="${region}" data-lang="${lang}"${gcm ? ' data-gcm="true"' : ''} data-cookies='${cookies}'${attrs ? ' ' + attrs : ''}></script>
` : ''}<script${n} src="/fixtures/tag.js"></script>
</head>
<body>
<header><nav aria-label="Site"><a href="#article">Article</a></nav></header>
<main id="article">
<h1>Trail shoes review</h1>
<p>A fixture page for the browser tests.</p>
<p id="analytics-status">Analytics is off.</p>
<iframe id="ad" title="Advertisement" data-consent="ads" data-consent-src="/demo/ad.html" width="300" height="120"></iframe>
${openLink ? '<p><button type="button" data-consent-open>Privacy choices</button></p>\n' : ''}</main>
<script type="text/plain" data-consent="analytics"${n} src="/demo/analytics.js"></script>
<script type="text/plain" data-consent="analytics"${n}>window.inlineAnalyticsRan = true;</script>
${body}</body>
</html>`;
  const headers = nonce ? {
    'Content-Security-Policy': `default-src 'self'; script-src 'self' 'nonce-${nonce}'; style-src 'self'; `
      + `connect-src 'self' ${env.consentd.url}; frame-src 'self'; img-src 'self'`,
  } : {};
  env.site.file('/fixtures/tag.js', tagScript);
  const path = `/shop-${region}-${lang}${nonce ? '-csp' : ''}${gcm ? '-gcm' : ''}${sdk ? '' : '-nosdk'}${name ? '-' + name : ''}.html`;
  return env.site.page(path, html, headers);
}
