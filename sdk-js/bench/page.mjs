// One measured page load: the instrumentation every document gets, the
// events it reports over a CDP binding, and measure(), which loads a page
// throttled and reads its main-thread metrics.

import { IDLE_MS, RATE, WAIT_MS } from './settings.mjs';

// Runs in every document before its own scripts. Reports through a CDP
// binding (Runtime.addBinding: no console message, no stack trace), so
// nothing polls the page from outside while it is measured.
function instrument() {
  const marks = {};
  const send = (m) => {
    if (typeof window.__benchSignal === 'function') window.__benchSignal(JSON.stringify(m));
  };
  const mark = (name, t) => {
    if (name in marks) return;
    marks[name] = t === undefined ? performance.now() : t;
    send({ name, t: marks[name] });
  };
  window.__benchMark = mark;
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.name === 'first-contentful-paint') mark('fcp', e.startTime);
    }).observe({ type: 'paint', buffered: true });
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.identifier === 'consentd-banner') mark('banner', e.renderTime || e.loadTime);
    }).observe({ type: 'element', buffered: true });
  } catch (e) {
    send({ name: 'error', message: String(e) });
  }
  // Element Timing reports elements carrying elementtiming when first
  // painted; the banner is added hidden, so marking it on insertion is in
  // time. bannerFrame (the animation frame after it lost its hidden
  // ancestors) is the fallback where Element Timing reports nothing. Cheap
  // on purpose (it runs on the measured main thread): one querySelector per
  // batch of mutations until the banner is there, then only [hidden] changes,
  // and no style or layout is forced.
  let banner = null;
  let framed = false;
  const observer = new MutationObserver(() => {
    if (!banner) {
      banner = document.querySelector('[data-consent-banner]');
      if (!banner) return;
      for (const el of [banner, ...banner.querySelectorAll('*')]) el.setAttribute('elementtiming', 'consentd-banner');
      observer.disconnect();
      observer.observe(document, { subtree: true, attributes: true, attributeFilter: ['hidden'] });
    }
    if (!framed && banner.isConnected && !banner.closest('[hidden]')) {
      framed = true;
      requestAnimationFrame(() => mark('bannerFrame'));
    }
  });
  observer.observe(document, { childList: true, subtree: true });
  // The SDK's public object, window.consentd = { consent, ui }: its state on
  // every change.
  let sdk;
  Object.defineProperty(window, 'consentd', {
    configurable: true,
    enumerable: true,
    get: () => sdk,
    set(value) {
      sdk = value;
      const consent = value?.consent;
      if (!consent || typeof consent.get !== 'function') return;
      const report = (s) => send({
        name: 'state', t: performance.now(), subjectId: s.subjectId, revision: s.revision,
        analytics: !!s.purposes.analytics?.allowed, has: consent.has('analytics'),
        confirmed: s.confirmed, pending: s.pending, needsPrompt: s.needsPrompt.length,
      });
      report(consent.get());
      consent.on('change', (e) => report(e.state));
    },
  });
}

// The tag: records when it runs.
export const tagCode = "window.__benchMark && window.__benchMark('tag', performance.now());";

/** Waits for pred(events) to be truthy (returned); rejects after ms. */
export function waitEvents(load, pred, ms, what) {
  return new Promise((resolve_, reject) => {
    const check = () => {
      let v;
      try {
        v = pred(load.events);
      } catch (e) {
        done(); reject(e); return;
      }
      if (v) { done(); resolve_(v); }
    };
    const timer = setTimeout(() => { done(); reject(new Error(`timed out after ${ms} ms waiting for ${what}`)); }, ms);
    const done = () => { clearTimeout(timer); load.waiters.delete(check); };
    load.waiters.add(check);
    check();
  });
}

export const markOf = (name) => (events) => events.find((e) => e.name === name);
export const states = (events) => events.filter((e) => e.name === 'state');

/**
 * One measured load: a new tab in context, throttled, navigated to url;
 * waits for until(events), then for the network to be idle, then reads the
 * metrics. after(page, load) runs after the measurement (not measured).
 */
export async function measure(context, url, { until, what, after }) {
  const page = await context.newPage();
  const load = { events: [], waiters: new Set(), problems: [] };
  page.on('console', (m) => {
    if (m.type() === 'error') load.problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => load.problems.push(`page error: ${e.message}`));
  try {
    // Two sessions: Performance metrics come in one time domain per session.
    const cdp = await context.newCDPSession(page);
    const wall = await context.newCDPSession(page);
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: RATE });
    await cdp.send('Performance.enable', { timeDomain: 'threadTicks' });
    await wall.send('Performance.enable', { timeDomain: 'timeTicks' });
    cdp.on('Runtime.bindingCalled', (e) => {
      if (e.name !== '__benchSignal') return;
      load.events.push(JSON.parse(e.payload));
      for (const w of [...load.waiters]) w();
    });
    await cdp.send('Runtime.enable');
    await cdp.send('Runtime.addBinding', { name: '__benchSignal' });
    await page.goto(url, { waitUntil: 'load', timeout: WAIT_MS });
    await waitEvents(load, until, WAIT_MS, what);
    const idle = await page.waitForLoadState('networkidle', { timeout: IDLE_MS }).then(() => true, () => false);
    const metrics = async (session) => Object.fromEntries((await session.send('Performance.getMetrics')).metrics.map((x) => [x.name, x.value]));
    const [m, w] = await Promise.all([metrics(cdp), metrics(wall)]);
    const result = {
      scriptMs: m.ScriptDuration * 1000,
      scriptWallMs: w.ScriptDuration * 1000,
      taskMs: m.TaskDuration * 1000,
      idle,
      events: [...load.events],
      problems: load.problems,
    };
    if (after) Object.assign(result, await after(page, load));
    return result;
  } finally {
    await page.close().catch(() => {});
  }
}

export async function newProfile(browser) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  context.setDefaultTimeout(WAIT_MS);
  await context.addInitScript(instrument);
  return context;
}
