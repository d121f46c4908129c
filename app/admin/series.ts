// The overview's charts: this node's counters sampled once a second into fixed-size rings,
// so the console shows the last minutes from the moment it is opened and memory stays
// bounded however long the node runs.
import type { Metrics, RefusalReason } from "../ops/metrics.ts";

/** Ten minutes at one sample a second. */
export const SERIES_SECONDS = 600;

/** One second of this node: the connection gauge and per-second rates of the counters. */
export type Sample = { t: number; connections: number; msgsIn: number; msgsOut: number; refused: number };

/** Upgrade refusals of one reason within one sample: the events tail shows them. */
export type RefusalBurst = { reason: RefusalReason; count: number };

const COLUMNS = ["connections", "msgsIn", "msgsOut", "refused"] as const;

export class Series {
  private readonly t: Float64Array;
  private readonly cols: Record<(typeof COLUMNS)[number], Float64Array>;
  private head = 0;
  private count = 0;
  private prev: { at: number; in: number; out: number; refused: Record<string, number> } | null = null;

  constructor(
    private readonly metrics: Metrics,
    readonly size = SERIES_SECONDS,
  ) {
    this.t = new Float64Array(size);
    this.cols = { connections: new Float64Array(size), msgsIn: new Float64Array(size), msgsOut: new Float64Array(size), refused: new Float64Array(size) };
  }

  /** Takes one sample; returns it with the refusals by reason since the previous one. */
  sample(now: number): { sample: Sample; refusals: RefusalBurst[] } {
    const m = this.metrics;
    const refused = { ...m.refused };
    const prev = this.prev ?? { at: now - 1000, in: m.messagesIn, out: m.messagesOut, refused };
    const dt = Math.max(0.001, (now - prev.at) / 1000);
    const refusals: RefusalBurst[] = [];
    let refusedTotal = 0;
    for (const reason of Object.keys(refused) as RefusalReason[]) {
      const n = refused[reason] - (prev.refused[reason] ?? 0);
      if (n > 0) {
        refusals.push({ reason, count: n });
        refusedTotal += n;
      }
    }
    const sample: Sample = {
      t: Math.round(now / 1000),
      connections: m.connections,
      msgsIn: round2((m.messagesIn - prev.in) / dt),
      msgsOut: round2((m.messagesOut - prev.out) / dt),
      refused: round2(refusedTotal / dt),
    };
    this.prev = { at: now, in: m.messagesIn, out: m.messagesOut, refused };
    this.t[this.head] = sample.t;
    for (const c of COLUMNS) this.cols[c][this.head] = sample[c];
    this.head = (this.head + 1) % this.size;
    this.count = Math.min(this.count + 1, this.size);
    return { sample, refusals };
  }

  /** Oldest first, as columns (the shape uPlot draws). */
  columns(): { t: number[] } & Record<(typeof COLUMNS)[number], number[]> {
    const start = (this.head - this.count + this.size) % this.size;
    const pick = (a: Float64Array) => {
      const out = new Array<number>(this.count);
      for (let i = 0; i < this.count; i++) out[i] = a[(start + i) % this.size];
      return out;
    };
    return { t: pick(this.t), connections: pick(this.cols.connections), msgsIn: pick(this.cols.msgsIn), msgsOut: pick(this.cols.msgsOut), refused: pick(this.cols.refused) };
  }
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
