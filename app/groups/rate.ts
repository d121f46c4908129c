// Broadcasts per second per service (WSGATE_MAX_BROADCASTS_PER_SEC): one token bucket per
// service, burst = one second's worth. Refilled from the clock when asked, no timers.

export class RateBuckets {
  private tokens = new Map<string, number>();
  private at = new Map<string, number>();

  /** `perSec` 0 = unlimited; `now` in milliseconds. */
  constructor(
    private readonly perSec: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Takes one token for `key`; false when its bucket is empty. */
  take(key: string): boolean {
    const rate = this.perSec;
    if (rate <= 0) return true;
    const t = this.now();
    const last = this.at.get(key);
    let tokens = last === undefined ? rate : Math.min(rate, this.tokens.get(key)! + ((t - last) * rate) / 1000);
    this.at.set(key, t);
    if (tokens < 1) {
      this.tokens.set(key, tokens);
      return false;
    }
    this.tokens.set(key, tokens - 1);
    return true;
  }

  /** Seconds until `key` has a token again (for Retry-After). */
  retryAfterS(key: string): number {
    const tokens = this.tokens.get(key) ?? this.perSec;
    return this.perSec > 0 ? Math.max(1, Math.ceil((1 - tokens) / this.perSec)) : 0;
  }
}
