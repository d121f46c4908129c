// gc-hook.ts for Node: loaded by the benchmarks with NODE_OPTIONS="--expose-gc --import <this file>"
// (the gateway on Node-uWS, ref-uws.mjs). On SIGUSR2 it runs a full GC and writes the heap figures
// to $WSGATE_BENCH_HOOK_OUT.<pid>.json, in the Bun hook's shape. Node has no per-type object counts.
import { renameSync, writeFileSync } from "node:fs";
import { getHeapStatistics } from "node:v8";

const out = process.env.WSGATE_BENCH_HOOK_OUT;
if (out && typeof globalThis.gc === "function") {
  const file = `${out}.${process.pid}.json`;
  const gc = globalThis.gc;
  process.on("SIGUSR2", () => {
    // two passes: the first may only queue finalizers (weak references, FinalizationRegistry)
    gc();
    gc();
    const h = getHeapStatistics();
    const m = process.memoryUsage();
    writeFileSync(
      file + ".tmp",
      JSON.stringify({
        at: Date.now(),
        heapSize: h.used_heap_size,
        heapCapacity: h.total_heap_size,
        extraMemorySize: m.external,
        objectCount: 0,
        rss: m.rss,
        top: [],
      }),
    );
    renameSync(file + ".tmp", file);
  });
}
