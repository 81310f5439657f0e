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

  private forgetExpired(): void {
    const now = this.now();
    for (const [key, w] of this.windows) if (now - w.start >= this.windowMs) this.windows.delete(key);
  }

  close(): void {
    clearInterval(this.sweep);
  }
}
