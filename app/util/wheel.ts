// Timeouts for many small things without a timer each: items due in the same tick share one
// array, removal is O(1) (swap with the last), and one interval runs only while any is pending.
// Used for socket deadlines (1 s ticks) and request/reply timeouts (25 ms ticks).
import { log } from "../ops/log.ts";

/** What an item carries so the wheel can find it again: no map lookup per item. */
export interface WheelItem {
  /** the tick it is due at; 0 = not in the wheel */
  tick: number;
  /** its index in that tick's array; -1 = none */
  slot: number;
}

export class TimerWheel<T extends WheelItem> {
  private readonly origin = Date.now();
  private readonly buckets = new Map<number, T[]>();
  private swept = 0;
  private timer: ReturnType<typeof setInterval> | null = null;

  /** `what` names the job in the log line when one item's handler throws. */
  constructor(
    private readonly tickMs: number,
    private readonly onDue: (item: T) => void,
    private readonly what: string,
  ) {}

  /** Ticks since the wheel was made: small integers, cheap to keep on every item. */
  now(): number {
    return Math.floor((Date.now() - this.origin) / this.tickMs);
  }

  /** The first tick at or after a wall-clock time in ms since the epoch. */
  tickAt(epochMs: number): number {
    return Math.max(1, Math.ceil((epochMs - this.origin) / this.tickMs));
  }

  pending(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.length;
    return n;
  }

  /** Files the item at `tick` (the next tick if that one is already swept), replacing where it was. */
  add(item: T, tick: number): void {
    this.remove(item);
    if (!this.timer) {
      // Nothing was pending: no bucket lies behind now, so sweeping can start here.
      this.swept = Math.max(this.swept, this.now());
      this.timer = setInterval(() => this.sweep(), this.tickMs);
    }
    if (tick <= this.swept) tick = this.swept + 1;
    let bucket = this.buckets.get(tick);
    if (!bucket) this.buckets.set(tick, (bucket = []));
    item.tick = tick;
    item.slot = bucket.length;
    bucket.push(item);
  }

  remove(item: T): void {
    if (item.slot < 0) return;
    const bucket = this.buckets.get(item.tick);
    if (bucket && bucket[item.slot] === item) {
      const last = bucket.pop()!;
      if (last !== item) {
        bucket[item.slot] = last;
        last.slot = item.slot;
      }
      if (bucket.length === 0) this.buckets.delete(item.tick);
    }
    item.slot = -1;
    item.tick = 0;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private sweep(): void {
    const now = this.now();
    while (this.swept < now) {
      const s = ++this.swept;
      const due = this.buckets.get(s);
      if (!due) continue;
      // One at a time from the live array: a handler that removes another due item removes it for real.
      while (due.length > 0) {
        const item = due.pop()!;
        item.slot = -1;
        item.tick = 0;
        try {
          this.onDue(item);
        } catch (err) {
          // One item's failure must not keep the others waiting.
          log("warn", `${this.what} failed`, { error: String(err) });
        }
      }
      this.buckets.delete(s);
    }
    if (this.buckets.size === 0) this.stop();
  }
}
