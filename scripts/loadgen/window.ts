// Send mode with --window: a closed loop. Credit is granted to the workers as the other
// end's counter (--feedback-url) reports arrivals, so at most --window messages are in
// flight and nothing piles up in socket buffers.
import type { ToWorker } from "./messages.ts";
import type { Options } from "./options.ts";
import type { WorkerPool } from "./pool.ts";

export type WindowStats = { granted: number; delivered: number; polls: number; pollErrors: number; stalls: number };

/** Starts the loop; returns its counters, which it keeps updating until `isStopped()`. */
export function grantLoop(o: Options, pool: WorkerPool, stopped: Promise<void>, isStopped: () => boolean, stop: (why: string) => void): WindowStats {
  const window = o.window;
  const stats: WindowStats = { granted: 0, delivered: 0, polls: 0, pollErrors: 0, stalls: 0 };
  async function feedback(): Promise<number> {
    const text = await (await fetch(o.feedbackUrl!)).text();
    const m = o.feedbackRe.exec(text);
    if (!m) throw new Error(`${o.feedbackMetric} not found at ${o.feedbackUrl}`);
    return Number(m[1]);
  }
  void (async () => {
    let base: number;
    try {
      base = await feedback();
    } catch (e) {
      console.error(`loadgen: feedback: ${(e as Error).message}`);
      stop("feedback-failed");
      return;
    }
    while (!isStopped()) {
      try {
        stats.delivered = (await feedback()) - base;
        stats.polls++;
      } catch {
        stats.pollErrors++;
        if (stats.pollErrors > 100 && stats.polls === 0) {
          stop("feedback-failed");
          return;
        }
      }
      const room = window - (stats.granted - stats.delivered);
      const l = pool.live();
      if (room >= Math.max(1, window / 20) && l.length > 0) {
        // split by how many connections each worker has open
        const opens = l.map((w) => Math.max(1, w.tick?.open ?? 1));
        const all = opens.reduce((a, b) => a + b, 0);
        let given = 0;
        l.forEach((w, i) => {
          const n = i === l.length - 1 ? room - given : Math.floor((room * opens[i]) / all);
          given += n;
          if (n > 0) {
            try {
              w.proc.send({ t: "credit", n } satisfies ToWorker);
            } catch {}
          }
        });
        stats.granted += room;
      } else if (room < window / 20) stats.stalls++;
      await Promise.race([Bun.sleep(2), stopped]);
    }
  })();
  return stats;
}
