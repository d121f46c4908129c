// Benchmark: idle memory per connection.
//
// For each target, N idle connections of N distinct users (so the gateway holds one NATS
// interest per user), and the server's RSS growth per connection, read from
// /proc/<pid>/status VmRSS:
//   base      after start, a 200-connection warm-up, a full GC and a pause
//   settled   with N connections, once RSS has been stable (< 0.5% change over 2 s; max 20 s)
//   after GC  the same after a full GC in the server (preloaded gc-hook.ts, SIGUSR2)
// The JS heap's growth is read after each full GC: live objects ("JS heap"), and the blocks the
// heap holds ("heap blocks", its capacity): what the second has over the first is free space in
// blocks that one live object keeps, e.g. a socket's long-lived object amid its upgrade's garbage.
// Kernel memory is reported separately: /proc/meminfo Slab and /proc/net/sockstat deltas
// between base and settled. On loopback both ends of every connection live in this kernel,
// so "per connection" covers two sockets; noisy if anything else runs on the box.
//
// Targets (same run, alternating, --repeat times; medians printed):
//   wsgate        the gateway as started by scripts/start.sh, NATS mode, defaults (mailbox on)
//   wsgate-nomb   the same with WSGATE_MAILBOX=off
//   ref-bun       bare Bun.serve WebSockets that only hold sockets
//   ref-bun-nats  bare Bun.serve + one plain nats.js subscription per user
// Node-uWS (`bun scripts/bench/all.ts --only node-memory`, or --targets wsgate-node,ref-uws):
//   wsgate-node   the gateway on Node 20 + uWebSockets.js (scripts/start.sh node), NATS, mailbox on
//   ref-uws       bare uWebSockets.js on Node that only holds sockets (ref-uws.mjs)
//   Both run with --expose-gc and gc-hook-node.mjs, so "after GC" is a real full GC on Node too.
//
//   bun scripts/bench/idle-memory.ts [--conns 10000] [--repeat 3] [--targets wsgate,ref-bun]
import { parseArgs } from "node:util";
import {
  argInt, fmt, installCleanup, kernelStats, Loadgen, log, median, type Nats, runDir, type Server, sleep,
  startGateway, startNats, startRef, startRefUws, table, waitCatchups, waitMetrics, warnIfBusy,
} from "./lib.ts";

export const MEMORY_TARGETS = ["wsgate", "wsgate-nomb", "ref-bun", "ref-bun-nats"] as const;
export const NODE_MEMORY_TARGETS = ["wsgate-node", "ref-uws"] as const;
const ALL_TARGETS = [...MEMORY_TARGETS, ...NODE_MEMORY_TARGETS] as const;
type Target = (typeof ALL_TARGETS)[number];

export type MemoryOptions = { conns: number; repeat: number; workers: number; targets: Target[] };

type Run = {
  target: Target;
  open: number;
  openMs: number;
  base: number;
  settled: number;
  afterGc: number;
  settleS: number;
  heapBase: number | null;
  heapAfter: number | null;
  capBase: number | null;
  capAfter: number | null;
  slab: number;
  sockUsed: number;
  tcpMem: number;
  errors: Record<string, number>;
  closes: Record<string, number>;
};

const LABEL: Record<Target, string> = {
  wsgate: "wsgate (NATS, mailbox on)",
  "wsgate-nomb": "wsgate (NATS, mailbox off)",
  "ref-bun": "ref: bare Bun.serve",
  "ref-bun-nats": "ref: Bun.serve + nats.js sub/user",
  "wsgate-node": "wsgate on Node-uWS (NATS, mailbox on)",
  "ref-uws": "ref: bare uWS.js on Node",
};

async function startTarget(t: Target, nats: Nats): Promise<Server> {
  switch (t) {
    case "wsgate":
      return startGateway(t, nats.url);
    case "wsgate-nomb":
      return startGateway(t, nats.url, { WSGATE_MAILBOX: "off" });
    case "ref-bun":
      return startRef(t, "idle");
    case "ref-bun-nats":
      return startRef(t, "nats", nats.url);
    case "wsgate-node":
      return startGateway(t, nats.url, {}, { runtime: "node" });
    case "ref-uws":
      return startRefUws(t);
  }
}

