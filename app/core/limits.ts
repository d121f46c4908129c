// Abuse limits that run on the hot paths. Per connection there is no closure or timer: the
// message-rate bucket is two small integers on the Conn (in its side object, from the first frame).
import type { Conn, Transport } from "./gateway.ts";

/**
 * Per-connection token bucket: `burst` frames at once, refilled by `rate` per second.
 * `now` is the gateway clock in whole seconds (Deadlines.now), so both fields stay small
 * integers and refilling needs no timer. Returns false when the frame is over the limit.
 */
export function takeMessage(conn: Conn, rate: number, burst: number, now: number): boolean {
  if (rate === 0) return true;
  let budget = conn.budget;
  if (conn.budgetAt !== now) {
    budget = Math.min(burst, budget + (now - conn.budgetAt) * rate);
    conn.budgetAt = now;
  }
  if (budget <= 0) return false;
  conn.budget = budget - 1;
  return true;
}

/** True when the socket's unsent bytes passed the limit (runtimes that cannot tell never are). */
export function overBuffer(transport: Transport, ws: unknown, max: number): boolean {
  return transport.buffered !== undefined && transport.buffered(ws) > max;
}

/**
 * Node-wide admission rate for upgrades, checked before any token is verified: a
 * reconnect storm or an upgrade flood costs a counter, not a signature check per request.
 */
export class RateGate {
  private tokens: number;
  private at = Date.now();

  constructor(private readonly perSec: number) {
    this.tokens = perSec;
  }

  take(): boolean {
    if (this.perSec === 0) return true;
    const now = Date.now();
    this.tokens = Math.min(this.perSec, this.tokens + ((now - this.at) * this.perSec) / 1000);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
