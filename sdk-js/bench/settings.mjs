// make bench-sdk's settings, from the environment (see bench.mjs), and the
// performance aims it reports against.

import { join, resolve } from 'node:path';
import { repoDir } from '../test/browser/harness.mjs';

export const RUNS = int('BENCH_SDK_RUNS', 7, 1);
export const RATE = int('BENCH_SDK_THROTTLE', 4, 1);
export const TIMEOUT_S = int('BENCH_SDK_TIMEOUT', 300, 10);
export const OUT = resolve(process.env.BENCH_SDK_OUT || join(repoDir, '.bench/sdk'));
export const WAIT_MS = 15_000; // any one thing a load waits for
export const IDLE_MS = 10_000; // network idle after it (Playwright: 500 ms without requests)

// The aims from the issue.
export const AIM_BANNER_OVER_BASELINE = 150;
export const AIM_SCRIPT_MS = 25;

function int(name, def, min) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    console.error(`bench-sdk: ${name}=${raw}: want an integer >= ${min}`);
    process.exit(2);
  }
  return n;
}
