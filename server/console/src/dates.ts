// UTC days as the API counts them (YYYY-MM-DD), and business days for the
// feed consumers' deadline.

const DAY = 86_400_000;

export const isoDay = (t: number) => new Date(t).toISOString().slice(0, 10);
export const dayMs = (day: string) => Date.parse(day + "T00:00:00Z");
export const today = () => isoDay(Date.now());
export const addDays = (day: string, n: number) => isoDay(dayMs(day) + n * DAY);
/** Days from start to end inclusive; NaN if either is not a day. */
export const spanDays = (start: string, end: string) => Math.round((dayMs(end) - dayMs(start)) / DAY) + 1;

/**
 * Business days (Monday to Friday, UTC) that have begun since `from` up to
 * `now`: days after the day of `from`, up to and including today. An
 * opt-out made on a Friday is 1 business day old on Monday.
 */
export function businessDaysSince(from: number, now: number): number {
  let n = 0;
  const start = dayMs(isoDay(from));
  const end = dayMs(isoDay(now));
  for (let t = start + DAY; t <= end; t += DAY) {
    const wd = new Date(t).getUTCDay();
    if (wd !== 0 && wd !== 6) n++;
  }
  return n;
}

export const formatTime = (iso: string | undefined) => (iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/Z$/, " UTC") : "");
