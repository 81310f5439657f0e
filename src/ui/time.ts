/** Times as people say them, in their language: "5 minutes ago", "in 2 days", "waiting 1 min 20 s". */
import { relativeTime, t, unit } from './i18n/locale.js';

const UNITS: [Intl.RelativeTimeFormatUnit, number][] = [
  ['year', 365 * 86400_000],
  ['month', 30 * 86400_000],
  ['week', 7 * 86400_000],
  ['day', 86400_000],
  ['hour', 3600_000],
  ['minute', 60_000],
];

export function fromNow(at: number, now = Date.now()): string {
  const diff = at - now;
  for (const [u, ms] of UNITS) {
    if (Math.abs(diff) >= ms) return relativeTime().format(Math.round(diff / ms), u);
  }
  return diff < 0 ? t('time.justNow') : t('time.underAMinute');
}

/** A short duration for the lobby: "12 s", "3 min", "1 h 5 min". */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return unit('second').format(s);
  const m = Math.floor(s / 60);
  if (m < 60) return unit('minute').format(m);
  return `${unit('hour').format(Math.floor(m / 60))} ${unit('minute').format(m % 60)}`;
}
