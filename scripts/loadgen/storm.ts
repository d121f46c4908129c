// Storm mode in a worker: one round drops every open connection and follows them back.
import { HB, hAdd, hSparse } from "./histogram.ts";
import type { StormRound } from "./messages.ts";
import type { Conn } from "./conn.ts";

export class Storm {
  private round: StormRound | null = null;
  private hist = new Uint32Array(HB);
  private pending = 0;
  private reported = false;

  constructor(private readonly report: (r: StormRound, done: boolean) => void) {}

  /** Round `r` drops connections at wall time `at`. */
  begin(r: number, at: number) {
    this.round = { round: r, at, dropped: 0, back: 0, failed: 0, lastBackAt: 0, hist: [] };
    this.hist = new Uint32Array(HB);
    this.pending = 0;
    this.reported = false;
  }

  dropped(c: Conn) {
    c.dropAt = this.round!.at;
    this.round!.dropped++;
    this.pending++;
  }

  /** A connection's handshake completed at `t`; counts if it was dropped this round. */
  back(c: Conn, t: number) {
    const r = this.round;
    if (!r || c.dropAt !== r.at) return;
    r.back++;
    this.pending--;
    r.lastBackAt = t;
    hAdd(this.hist, t - r.at);
    this.check();
  }

  /** A connection gave up; counts if it was dropped this round. */
  gaveUp(c: Conn) {
    const r = this.round;
    if (!r || c.dropAt !== r.at) return;
    r.failed++;
    this.pending--;
  }

  /** Reports the round once every dropped connection is back or given up. */
  check() {
    if (this.round && !this.reported && this.pending <= 0) {
      this.reported = true;
      this.round.hist = hSparse(this.hist);
      this.report(this.round, true);
    }
  }

  /** The parent stopped waiting for round `r`: report how far it got. */
  status(r: number) {
    if (this.round && this.round.round === r && !this.reported) {
      this.round.hist = hSparse(this.hist);
      this.report(this.round, false);
    }
  }
}
