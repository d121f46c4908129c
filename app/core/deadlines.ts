// Time-driven closes without a timer per connection: token expiry, and the cut of a
// socket whose peer never finished a close handshake. Connections due in the same
// second share one array; one interval runs only while any deadline is pending.
import type { Conn } from "./gateway.ts";
import { log } from "../ops/log.ts";

export class Deadlines {
  private readonly t0 = Date.now();
  private readonly buckets = new Map<number, Conn[]>();
  private swept = 0;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(private readonly onDue: (conn: Conn) => void) {}

  /** Seconds since this gateway started: small integers for the Conn fields. */
  now(): number {
    return ((Date.now() - this.t0) / 1000) | 0;
  }

  /** The gateway second at which an epoch time (a JWT exp) has passed. */
  fromEpoch(epochSeconds: number): number {
    return Math.max(1, Math.ceil(epochSeconds - this.t0 / 1000));
  }

  pending(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.length;
    return n;
  }

  /** Replaces the connection's deadline. */
  set(conn: Conn, at: number) {
    this.clear(conn);
    if (at <= this.swept) at = this.swept + 1;
    let bucket = this.buckets.get(at);
    if (!bucket) this.buckets.set(at, (bucket = []));
    conn.deadline = at;
    conn.slot = bucket.length;
    bucket.push(conn);
    if (!this.timer) this.timer = setInterval(() => this.sweep(), 1000);
  }

  clear(conn: Conn) {
    if (conn.slot < 0) return;
    const bucket = this.buckets.get(conn.deadline);
    if (bucket) {
      // Swap-remove keeps removal O(1); the moved connection learns its new slot.
      const last = bucket.pop()!;
      if (last !== conn) {
        bucket[conn.slot] = last;
        last.slot = conn.slot;
      }
      if (bucket.length === 0) this.buckets.delete(conn.deadline);
    }
    conn.slot = -1;
    conn.deadline = 0;
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private sweep() {
    const now = this.now();
    while (this.swept < now) {
      const s = ++this.swept;
      const due = this.buckets.get(s);
      if (!due) continue;
      this.buckets.delete(s);
      for (const c of due) {
        c.slot = -1;
        c.deadline = 0;
      }
      for (const c of due) {
        try {
          this.onDue(c);
        } catch (err) {
          // One socket's failure to close must not keep the others open.
          log("warn", "closing a socket at its deadline failed", { error: String(err) });
        }
      }
    }
    if (this.buckets.size === 0) this.stop();
  }
}
