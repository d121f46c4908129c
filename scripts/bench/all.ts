// `npm run bench`: every benchmark, each next to its reference measured in the same run.
//
//   bun scripts/bench/all.ts [--only NAME[,NAME...]] [options]
//
// Benchmarks (--only names), in the order they run, and their defaults (about 9 minutes in all):
//   memory          idle memory per connection on Bun vs bare Bun.serve (--conns 10000, --repeat 3)
//   fanout          NATS → clients fan-out vs a bare Bun server fed from NATS, and the gateway on a three-server
//                   cluster with replicas 3 (--fanout-conns 10000, --duration 10)
//   node-memory     idle memory on Node-uWS vs a bare uWS.js server (--node-conns 10000, --node-repeat 1)
//   mailbox-steady  per-user steady cost, mailbox on vs off (--steady-users 19000)
//   mailbox-storm   reconnect storm of users with a mailbox backlog vs the same storm with the
//                   mailbox off, and on a three-server cluster with replicas 3 (--storm-users 10000, --storm-backlog 20)
//   failover        a NATS server killed (-9) under a steady delivery: the pause per user, the
//                   stream's leaderless time, JetStream store rate 1 server vs 3 (200 users, ~45 s)
//   setup           upgrades per second and a reconnect storm vs bare Bun.serve (--setup-conns 10000)
//   inbound         clients → NATS vs a bare Bun server publishing to NATS (--inbound-conns 1000, --inbound-duration 5)
//   groups          one group of 10,000 members vs bare Bun.serve publishing to one native topic;
//                   bytes per membership (--groups-conns 10000, --groups-messages 200, --groups 10)
//   workers         WSGATE_WORKERS total memory per connection vs bare Bun.serve × N (--workers-conns 100000,
//                   --workers 6; ~45 s; --workers-conns 30000 --workers 3 for a quicker one)
//   redis           Redis beside NATS in one run: subscription cost, idle memory per user, fan-out and
//                   the 10,000-user mailbox storm (redis-subs.ts, redis-vs-nats.ts; ~1.5 min)
//   million         only when named (it loads the whole machine for up to 15 minutes): a million idle
//                   connections over WSGATE_WORKERS, load clients and nats-server on this box
//                   (--million-conns 1000000; see scripts/bench/million.ts)
//
//   --repeat    runs per target of memory and fanout (medians printed)
//
// Ports: $WSGATE_BENCH_PORTS / $WSGATE_BENCH_NATS_PORTS ("lo-hi") if set, else kernel-chosen.
// Logs of every process and results.json go to .tmp/bench/<time>/.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { FANOUT_TARGETS, runFanout } from "./fanout.ts";
import { MEMORY_TARGETS, NODE_MEMORY_TARGETS, runIdleMemory } from "./idle-memory.ts";
import { INBOUND_TARGETS, runInbound } from "./inbound.ts";
import { runMailboxSteady, STEADY_TARGETS } from "./mailbox-steady.ts";
import { runMailboxStorm, STORM_TARGETS } from "./mailbox-storm.ts";
import { runFailover } from "./failover.ts";
import { runSetup, SETUP_DEFAULT_TARGETS } from "./setup.ts";
import { printSummary } from "./summary.ts";
import { runWorkers, WORKERS_TARGETS } from "./workers.ts";
import { runMillion } from "./million.ts";
import { runGroups } from "./groups.ts";
import { argInt, installCleanup, log, ROOT, runDir } from "./lib.ts";

const NAMES = ["memory", "fanout", "node-memory", "mailbox-steady", "mailbox-storm", "failover", "setup", "inbound", "groups", "workers", "redis", "million"] as const;
type Name = (typeof NAMES)[number];

const { values: v } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    only: { type: "string" },
    conns: { type: "string", default: "10000" },
    "fanout-conns": { type: "string", default: "10000" },
    repeat: { type: "string", default: "3" },
    duration: { type: "string", default: "10" },
    "node-conns": { type: "string", default: "10000" },
    "node-repeat": { type: "string", default: "1" },
    "steady-users": { type: "string", default: "19000" },
    "storm-users": { type: "string", default: "10000" },
    "storm-backlog": { type: "string", default: "20" },
    "storm-timeout": { type: "string", default: "900" },
    "setup-conns": { type: "string", default: "10000" },
    "setup-jitter": { type: "string", default: "0" },
    "inbound-conns": { type: "string", default: "1000" },
    "inbound-duration": { type: "string", default: "5" },
    "workers-conns": { type: "string", default: "100000" },
    workers: { type: "string", default: "6" },
    "groups-conns": { type: "string", default: "10000" },
    "groups-messages": { type: "string", default: "200" },
    groups: { type: "string", default: "10" },
    "million-conns": { type: "string", default: "1000000" },
  },
});
const only = new Set<Name>();
for (const n of (v.only ?? "").split(",").map((s) => s.trim()).filter(Boolean)) {
  if (!(NAMES as readonly string[]).includes(n)) throw new Error(`--only takes a comma list of ${NAMES.join(", ")}`);
  only.add(n as Name);
}
const want = (n: Name) => only.has(n) || (only.size === 0 && n !== "million");
installCleanup();

// A hard stop for the whole suite: whatever hangs, every child is killed by PID on exit.
const HARD_LIMIT_S = 40 * 60;
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
const results: Record<string, unknown> = { startedAt: new Date().toISOString(), gitHead: head, uncommittedFilesInAppAdapters: dirty, bun: Bun.version, seconds: {} };
const seconds = results.seconds as Record<string, number>;
log(`wsgate benchmarks at ${head}${dirty ? ` + ${dirty} uncommitted file(s) in app/ adapters/` : ""}, Bun ${Bun.version}; logs and results in ${runDir()}`);

