// Benchmark: many processes (issue 6 #2): WSGATE_WORKERS gateway processes on one port
// (SO_REUSEPORT, started by scripts/start.sh) holding --conns idle connections of distinct users,
// and their total memory per connection, next to the same number of bare Bun.serve processes
// sharing a port the same way.
//
// Per target: a warm-up of 200 connections per process, a full GC of every process and a
// pause (base = the sum of their RSS); then --conns connections from one load client spread
// over ceil(conns / 16,000) processes and over source addresses 127.A.B.2, .3, ... (1,000
// connections each); once every user's NATS interest is registered and the catch-ups are done,
// the sum of the processes' RSS when stable (settled) and after a full GC in each.
// Figure: (sum of RSS − sum of base) / connections. The kernel's socket memory (both ends on
// this box) is reported apart, from /proc/meminfo Slab.
//
// A process holds at most its open-files limit (20,000 here, minus 64 the gateway keeps spare)
// in sockets and reusePort spreads connections by a hash, so --workers must leave room:
// 100,000 connections need 6 processes (~16,700 each).
//
// Targets:
//   wsgate    the gateway, NATS mode, defaults (mailbox on), WSGATE_WORKERS=--workers
//   ref-bun   --workers bare Bun.serve processes (ref-bun.ts, REF_REUSE_PORT=1) on one port
//
// 100,000 over 6 processes takes ~45 s here (both targets), so it is the default; --conns 30000
// --workers 3 is a quicker run.
//
//   bun scripts/bench/workers.ts [--conns 100000] [--workers 6]
import { readdirSync, readlinkSync } from "node:fs";
import { parseArgs } from "node:util";
import {
  argInt, fmt, freePort, installCleanup, kernelStats, Loadgen, log, type Nats, ratio, rssBytes, runDir, type Server, settleOn, sleep, startGateway,
  startNats, startRef, sumMetric, table, waitMetrics, warnIfBusy,
} from "./lib.ts";

export const WORKERS_TARGETS = ["wsgate", "ref-bun"] as const;
type Target = (typeof WORKERS_TARGETS)[number];
export type WorkersOptions = { conns: number; workers: number; targets: Target[] };

const LABEL: Record<Target, string> = { wsgate: "wsgate, WSGATE_WORKERS (NATS, mailbox on)", "ref-bun": "ref: bare Bun.serve × N, reusePort" };

type Run = {
  target: Target;
  processes: number;
  open: number;
  openMs: number;
  base: number;
  settled: number;
  afterGc: number;
  /** each process's RSS after GC (MiB), and the sockets it holds (connections, plus a few for NATS and listening) */
  rssMiB: number[];
  conns: number[];
  slab: number;
  heapBase: number | null;
  heapAfter: number | null;
  errors: Record<string, number>;
  /** gateway: every worker's mailbox catch-ups done and failed (retried), summed */
  catchups: number | null;
  catchupErrors: number | null;
};

/** A group that behaves like one Server for memory purposes. */
type Group = { servers: Server[]; wsUrl: string; rss(): number; gc(): Promise<{ heapSize: number } | null>; stop(): Promise<void>; pids: number[] };

async function start(t: Target, nats: Nats, o: WorkersOptions): Promise<Group> {
  if (t === "wsgate") {
    const s = await startGateway("workers-wsgate", nats.url, { WSGATE_WORKERS: String(o.workers) }, { port: freePort("http") });
    return { servers: [s], wsUrl: s.wsUrl, rss: () => s.rss(), gc: () => s.gc(), stop: () => s.stop(), pids: s.pids };
  }
  const port = freePort("http");
  const servers: Server[] = [];
  try {
    for (let i = 0; i < o.workers; i++) servers.push(await startRef(`workers-ref-bun`, "idle", undefined, "ws", { port }));
  } catch (e) {
    for (const s of servers) await s.stop();
    throw e;
  }
  return {
    servers,
    wsUrl: servers[0].wsUrl,
    pids: servers.map((s) => s.pid),
    rss: () => servers.reduce((a, s) => a + s.rss(), 0),
    async gc() {
      const hs = await Promise.all(servers.map((s) => s.gc()));
      return hs.every((h) => h) ? { heapSize: hs.reduce((a, h) => a + h!.heapSize, 0) } : null;
    },
    async stop() {
      for (const s of servers) await s.stop();
    },
  };
}

