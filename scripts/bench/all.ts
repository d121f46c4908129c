// `npm run bench`: every benchmark, each next to its reference measured in the same run.
//
//   bun scripts/bench/all.ts [--only memory|fanout] [--conns 10000] [--repeat 3] [--duration 10]
//
//   --conns     idle-memory connection count (19000 works: one process holds ~19,500 sockets)
//   --repeat    runs per target (medians printed)
//   --duration  seconds per fan-out run
//
// Ports: $WSGATE_BENCH_PORTS / $WSGATE_BENCH_NATS_PORTS ("lo-hi") if set, else kernel-chosen.
// Logs of every process and results.json go to .tmp/bench/<time>/. Takes about 5 minutes.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { FANOUT_TARGETS, runFanout } from "./fanout.ts";
import { MEMORY_TARGETS, runIdleMemory } from "./idle-memory.ts";
import { argInt, installCleanup, log, ROOT, runDir } from "./lib.ts";

const { values: v } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    only: { type: "string" },
    conns: { type: "string", default: "10000" },
    "fanout-conns": { type: "string", default: "10000" },
    repeat: { type: "string", default: "3" },
    duration: { type: "string", default: "10" },
  },
});
if (v.only && v.only !== "memory" && v.only !== "fanout") throw new Error("--only must be memory or fanout");
installCleanup();

// A hard stop for the whole suite: whatever hangs, every child is killed by PID on exit.
const HARD_LIMIT_S = 15 * 60;
setTimeout(() => {
  log(`suite exceeded ${HARD_LIMIT_S} s; stopping`);
  process.exit(3);
}, HARD_LIMIT_S * 1000).unref();

const t0 = Date.now();
const repeat = argInt(v.repeat, "repeat", 1, 10, 3);
// The code under test moves: record which gateway these figures belong to.
const git = (...a: string[]) => {
  const r = Bun.spawnSync({ cmd: ["git", ...a], cwd: ROOT, stderr: "ignore" });
  return r.success ? r.stdout.toString().trim() : "";
};
const head = git("rev-parse", "--short", "HEAD") || "unknown";
const dirty = git("status", "--porcelain", "--", "app", "adapters").split("\n").filter(Boolean).length;
const results: Record<string, unknown> = { startedAt: new Date().toISOString(), gitHead: head, uncommittedFilesInAppAdapters: dirty, bun: Bun.version };
log(`wsgate benchmarks at ${head}${dirty ? ` + ${dirty} uncommitted file(s) in app/ adapters/` : ""}, Bun ${Bun.version}; logs and results in ${runDir()}`);

if (!v.only || v.only === "memory") {
  const conns = argInt(v.conns, "conns", 1, 19_500, 10_000);
  results.idleMemory = await runIdleMemory({ conns, repeat, workers: Math.max(1, Math.ceil(conns / 10_000)), targets: [...MEMORY_TARGETS] });
}
if (!v.only || v.only === "fanout") {
  results.fanout = await runFanout({
    conns: argInt(v["fanout-conns"], "fanout-conns", 1, 19_500, 10_000),
    users: 1000,
    duration: argInt(v.duration, "duration", 1, 120, 10),
    repeat,
    workers: 2,
    size: 32,
    targets: [...FANOUT_TARGETS],
  });
}
results.seconds = Math.round((Date.now() - t0) / 1000);
writeFileSync(join(runDir(), "results.json"), JSON.stringify(results, null, 2));
log(`all benchmarks done in ${results.seconds} s; results.json in ${runDir()}`);
process.exit(0);
