import { chromium } from 'playwright-core';
import { chromiumFlags, chromiumPath, shopPage, startEnv } from '/work/main/sdk-js/test/browser/harness.mjs';
const env = await startEnv();
const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumFlags });
try {
  for (const withSdk of [false, true, true]) {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const cdp = await ctx.newCDPSession(page);
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
    await cdp.send('Performance.enable', { timeDomain: 'threadTicks' });
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 100 });
    await cdp.send('Profiler.start');
    await page.goto(shopPage(env, { sdk: withSdk }));
    await page.waitForLoadState('networkidle');
    const { profile } = await cdp.send('Profiler.stop');
    const m = await cdp.send('Performance.getMetrics');
    const sd = m.metrics.find((x) => x.name === 'ScriptDuration').value * 1000;
    // self time per function
    const self = new Map();
    const dt = profile.timeDeltas; const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const counts = new Map();
    for (let i = 0; i < profile.samples.length; i++) counts.set(profile.samples[i], (counts.get(profile.samples[i]) || 0) + (dt[i + 1] || 0));
    for (const [id, us] of counts) {
      const n = byId.get(id); const f = n.callFrame;
      const key = `${f.functionName || '(anon)'} ${f.url.split('/').pop()}:${f.lineNumber}:${f.columnNumber}`;
      self.set(key, (self.get(key) || 0) + us);
    }
    const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, 14);
    console.log(`\n== sdk=${withSdk} ScriptDuration(threadTicks) ${sd.toFixed(1)} ms`);
    for (const [k, us] of top) console.log((us / 1000).toFixed(1).padStart(7), k);
    await ctx.close();
  }
} finally { await browser.close(); await env.stopAll(); }
