// The bench's two kinds of run, each in a fresh browser profile: the page
// without the SDK (first visit, returning), and with it (first visit with
// "Accept all", returning, after a withdrawal made at the service).

import { WAIT_MS } from './settings.mjs';
import { markOf, measure, newProfile, states, waitEvents } from './page.mjs';

const t = (events, name) => markOf(name)(events)?.t ?? null;
const cost = (l) => ({ scriptMs: l.scriptMs, scriptWallMs: l.scriptWallMs, taskMs: l.taskMs, idle: l.idle, problems: l.problems });

async function withdraw(env, subjectId) {
  const r = await fetch(`${env.consentd.internalUrl}/v1/subjects/${encodeURIComponent(subjectId)}/consent:withdraw`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${env.consentd.apiKey}`, 'Content-Type': 'application/json' },
    body: '{}',
    signal: AbortSignal.timeout(5000),
  });
  const body = await r.json().catch(() => ({}));
  if (r.status !== 200) throw new Error(`POST consent:withdraw: ${r.status} ${JSON.stringify(body)}`);
  const analytics = body.consent.purposes.find((p) => p.purpose === 'analytics');
  if (analytics?.allowed) throw new Error('consent:withdraw left analytics allowed');
  return Number(body.consent.revision);
}

export async function baselineRun(browser, url) {
  const context = await newProfile(browser);
  try {
    const both = (events) => markOf('fcp')(events) && markOf('tag')(events);
    const first = await measure(context, url, { until: both, what: 'first contentful paint and the tag' });
    const returning = await measure(context, url, { until: both, what: 'first contentful paint and the tag' });
    const pick = (l) => ({ fcp: t(l.events, 'fcp'), tag: t(l.events, 'tag'), ...cost(l) });
    return { first: pick(first), returning: pick(returning) };
  } finally {
    await context.close().catch(() => {});
  }
}

export async function sdkRun(env, browser, url) {
  const context = await newProfile(browser);
  try {
    // First visit: the banner; then accept all (not measured) and wait
    // until the service stored it.
    const first = await measure(context, url, {
      until: (ev) => markOf('banner')(ev) || markOf('bannerFrame')(ev),
      what: 'the banner to be painted',
      async after(page, load) {
        await page.click('[data-consent-banner] [data-consent-action="accept-all"]', { timeout: 5000 }).catch(async () => {
          await page.evaluate(() => window.consentd.consent.acceptAll('banner'));
        });
        const stored = await waitEvents(load, (ev) => states(ev).find((s) => s.analytics && !s.pending && s.revision > 0),
          WAIT_MS, 'accept all to be stored');
        await waitEvents(load, markOf('tag'), WAIT_MS, 'the tag to run after accept all');
        return { subjectId: stored.subjectId };
      },
    });
    // Returning visitor: grants in the cookie.
    const returning = await measure(context, url, { until: markOf('tag'), what: 'the granted tag to run' });
    // Withdrawn at the service (another device, the site's backend).
    const revision = await withdraw(env, first.subjectId);
    const answered = (ev) => states(ev).find((s) => s.revision >= revision && !s.analytics);
    const withdrawn = await measure(context, url, {
      until: answered,
      what: `the SDK's answer after the withdrawal (revision ${revision}, analytics denied)`,
      async after(page) {
        return { gatedRan: await page.evaluate(() => Boolean(window.demoAnalytics || window.inlineAnalyticsRan)) };
      },
    });
    const confirmedAt = (ev) => states(ev).find((s) => s.confirmed === true)?.t ?? null;
    return {
      first: {
        banner: t(first.events, 'banner') ?? t(first.events, 'bannerFrame'),
        bannerBy: t(first.events, 'banner') !== null ? 'element timing' : 'animation frame',
        bannerFrame: t(first.events, 'bannerFrame'),
        fcp: t(first.events, 'fcp'),
        answer: confirmedAt(first.events),
        ...cost(first),
      },
      returning: {
        tag: t(returning.events, 'tag'),
        answer: confirmedAt(returning.events),
        fcp: t(returning.events, 'fcp'),
        ...cost(returning),
      },
      withdrawn: {
        revision,
        answer: answered(withdrawn.events).t,
        tagRan: t(withdrawn.events, 'tag') !== null,
        tag: t(withdrawn.events, 'tag'),
        otherGatedRan: withdrawn.gatedRan,
        fcp: t(withdrawn.events, 'fcp'),
        ...cost(withdrawn),
      },
    };
  } finally {
    await context.close().catch(() => {});
  }
}
