// Send mode in a worker: every 10 ms, the messages due (by --rate, or by the credit the
// parent granted under --window) go out, one frame built per tick and repeated. Each payload
// is "<send time ms> <sequence> xxx...": the sequence counts this connection's frames from 1
// (10 digits, written into the masked frame per connection), so a subscriber can tell a lost,
// repeated or reordered frame (scripts/bench/subscriber.ts); payloads too small for it carry
// the time alone.
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
const SEQ_DIGITS = 10;

/** Writes `seq` as SEQ_DIGITS decimal digits at `at` in a masked frame whose payload starts at `p`. */
function stampSeq(f: Uint8Array, p: number, at: number, seq: number) {
  let n = seq;
  for (let d = SEQ_DIGITS - 1; d >= 0; d--) {
    const i = at + d;
    f[i] = (48 + (n % 10)) ^ f[p - 4 + ((i - p) & 3)];
    n = Math.floor(n / 10);
  }
}

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
    const numbered = ts.length + SEQ_DIGITS + 1 <= cfg.size;
    if (numbered) payload[ts.length + SEQ_DIGITS] = 32;
    const one = encodeFrame(cfg.binary ? 2 : 1, payload);
    const p = one.length - payload.length; // where the payload starts, after the mask
    const seqAt = p + ts.length;
    const each = Math.floor(this.credit / open);
    if (each >= 1) {
      const k = each;
      const many = new Uint8Array(one.length * k);
      for (let i = 0; i < k; i++) many.set(one, i * one.length);
      for (const c of conns) {
        if (c.st !== S_OPEN) continue;
        if (numbered) for (let i = 0; i < k; i++) stampSeq(many, i * one.length + p, i * one.length + seqAt, c.seq + 1 + i);
        if (c.out || !write(c, many)) {
          rec.ph.sendSkips += k;
          continue;
        }
        if (numbered) c.seq += k;
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
      if (numbered) stampSeq(one, p, seqAt, c.seq + 1);
      if (c.out || !write(c, one)) {
        rec.ph.sendSkips++;
        continue;
      }
      if (numbered) c.seq++;
      rec.sent(1, cfg.size);
      this.budget--;
    }
  }
}
