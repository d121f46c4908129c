// A burst of upgrades leaves its garbage (requests, routing, identity, broker commands) in
// the same heap and allocator pages as the sockets' long-lived state, and a runtime that
// judges by heap growth may keep it for a long time: idle RSS after a 10,000-connection burst
// stayed well above what a collection brings it to (issue 16). One collection once the burst
// is over, not one per connection.
import { log } from "../ops/log.ts";

/** Connections opened since the last collection that make a burst. */
export const BURST = 1_000;
/** A burst is over once this long passes without a new connection. */
const QUIET_MS = 1_000;

export class BurstCollector {
  private count = 0;
  private atCheck = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    /** the runtime's full collection (Transport.collectGarbage); without one this does nothing */
    private readonly collect: (() => void) | undefined,
    private readonly connections: () => number,
    private readonly quietMs = QUIET_MS,
  ) {}

  opened() {
    if (!this.collect || ++this.count < BURST || this.timer) return;
    this.atCheck = this.count;
    this.timer = setTimeout(() => this.check(), this.quietMs);
  }

  private check() {
    if (this.count !== this.atCheck) {
      this.atCheck = this.count;
      this.timer = setTimeout(() => this.check(), this.quietMs);
      return;
    }
    this.timer = null;
    const opened = this.count;
    this.count = 0;
    const t0 = performance.now();
    this.collect!();
    log("info", "collected garbage after a burst of connections", { opened, connections: this.connections(), ms: Math.round(performance.now() - t0) });
  }

  stop() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