/** Samples RSS until it changed by less than 0.5% over the last 2 s (at least 3 s, at most 20 s). */
async function settle(s: Server): Promise<{ rss: number; seconds: number }> {
  const t0 = Date.now();
  const samples: number[] = [];
  for (;;) {
    samples.push(s.rss());
    const n = samples.length;
    const elapsed = (Date.now() - t0) / 1000;
    if (elapsed >= 3 && n >= 5) {
      const a = samples[n - 5], b = samples[n - 1];
      if (Math.abs(b - a) / a < 0.005) return { rss: b, seconds: elapsed };
    }
    if (elapsed >= 20) return { rss: samples[n - 1], seconds: elapsed };
    await sleep(500);
  }
}

async function once(t: Target, nats: Nats, o: MemoryOptions, i: number): Promise<Run> {
  const s = await startTarget(t, nats);
  try {
    const usesNats = t !== "ref-bun" && t !== "ref-uws";
    // warm-up: code paths compiled, pools allocated, before the baseline
    const warm = Loadgen.start(`${t}-r${i}-warmup`, ["--url", s.wsUrl, "-n", "200", "--mode", "idle", "-d", "1", "--max-seconds", "60", "-q", "--user-prefix", "warm"]);
    await warm.done(60_000);
    await waitMetrics(s, (m) => m.wsgate_connections === 0, 10_000, "warm-up connections closed");
    await sleep(1000);
    const heap0 = await s.gc();
    await sleep(1000);
    const base = s.rss();
    const subs0 = usesNats ? await nats.subscriptions() : 0;
    const k0 = kernelStats();

    const lg = Loadgen.start(`${t}-r${i}-idle`, ["--url", s.wsUrl, "-n", String(o.conns), "-w", String(o.workers), "--mode", "idle", "-d", "0", "--max-seconds", "600", "-q"]);
    const ready = await lg.ready(180_000);
    const want = ready.open;
    await waitMetrics(s, (m) => m.wsgate_connections >= want, 20_000, `${want} connections`);
    if (usesNats) {
      await waitMetrics(s, (m) => m.wsgate_users >= want, 20_000, `${want} users`);
      // every user's interest reached the NATS server
      const until = Date.now() + 20_000;
      while ((await nats.subscriptions()) < subs0 + want && Date.now() < until) await sleep(200);
      await waitCatchups(s, want);
    }
    const st = await settle(s);
    const k1 = kernelStats();
    const heap1 = await s.gc();
    await sleep(1000);
    const afterGc = s.rss();
    const sum = await lg.stop();
    return {
      target: t,
      open: want,
      openMs: ready.ms,
      base,
      settled: st.rss,
      afterGc,
      settleS: st.seconds,
      heapBase: heap0?.heapSize ?? null,
      heapAfter: heap1?.heapSize ?? null,
      capBase: heap0?.heapCapacity ?? null,
      capAfter: heap1?.heapCapacity ?? null,
      slab: k1.slabBytes - k0.slabBytes,
      sockUsed: k1.sockUsed - k0.sockUsed,
      tcpMem: k1.tcpMemBytes - k0.tcpMemBytes,
      errors: sum.errors ?? {},
      closes: sum.closes ?? {},
    };
  } finally {
    await s.stop();
  }
}

