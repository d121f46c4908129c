// Preloaded into the measured servers by the benchmarks (BUN_OPTIONS="--preload ..."), so that
// app/ and adapters/ stay untouched: on SIGUSR2 it runs a full GC and writes the heap figures
// to $WSGATE_BENCH_HOOK_OUT.<pid>.json (one file per process: WSGATE_WORKERS runs several).
// Idle-memory figures are taken both "settled" and "after GC". gc-hook-node.mjs is the same for Node.
import { heapStats } from "bun:jsc";
import { renameSync, writeFileSync } from "node:fs";

const out = process.env.WSGATE_BENCH_HOOK_OUT;
if (out) {
  const file = `${out}.${process.pid}.json`;
  process.on("SIGUSR2", () => {
    Bun.gc(true);
    const h = heapStats();
    const m = process.memoryUsage();
    const top = Object.entries(h.objectTypeCounts)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12);
    writeFileSync(
      file + ".tmp",
      JSON.stringify({
        at: Date.now(),
        heapSize: h.heapSize,
        heapCapacity: h.heapCapacity,
        extraMemorySize: h.extraMemorySize,
        objectCount: h.objectCount,
        rss: m.rss,
        top,
      }),
    );
    renameSync(file + ".tmp", file);
  });
}
