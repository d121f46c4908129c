// Abuse limits that run on the hot paths. Per connection there is no closure or timer: the
// message-rate bucket is two small integers on the Conn (in its side object, from the first frame).
import type { Conn } from "./conn.ts";
import type { Transport } from "./transport.ts";
import type { Metrics } from "../ops/metrics.ts";
import { log } from "../ops/log.ts";

/** Keep this many descriptors free for NATS, listeners, logs and in-flight accepts. */
const FD_RESERVE = 64;

/** Which node-wide cap a new connection would pass, if any: the configured one, or the open-files limit. */
export function nodeFull(metrics: Metrics, maxConnections: number): "node_full" | "fd_limit" | null {
  if (metrics.connections >= maxConnections) return "node_full";
  if (metrics.openFilesLimit > 0 && metrics.connections >= metrics.openFilesLimit - FD_RESERVE) return "fd_limit";
  return null;
}

/**
 * Said once at start: a connection cap the process cannot reach would otherwise surprise
 * under load. Unset (`capSet` false), the cap simply is the limit less the reserve: only a
 * cap the operator asked for is worth a warning.
 */
export function warnOpenFiles(limit: number, maxConnections: number, capSet: boolean): void {
  if (limit > 0 && capSet && limit - FD_RESERVE < maxConnections) {
    log("warn", "open-files limit is below the connection cap; upgrades past it will be refused", {
      openFilesLimit: limit,
      maxConnections,
      effectiveCap: Math.max(0, limit - FD_RESERVE),
    });
  }
}

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
