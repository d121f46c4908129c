// The one retry schedule: every reconnect, stream read and relisten waits by it.

export type Backoff = { minMs: number; maxMs: number };

/** 250 ms doubling to 5 s: quick after a blip, gentle on a broker that is down for long. */
export const DEFAULT_BACKOFF: Backoff = { minMs: 250, maxMs: 5_000 };

/** Milliseconds to wait before retry number `attempt` (0 for the first retry). */
export function backoff(attempt: number, b: Backoff = DEFAULT_BACKOFF): number {
  return Math.min(b.minMs * 2 ** Math.min(attempt, 30), b.maxMs);
}