/** Sockets a process holds (its descriptors that are sockets): how reusePort spread the connections. */
function socketsOf(pid: number): number {
  let n = 0;
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) n++;
      } catch {}
    }
  } catch {
    return NaN;
  }
  return n;
}

async function once(t: Target, nats: Nats, o: WorkersOptions): Promise<Run> {
  const g = await start(t, nats, o);
  try {
    const warm = Loadgen.start(`workers-${t}-warmup`, ["--url", g.wsUrl, "-n", String(200 * o.workers), "--user-prefix", "warm", "--mode", "idle", "-d", "1", "--max-seconds", "60", "-q"]);
    await warm.done(60_000);
    await sleep(1500);
    const heap0 = await g.gc();
    await sleep(1000);
    const base = g.rss();
    const subs0 = t === "wsgate" ? await nats.subscriptions() : 0;
    const k0 = kernelStats();
    const lgWorkers = Math.max(1, Math.ceil(o.conns / 16_000));
    const lg = Loadgen.start(`workers-${t}-idle`, ["--url", g.wsUrl, "-n", String(o.conns), "-w", String(lgWorkers), "--per-addr", "1000", "--mode", "idle", "-d", "0", "--max-seconds", "900", "-q"]);
    const ready = await lg.ready(400_000);
    log(`  ${t}: ${fmt(ready.open)}/${fmt(o.conns)} open in ${(ready.ms / 1000).toFixed(1)} s (${ready.dead} given up), client src ${ready.src}`);
    if (t === "wsgate") {
      const until = Date.now() + 120_000;
      let subs = 0;
      while ((subs = await nats.subscriptions()) < subs0 + ready.open && Date.now() < until) await sleep(500);
      // every worker's catch-ups done (each user's first connection starts one): stable for 2 s
      let last = -1, since = Date.now();
      while (Date.now() < until) {
        const n = sumMetric(await g.servers[0].metricsAll(), "wsgate_mailbox_catchup_seconds_count");
        if (n >= ready.open + 200 * o.workers) break; // the warm-up's users counted too
        if (n !== last) {
          last = n;
          since = Date.now();
        } else if (Date.now() - since > 2000) break;
        await sleep(500);
      }
      log(`  ${t}: ${fmt(subs - subs0)} new NATS subscriptions`);
    }
    let catchups: number | null = null, catchupErrors: number | null = null;
    if (t === "wsgate") {
      const all = await g.servers[0].metricsAll();
      if (all.size < o.workers) log(`  warning: only ${all.size} of ${o.workers} workers answered /metrics`);
      catchups = sumMetric(all, "wsgate_mailbox_catchup_seconds_count") - 200 * o.workers;
      catchupErrors = sumMetric(all, "wsgate_mailbox_catchup_errors_total");
      log(`  ${t}: mailbox catch-ups ${fmt(catchups)} (besides the warm-up's), ${fmt(catchupErrors)} failed and retried`);
      if (catchups < ready.open) log(`  warning: ${fmt(ready.open - catchups)} users' catch-ups not done when measured`);
    }
    const st = await settleOn(() => g.rss(), 30);
    const k1 = kernelStats();
    const conns = g.pids.map(socketsOf);
    const heap1 = await g.gc();
    await sleep(1500);
    const afterGc = g.rss();
    const rssMiB = g.pids.map((pid) => {
      try {
        return rssBytes(pid) / 1048576;
      } catch {
        return NaN;
      }
    });
    const sum = await lg.stop(60_000);
    return {
      target: t, processes: g.pids.length, open: ready.open, openMs: ready.ms, base, settled: st.value, afterGc, rssMiB, conns,
      slab: k1.slabBytes - k0.slabBytes, heapBase: heap0?.heapSize ?? null, heapAfter: heap1?.heapSize ?? null, errors: sum.errors ?? {}, catchups, catchupErrors,
    };
  } finally {
    await g.stop();
  }
}

