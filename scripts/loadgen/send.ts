// Send mode in a worker: every 10 ms, the messages due (by --rate, or by the credit the
// parent granted under --window) go out, one frame built per tick and repeated.
import { encodeFrame } from "./codec.ts";
import { type Conn, S_OPEN, write } from "./conn.ts";
import { now, type WorkerConfig } from "./messages.ts";
import type { Recorder } from "./recorder.ts";

/** What the sender reads of its worker. */
export interface SendSource {
  readonly cfg: WorkerConfig;
  readonly conns: Conn[];
  readonly rec: Recorder;
  /** connections open now */
  readonly open: number;
  readonly finishing: boolean;
}

const enc = new TextEncoder();

export class Sender {
  private running = false;
  private credit = 0;
  /** --window: messages the parent has granted and this worker has not sent yet */
  private budget = 0;
  private cursor = 0;
  private lastTick = 0;

  constructor(private readonly w: SendSource) {}

  grant(n: number) {
    this.budget += n;
  }

  start() {
    this.running = true;
    this.lastTick = now();
    setInterval(() => this.tick(), 10);
  }

  stop() {
    this.running = false;
  }

  private tick() {
    const { cfg, conns, rec, open } = this.w;
    if (!this.running || this.w.finishing) return;
    const t = now();
    const dt = Math.min(1, (t - this.lastTick) / 1000);
    this.lastTick = t;
    if (open === 0) return;
    if (cfg.windowed) this.credit = this.budget; // closed loop: exactly what was granted
    else this.credit += cfg.rate * open * dt;
    if (!cfg.windowed && this.credit > cfg.rate * open) {
      // more than a second behind: do not burst to catch up, count what is skipped
      rec.ph.sendSkips += Math.floor(this.credit - cfg.rate * open);
      this.credit = cfg.rate * open;
    }
    if (this.credit < 1) return;
    const payload = new Uint8Array(cfg.size);
    payload.fill(120); // 'x'
    const ts = enc.encode(t.toFixed(3) + " ");
    payload.set(ts.subarray(0, Math.min(ts.length, payload.length)));
    const one = encodeFrame(cfg.binary ? 2 : 1, payload);
    const each = Math.floor(this.credit / open);
    if (each >= 1) {
      const k = each;
      const many = new Uint8Array(one.length * k);
      for (let i = 0; i < k; i++) many.set(one, i * one.length);
      for (const c of conns) {
        if (c.st !== S_OPEN) continue;
        if (c.out || !write(c, many)) {
          rec.ph.sendSkips += k;
          continue;
        }
        rec.sent(k, k * cfg.size);
        this.budget -= k;
      }
      this.credit -= each * open;
    }
    let r = Math.floor(this.credit);
    this.credit -= r;
    for (let scanned = 0; r > 0 && scanned < conns.length; scanned++) {
      const c = conns[this.cursor];
      this.cursor = (this.cursor + 1) % conns.length;
      if (c.st !== S_OPEN) continue;
      r--;
      if (c.out || !write(c, one)) {
        rec.ph.sendSkips++;
        continue;
      }
      rec.sent(1, cfg.size);
      this.budget--;
    }
  }
}