export async function runIdleMemory(o: MemoryOptions) {
  installCleanup();
  log(`idle memory: ${o.conns} connections, targets ${o.targets.join(", ")}, ${o.repeat} run(s) each; logs in ${runDir()}`);
  await warnIfBusy("the idle-memory runs");
  const nats = await startNats();
  const runs: Run[] = [];
  try {
    for (let i = 1; i <= o.repeat; i++) {
      for (const t of o.targets) {
        const r = await once(t, nats, o, i);
        runs.push(r);
        const errs = Object.entries(r.errors).map(([k, v]) => `${k}=${v}`).join(" ");
        log(
          `  ${t} run ${i}: ${r.open} open in ${(r.openMs / 1000).toFixed(1)} s; RSS ${fmt(r.base / 1048576, 1)} → ${fmt(r.settled / 1048576, 1)} MiB settled (${r.settleS.toFixed(0)} s) → ${fmt(r.afterGc / 1048576, 1)} MiB after GC; ` +
            `${fmt((r.settled - r.base) / r.open)} B/conn settled, ${fmt((r.afterGc - r.base) / r.open)} B/conn after GC` +
            (errs ? `; client errors: ${errs}` : ""),
        );
      }
    }
  } finally {
    await nats.stop();
  }

  const rows: string[][] = [];
  const summary: Record<string, unknown> = {};
  // each target next to the bare server of its runtime, when that ran too
  const refOf = (t: Target): Target => ((NODE_MEMORY_TARGETS as readonly string[]).includes(t) ? "ref-uws" : "ref-bun");
  const gcOf = (t: Target) => median(runs.filter((r) => r.target === t).map((r) => (r.afterGc - r.base) / r.open));
  const settledOf = (t: Target) => median(runs.filter((r) => r.target === t).map((r) => (r.settled - r.base) / r.open));
  for (const t of o.targets) {
    const rs = runs.filter((r) => r.target === t);
    const per = (f: (r: Run) => number) => median(rs.map(f));
    const ref = refOf(t);
    const vsRef = o.targets.includes(ref) && ref !== t ? gcOf(t) / gcOf(ref) : NaN;
    const vsRefSettled = o.targets.includes(ref) && ref !== t ? settledOf(t) / settledOf(ref) : NaN;
    const settled = per((r) => (r.settled - r.base) / r.open);
    const gc = per((r) => (r.afterGc - r.base) / r.open);
    const heap = per((r) => (r.heapAfter !== null && r.heapBase !== null ? (r.heapAfter - r.heapBase) / r.open : NaN));
    const cap = per((r) => (r.capAfter !== null && r.capBase !== null ? (r.capAfter - r.capBase) / r.open : NaN));
    const slab = per((r) => r.slab / r.open);
    const tcpMem = per((r) => r.tcpMem / r.open);
    rows.push([
      LABEL[t],
      fmt(median(rs.map((r) => r.open))),
      fmt(settled),
      fmt(gc),
      Number.isFinite(vsRef) ? `${fmt(vsRef, 2)}× ${ref}` : "",
      rs.map((r) => fmt((r.afterGc - r.base) / r.open)).join(" / "),
      fmt(heap),
      fmt(cap),
      fmt(slab),
      fmt(slab / 2),
      fmt(tcpMem),
    ]);
    summary[t] = { bytesPerConnSettled: Math.round(settled), bytesPerConnAfterGc: Math.round(gc), vsRef: Number.isFinite(vsRef) ? { ref, afterGc: vsRef, settled: vsRefSettled } : null, heapPerConn: Math.round(heap), heapBlocksPerConn: Math.round(cap), kernelSlabPerConn: Math.round(slab), tcpMemPerConn: Math.round(tcpMem), runs: rs };
  }
  const node = o.targets.some((t) => (NODE_MEMORY_TARGETS as readonly string[]).includes(t));
  const out =
    `\nIdle memory per connection${node ? " on Node-uWS" : ""} (${o.conns} connections, distinct users; medians of ${o.repeat}; process RSS growth over the warmed-up baseline)\n` +
    table(["server", "open", "B/conn settled", "B/conn after GC", "after GC vs ref", "after GC, each run", "JS heap B/conn", "heap blocks B/conn", "kernel slab B/conn*", "≈ per socket", "tcp buf B/conn"], rows) +
    `\n* kernel: /proc/meminfo Slab delta per connection, both ends (client and server sockets are in this kernel); not in any RSS above.\n`;
  console.log(out);
  return summary;
}

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      conns: { type: "string", default: "10000" },
      repeat: { type: "string", default: "3" },
      workers: { type: "string" },
      targets: { type: "string", default: MEMORY_TARGETS.join(",") },
    },
  });
  const conns = argInt(v.conns, "conns", 1, 19_500, 10_000);
  const targets = v.targets!.split(",").map((s) => s.trim()) as Target[];
  for (const t of targets) if (!ALL_TARGETS.includes(t)) throw new Error(`unknown target ${t}; known: ${ALL_TARGETS.join(", ")}`);
  const t0 = Date.now();
  await runIdleMemory({ conns, repeat: argInt(v.repeat, "repeat", 1, 20, 3), workers: argInt(v.workers, "workers", 1, 16, Math.max(1, Math.ceil(conns / 10_000))), targets });
  log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  process.exit(0);
}