export async function runWorkers(o: WorkersOptions) {
  installCleanup();
  log(`workers: ${fmt(o.conns)} connections over ${o.workers} processes, targets ${o.targets.join(", ")}; logs in ${runDir()}`);
  if (o.conns / o.workers > 18_500) log(`warning: ${fmt(Math.round(o.conns / o.workers))} connections per process is close to the 20,000 open-files limit; reusePort does not spread evenly`);
  await warnIfBusy("the workers runs");
  const nats = await startNats();
  const runs: Run[] = [];
  try {
    for (const t of o.targets) {
      const r = await once(t, nats, o);
      runs.push(r);
      log(
        `  ${t}: ${r.processes} processes, ${fmt(r.open)} open; RSS sum ${fmt(r.base / 1048576, 1)} → ${fmt(r.settled / 1048576, 1)} MiB settled → ${fmt(r.afterGc / 1048576, 1)} MiB after GC; ` +
          `${fmt((r.settled - r.base) / r.open)} B/conn settled, ${fmt((r.afterGc - r.base) / r.open)} B/conn after GC; sockets per process ${r.conns.map((c) => fmt(c)).join(" / ")}, RSS per process ${r.rssMiB.map((x) => fmt(x, 0)).join(" / ")} MiB` +
          (Object.keys(r.errors).length ? `; client errors ${JSON.stringify(r.errors)}` : ""),
      );
    }
  } finally {
    await nats.stop();
  }
  const ref = runs.find((r) => r.target === "ref-bun");
  const rows = runs.map((r) => {
    const gc = (r.afterGc - r.base) / r.open;
    const settled = (r.settled - r.base) / r.open;
    return [
      LABEL[r.target],
      String(r.processes),
      `${fmt(r.open)}/${fmt(o.conns)}`,
      fmt(r.open / (r.openMs / 1000)),
      fmt(r.afterGc / 1048576, 0),
      fmt(settled),
      fmt(gc),
      ref && r !== ref ? ratio(gc, (ref.afterGc - ref.base) / ref.open) : "",
      fmt(r.heapAfter !== null && r.heapBase !== null ? (r.heapAfter - r.heapBase) / r.open : NaN),
      fmt(r.slab / r.open),
      r.conns.map((c) => fmt(c)).join(" / "),
    ];
  });
  console.log(
    `\nMany processes: ${fmt(o.conns)} idle connections (distinct users) over ${o.workers} processes on one port (SO_REUSEPORT)\n` +
      table(["server", "procs", "open", "opened/s", "total RSS MiB", "B/conn settled", "B/conn after GC", "vs ref", "JS heap B/conn", "kernel slab B/conn*", "sockets per process"], rows) +
      `\nB/conn: growth of the processes' summed RSS over their warmed-up baseline, per connection. * kernel: Slab delta, both ends of every connection (same box).\n`,
  );
  const result: Record<string, unknown> = {};
  for (const r of runs) result[r.target] = { bytesPerConnSettled: Math.round((r.settled - r.base) / r.open), bytesPerConnAfterGc: Math.round((r.afterGc - r.base) / r.open), ...r };
  return result;
}

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      conns: { type: "string", default: "100000" },
      workers: { type: "string", default: "6" },
      targets: { type: "string", default: WORKERS_TARGETS.join(",") },
    },
  });
  const targets = v.targets!.split(",").map((s) => s.trim()) as Target[];
  for (const t of targets) if (!WORKERS_TARGETS.includes(t)) throw new Error(`unknown target ${t}; known: ${WORKERS_TARGETS.join(", ")}`);
  const t0 = Date.now();
  await runWorkers({ conns: argInt(v.conns, "conns", 1, 1_000_000, 100_000), workers: argInt(v.workers, "workers", 1, 64, 6), targets });
  log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  process.exit(0);
}