async function step(name: Name, run: () => Promise<unknown>) {
  if (!want(name)) return;
  const s = Date.now();
  try {
    results[name] = await run();
  } catch (e) {
    // one benchmark failing must not cost the others' figures
    log(`${name} failed: ${(e as Error).stack ?? e}`);
    results[name] = { error: String(e) };
  }
  seconds[name] = Math.round((Date.now() - s) / 1000);
  writeFileSync(join(runDir(), "results.json"), JSON.stringify(results, null, 2));
}

await step("memory", () => {
  const conns = argInt(v.conns, "conns", 1, 19_500, 10_000);
  return runIdleMemory({ conns, repeat, workers: Math.max(1, Math.ceil(conns / 10_000)), targets: [...MEMORY_TARGETS] });
});
await step("fanout", () =>
  runFanout({
    conns: argInt(v["fanout-conns"], "fanout-conns", 1, 19_500, 10_000),
    users: 1000,
    duration: argInt(v.duration, "duration", 1, 120, 10),
    repeat,
    workers: 2,
    size: 32,
    targets: [...FANOUT_TARGETS],
  }),
);
await step("node-memory", () => {
  const conns = argInt(v["node-conns"], "node-conns", 1, 19_500, 10_000);
  return runIdleMemory({ conns, repeat: argInt(v["node-repeat"], "node-repeat", 1, 10, 1), workers: Math.max(1, Math.ceil(conns / 10_000)), targets: [...NODE_MEMORY_TARGETS] });
});
await step("mailbox-steady", () => runMailboxSteady({ users: argInt(v["steady-users"], "steady-users", 1, 19_500, 19_000), repeat: 1, workers: 2, targets: [...STEADY_TARGETS] }));
await step("mailbox-storm", () =>
  runMailboxStorm({
    users: argInt(v["storm-users"], "storm-users", 1, 19_000, 10_000),
    backlog: argInt(v["storm-backlog"], "storm-backlog", 1, 1000, 20),
    size: 64,
    workers: 2,
    concurrency: 1000,
    timeoutS: argInt(v["storm-timeout"], "storm-timeout", 10, 3600, 900),
    targets: [...STORM_TARGETS],
  }),
);
await step("failover", () => runFailover({ users: 200, intervalMs: 100, steadyS: 5, window: 256, runs: 1 }));
await step("setup", () =>
  runSetup({
    conns: argInt(v["setup-conns"], "setup-conns", 1, 19_000, 10_000),
    workers: 2,
    concurrency: 250,
    jitter: argInt(v["setup-jitter"], "setup-jitter", 0, 60_000, 0),
    hold: 2,
    repeat: 1,
    targets: [...SETUP_DEFAULT_TARGETS],
  }),
);
await step("inbound", () =>
  runInbound({
    conns: argInt(v["inbound-conns"], "inbound-conns", 1, 19_000, 1000),
    duration: argInt(v["inbound-duration"], "inbound-duration", 1, 120, 5),
    repeat: 1,
    size: 32,
    workers: 1,
    rateMax: 1_000_000,
    window: 100_000,
    targets: [...INBOUND_TARGETS],
  }),
);
await step("groups", () =>
  runGroups({
    conns: argInt(v["groups-conns"], "groups-conns", 1, 19_000, 10_000),
    messages: argInt(v["groups-messages"], "groups-messages", 1, 100_000, 200),
    groups: argInt(v.groups, "groups", 1, 1_000, 10),
    workers: 1,
    repeat: 3,
    only: new Set(["fanout", "memory", "broadcast"]),
    runtimes: ["bun", "node"],
  }),
);
await step("workers", () =>
  runWorkers({ conns: argInt(v["workers-conns"], "workers-conns", 1, 1_000_000, 100_000), workers: argInt(v.workers, "workers", 1, 64, 6), targets: [...WORKERS_TARGETS] }),
);
await step("redis", async () => {
  // Each script starts its own servers and gateways and prints markdown rows.
  const rows: Record<string, string> = {};
  for (const script of ["redis-subs.ts", "redis-vs-nats.ts"]) {
    const p = Bun.spawn([process.execPath, join(ROOT, "scripts", "bench", script)], { stdout: "pipe", stderr: "ignore", env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` } });
    const out = await new Response(p.stdout).text();
    if ((await p.exited) !== 0) throw new Error(`${script} exited with ${p.exitCode}`);
    rows[script] = out.split("\n").filter((l) => l.startsWith("|") || l.startsWith("broker,")).join("\n");
    log(`${script}:\n${rows[script]}`);
  }
  return rows;
});
await step("million", () => {
  const conns = argInt(v["million-conns"], "million-conns", 1, 1_100_000, 1_000_000);
  return runMillion({ conns, workers: Math.ceil(conns / 18_500), chunk: 57_000, reserveGiB: 3, mailbox: false, reconnect: true, ref: true, sample: 2000, maxMinutes: 15 });
});
results.totalSeconds = Math.round((Date.now() - t0) / 1000);
writeFileSync(join(runDir(), "results.json"), JSON.stringify(results, null, 2));
printSummary(results);
log(`all benchmarks done in ${results.totalSeconds} s (${Object.entries(seconds).map(([k, s]) => `${k} ${s} s`).join(", ")}); results.json in ${runDir()}`);
process.exit(0);
