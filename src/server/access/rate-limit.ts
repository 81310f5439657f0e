/**
 * Rate limits and sign-in backoff, and the key an address is counted under. Both entrances use
 * them — HTTP routes (sign-up, sign-in, link creation, connection checks) and signaling (knocks,
 * open sockets per address) — so they live in `access/`, not in either entrance.
 */
import { isIPv6 } from 'node:net';

/**
 * Fixed-window counters per key (an address, an account, a link). Small and
 * in-process on purpose: each node limits what reaches it.
 */
export class RateLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();
  private readonly sweep: NodeJS.Timeout;

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.sweep = setInterval(() => this.forgetExpired(), Math.max(windowMs, 1000));
    this.sweep.unref();
  }

  /** Count one attempt for `key`; false when the key is over its limit for this window. */
  take(key: string): boolean {
    const now = this.now();
    const w = this.windows.get(key);
    if (!w || now - w.start >= this.windowMs) {
      this.windows.set(key, { start: now, count: 1 });
      return true;
    }
    w.count += 1;
    return w.count <= this.limit;
  }

  /** Milliseconds until `key` may try again (0 when it may now); for `Retry-After`. */
  retryAfterMs(key: string): number {
    const w = this.windows.get(key);
    if (!w || w.count <= this.limit) return 0;
    return Math.max(0, w.start + this.windowMs - this.now());
  }

  private forgetExpired(): void {
    const now = this.now();
    for (const [key, w] of this.windows) if (now - w.start >= this.windowMs) this.windows.delete(key);
  }

  close(): void {
    clearInterval(this.sweep);
  }
}

export interface BackoffPolicy {
  /** Failures allowed before any waiting is imposed. */
  freeFailures: number;
  /** Wait after the first failure past the free ones; doubles with each further failure. */
  baseDelayMs: number;
  maxDelayMs: number;
}

/**
 * Slows down guessing: after `freeFailures` failed attempts for a key (a
 * username, an address), each further failure makes the key wait twice as
 * long before its next attempt, up to `maxDelayMs`. A success clears the key;
 * a key with no failure for `maxDelayMs` × 4 is forgotten.
 */
export class FailureBackoff {
  private readonly keys = new Map<string, { failures: number; blockedUntil: number; lastFailure: number }>();
  private readonly sweep: NodeJS.Timeout;

  constructor(
    readonly policy: BackoffPolicy,
    private readonly now: () => number = Date.now,
  ) {
    this.sweep = setInterval(() => this.forgetStale(), Math.max(policy.maxDelayMs, 1000));
    this.sweep.unref();
  }

  /** Milliseconds `key` must still wait before its next attempt (0: it may try now). */
  waitMs(key: string): number {
    const k = this.keys.get(key);
    return k ? Math.max(0, k.blockedUntil - this.now()) : 0;
  }

  failed(key: string): void {
    const now = this.now();
    const k = this.keys.get(key) ?? { failures: 0, blockedUntil: 0, lastFailure: now };
    k.failures += 1;
    k.lastFailure = now;
    const over = k.failures - this.policy.freeFailures;
    if (over > 0) {
      const delay = Math.min(this.policy.baseDelayMs * 2 ** Math.min(over - 1, 30), this.policy.maxDelayMs);
      k.blockedUntil = now + delay;
    }
    this.keys.set(key, k);
  }

  succeeded(key: string): void {
    this.keys.delete(key);
  }

  private forgetStale(): void {
    const now = this.now();
    const staleAfter = Math.max(this.policy.maxDelayMs * 4, 60_000);
    for (const [key, k] of this.keys) if (now - k.lastFailure >= staleAfter) this.keys.delete(key);
  }

  close(): void {
    clearInterval(this.sweep);
  }
}

/**
 * The key an address is counted under: an IPv4 address as is (also when written IPv4-mapped,
 * `::ffff:a.b.c.d`), an IPv6 address by its /64. One subscriber usually gets a whole /64, so
 * counting full IPv6 addresses would give each attacker 2⁶⁴ fresh budgets.
 */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  const [head = '', tail = ''] = address.split('%')[0]!.toLowerCase().split('::') as [string, string?];
  const left = head ? head.split(':') : [];
  const right = address.includes('::') && tail ? tail.split(':') : [];
  // An embedded IPv4 tail (…:1.2.3.4) lies past the first 64 bits; it only counts for length.
  const width = (groups: string[]) => groups.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0);
  const groups = address.includes('::') ? [...left, ...Array<string>(8 - width(left) - width(right)).fill('0'), ...right] : left;
  return groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':') + '::/64';
}
