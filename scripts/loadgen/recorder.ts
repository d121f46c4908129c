// A worker's counters: the current phase's (handed to the parent and reset at each phase
// mark) and the running totals its progress ticks report.
import { HB, hAdd, hSparse } from "./histogram.ts";
import { newPhase, type PhaseStats } from "./messages.ts";

export class Recorder {
  ph = newPhase();
  readonly cum = { recv: 0, sent: 0, counted: 0, errors: {} as Record<string, number> };
  private hsH = new Uint32Array(HB);
  private latH = new Uint32Array(HB);
  private nthH = new Uint32Array(HB);

  constructor(private readonly countTo: number) {}

  err(kind: string) {
    this.ph.errors[kind] = (this.ph.errors[kind] ?? 0) + 1;
    this.cum.errors[kind] = (this.cum.errors[kind] ?? 0) + 1;
  }

  close(kind: string) {
    this.ph.closes[kind] = (this.ph.closes[kind] ?? 0) + 1;
  }

  /** A handshake completed at `t` that started at `t0`. */
  opened(t0: number, t: number) {
    this.ph.opened++;
    this.ph.lastOpen = t;
    hAdd(this.hsH, t - t0);
  }

  /** A session (a first attempt or a storm's reconnect) started at `t`. */
  sessionStart(t: number) {
    if (this.ph.startMin === 0 || t < this.ph.startMin) this.ph.startMin = t;
  }

  sent(n: number, bytes: number) {
    this.ph.sentMsgs += n;
    this.cum.sent += n;
    this.ph.sentBytes += bytes;
  }

  /**
   * One data message of `len` bytes received at `t`; `ts` its leading timestamp (-1: none);
   * `got` how many this connection's session has received, this one included;
   * `tStart` when that session started.
   */
  message(got: number, tStart: number, len: number, ts: number, t: number) {
    const ph = this.ph;
    if (this.countTo > 0 && got === this.countTo) {
      ph.nthCount++;
      this.cum.counted++;
      hAdd(this.nthH, t - tStart);
      if (t > ph.nthLast) ph.nthLast = t;
    }
    ph.recvMsgs++;
    this.cum.recv++;
    ph.recvBytes += len;
    if (ph.firstRecv === 0) ph.firstRecv = t;
    ph.lastRecv = t;
    if (ts < 0) {
      ph.noTs++;
      return;
    }
    let lat = t - ts;
    if (lat < 0) {
      ph.negLat++;
      lat = 0;
    }
    ph.latCount++;
    ph.latSum += lat;
    if (lat < ph.latMin) ph.latMin = lat;
    if (lat > ph.latMax) ph.latMax = lat;
    hAdd(this.latH, lat);
  }

  /** The phase so far, with its histograms; counting starts afresh. */
  snapshot(): PhaseStats {
    const s = this.ph;
    s.hs = hSparse(this.hsH);
    s.lat = hSparse(this.latH);
    s.nth = hSparse(this.nthH);
    this.ph = newPhase();
    this.hsH = new Uint32Array(HB);
    this.latH = new Uint32Array(HB);
    this.nthH = new Uint32Array(HB);
    return s;
  }
}
