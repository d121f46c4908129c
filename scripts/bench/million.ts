// Benchmark: a million idle WebSockets on this box (issue 16 part 1), everything on it:
// WSGATE_WORKERS gateway processes on one port, one nats-server, and the load clients.
//
//   1. nats-server (JetStream, its own port and store, so it can be restarted in step 5) and
//      the gateway with --workers workers (default: conns / 18,500, each under the 20,000
//      open-files limit), NATS mode, mailbox --mailbox (default off: 1,000,000 cursor loads on
//      nats-server 2.9 are a benchmark of their own, mailbox-storm).
//   2. Ramp: load clients in chunks of --chunk connections (one loadgen run each, 19,000
//      sockets per process, 1,000 per source address 127.A.B.x), every connection a distinct
//      user. Before each chunk: MemAvailable must stay above --reserve-gib after the chunk's
//      expected cost (measured on the chunks so far); otherwise the ramp stops there and the
//      report says which process holds what. A progress line per chunk, with how long
//      /readyz and /metrics took to answer meanwhile.
//   3. Every user's interest at nats-server (/subsz); then live: one message to each of
//      --sample users spread over all chunks (so over all workers), counted out of the
//      gateways (wsgate_messages_out_total) and into the clients.
//   4. Memory: RSS of the gateways (settled, then after a full GC), of the clients and of
//      nats-server, kernel Slab, each per connection.
//   5. NATS restart (--reconnect on): nats-server stopped and started again on the same port:
//      how long until every user's interest is back at the server, and the gateways' and
//      nats-server's memory and CPU meanwhile.
//   6. Closing; then (--ref on) the same count on as many bare Bun.serve processes
//      (ref-bun.ts, reusePort), the same clients, for the same figures.
// Every loop is bounded in count and time, the whole run by --max-minutes; loopback only;
// only the processes started here are ended, by PID.
//
//   bun scripts/bench/million.ts [--conns 1000000] [--workers N] [--chunk 57000] [--reserve-gib 3]
//                                [--mailbox off|on] [--reconnect on|off] [--ref on|off] [--sample 2000]
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Subprocess } from "bun";
import { connect } from "@nats-io/transport-node";
import {
  argInt, cpuSeconds, fmt, freePort, installCleanup, kernelStats, Loadgen, log, MiB, NATS_SERVER, rssBytes, runDir, type Server, sleep, startGateway, startRef, sumMetric, table,
} from "./lib.ts";

export type MillionOptions = { conns: number; workers: number; chunk: number; reserveGiB: number; mailbox: boolean; reconnect: boolean; ref: boolean; sample: number; maxMinutes: number };

const GiB = 1024 * MiB;
const PER_CLIENT_PROC = 19_000;

function memAvailable(): number {
  return Number(/^MemAvailable:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"))?.[1] ?? NaN) * 1024;
}

/** A process and every descendant, from /proc. */
function tree(pid: number, depth = 0): number[] {
  const out = [pid];
  if (depth > 4) return out;
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim().split(/\s+/).filter(Boolean)) out.push(...tree(Number(c), depth + 1));
      } catch {}
    }
  } catch {}
  return out;
}
const sumRss = (pids: number[]) => pids.reduce((a, p) => a + (rssOr0(p)), 0);
const sumCpu = (pids: number[]) => pids.reduce((a, p) => a + (cpuOr0(p)), 0);
function rssOr0(pid: number) {
  try {
    return rssBytes(pid);
  } catch {
    return 0;
  }
}
function cpuOr0(pid: number) {
  try {
    return cpuSeconds(pid);
  } catch {
    return 0;
  }
}

/** nats-server on a fixed port and store, so that it can be restarted in place. */
class NatsProc {
  proc: Subprocess | null = null;
  readonly port = freePort("nats");
  readonly monitorPort = freePort("nats");
  readonly store = mkdtempSync(join(tmpdir(), "wsgate-million-nats-"));
  readonly url = `nats://127.0.0.1:${this.port}`;
  private starts = 0;

  async start() {
    const logFile = join(runDir(), `nats-${this.port}-${++this.starts}.log`);
    this.proc = Bun.spawn({
      cmd: [NATS_SERVER, "-a", "127.0.0.1", "-p", String(this.port), "-m", String(this.monitorPort), "-js", "-sd", this.store],
      stdio: ["ignore", Bun.file(logFile), Bun.file(logFile)],
    });
    const until = Date.now() + 20_000;
    while (!(await this.healthy())) {
      if (this.proc.exitCode !== null) throw new Error(`nats-server exited at start; see ${logFile}`);
      if (Date.now() > until) throw new Error(`nats-server not ready in 20 s; see ${logFile}`);
      await sleep(50);
    }
  }
  private async healthy() {
    try {
      return (await fetch(`http://127.0.0.1:${this.monitorPort}/healthz`)).ok;
    } catch {
      return false;
    }
  }
  get pid() {
    return this.proc?.pid ?? 0;
  }
  async subscriptions(): Promise<number> {
    try {
      const r = await fetch(`http://127.0.0.1:${this.monitorPort}/subsz`, { signal: AbortSignal.timeout(10_000) });
      return Number(((await r.json()) as { num_subscriptions: number }).num_subscriptions);
    } catch {
      return -1;
    }
  }
  async stop() {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    p.kill("SIGTERM");
    const done = await Promise.race([p.exited.then(() => true), sleep(10_000).then(() => false)]);
    if (!done) p.kill("SIGKILL");
    await p.exited;
  }
  kill() {
    if (this.proc && this.proc.exitCode === null) this.proc.kill("SIGKILL");
  }
}

/** How long one GET takes on the shared port (whichever worker the kernel picks). */
async function timed(url: string): Promise<string> {
  const t0 = performance.now();
  try {
    const r = await fetch(url, { headers: { connection: "close" }, keepalive: false, signal: AbortSignal.timeout(10_000) });
    await r.arrayBuffer();
    return `${r.status} in ${fmt(performance.now() - t0)} ms`;
  } catch (e) {
    return `failed after ${fmt(performance.now() - t0)} ms (${String(e).slice(0, 60)})`;
  }
}

type Chunk = { lg: Loadgen; users: number; prefix: string };

type Ramp = { open: number; seconds: number; stoppedBecause: string; chunks: Chunk[]; dead: number };

/** Opens up to o.conns connections to `url` in chunks, watching memory; see the header. */
async function ramp(label: string, url: string, o: MillionOptions, deadline: number, held: (chunks: Chunk[]) => string): Promise<Ramp> {
  const chunks: Chunk[] = [];
  const t0 = performance.now();
  const mem0 = memAvailable();
  let open = 0, dead = 0;
  let stoppedBecause = "reached the target";
  for (let i = 0; open < o.conns && i < 1000; i++) {
    const n = Math.min(o.chunk, o.conns - open);
    const perConn = open > 0 ? Math.max(8_000, (mem0 - memAvailable()) / open) : 16_000;
    const left = memAvailable() - n * perConn;
    if (left < o.reserveGiB * GiB) {
      stoppedBecause = `MemAvailable ${fmt(memAvailable() / GiB, 1)} GiB; the next ${fmt(n)} would leave ~${fmt(left / GiB, 1)} GiB (< ${o.reserveGiB} GiB reserve) at ${fmt(perConn)} B/conn so far`;
      break;
    }
    if (Date.now() > deadline) {
      stoppedBecause = "ran out of the time budget";
      break;
    }
    const prefix = `m${i}x`;
    const lg = Loadgen.start(`million-${label}-c${i}`, [
      "--url", url, "-n", String(n), "-w", String(Math.ceil(n / PER_CLIENT_PROC)), "--per-addr", "1000", "--mode", "recv",
      "-d", "0", "--max-seconds", String(o.maxMinutes * 60), "-q", "--user-prefix", prefix, "--timeout", "30000", "--retries", "5",
    ]);
    chunks.push({ lg, users: n, prefix });
    let r;
    try {
      r = await lg.ready(Math.max(10_000, deadline - Date.now()));
    } catch (e) {
      stoppedBecause = `chunk ${i}: ${String(e)}`;
      break;
    }
    open += r.open;
    dead += r.dead;
    const s = (performance.now() - t0) / 1000;
    log(`  ${label}: ${fmt(open)} open after ${s.toFixed(1)} s (chunk ${i}: ${fmt(r.open)} in ${(r.ms / 1000).toFixed(1)} s, ${fmt(r.dead)} given up); MemAvailable ${fmt(memAvailable() / GiB, 1)} GiB; ${held(chunks)}`);
    if (r.dead > 0 && r.open < n * 0.9) {
      stoppedBecause = `chunk ${i}: ${fmt(r.dead)} of ${fmt(n)} connections given up (see ${lg.logFile})`;
      break;
    }
  }
  return { open, seconds: (performance.now() - t0) / 1000, stoppedBecause, chunks, dead };
}

/** Stops every chunk's clients (they close their sockets); returns the messages they received. */
async function closeAll(chunks: Chunk[]): Promise<number> {
  const sums = await Promise.all(chunks.map((c) => c.lg.stop(120_000).catch(() => null)));
  return sums.reduce((a, s) => a + Number(s?.recv?.messages ?? 0), 0);
}

export async function runMillion(o: MillionOptions) {
  installCleanup();
  const hardStop = setTimeout(() => {
    log(`million: past ${o.maxMinutes} minutes; stopping everything`);
    process.exit(3);
  }, o.maxMinutes * 60_000);
  hardStop.unref();
  const deadline = Date.now() + (o.maxMinutes - (o.ref ? 5 : 3)) * 60_000; // room to measure, close and run the reference
  log(`million: ${fmt(o.conns)} connections over ${o.workers} gateway workers, chunks of ${fmt(o.chunk)}, mailbox ${o.mailbox ? "on" : "off"}, keep ${o.reserveGiB} GiB free; logs in ${runDir()}`);
  const nats = new NatsProc();
  process.on("exit", () => {
    nats.kill();
    rmSync(nats.store, { recursive: true, force: true });
  });
  await nats.start();
  const k0 = kernelStats();
  const mem0 = memAvailable();
  const natsRss0 = rssOr0(nats.pid);
  const t0 = performance.now();
  const gw = await startGateway("million-wsgate", nats.url, {
    WSGATE_WORKERS: String(o.workers),
    WSGATE_MAILBOX: o.mailbox ? "on" : "off",
    WSGATE_MAX_CONNS_PER_USER: "0",
  }, { port: freePort("http") });
  log(`  ${o.workers} gateway workers ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const base = { gw: gw.rss(), nats: natsRss0, slab: k0.slabBytes, mem: mem0 };
  const subs0 = await nats.subscriptions();
  const httpBase = gw.metricsUrl.replace(/\/metrics$/, "");
  const clientPids = (chunks: Chunk[]) => chunks.flatMap((c) => tree(c.lg.pid));
  const held = (chunks: Chunk[]) =>
    `gateways ${fmt(gw.rss() / MiB)} MiB, nats-server ${fmt(rssOr0(nats.pid) / MiB)} MiB, clients ${fmt(sumRss(clientPids(chunks)) / MiB)} MiB, slab +${fmt((kernelStats().slabBytes - base.slab) / MiB)} MiB`;
  const result: Record<string, unknown> = {};
  let r: Ramp | null = null;
  try {
    // the ramp: /readyz and /metrics probed alongside, every 5 s
    let probing = true;
    const probes: string[] = [];
    const prober = (async () => {
      for (let i = 0; probing && i < 400; i++) {
        probes.push(`readyz ${await timed(`${httpBase}/readyz`)}, metrics ${await timed(`${httpBase}/metrics`)}`);
        await sleep(5000);
      }
    })();
    r = await ramp("wsgate", gw.wsUrl, o, deadline, held);
    probing = false;
    await prober;
    log(`  ramp: ${fmt(r.open)} open in ${r.seconds.toFixed(1)} s (${fmt(r.open / r.seconds)}/s); stopped: ${r.stoppedBecause}`);
    log(`  /readyz and /metrics during the ramp: ${probes.slice(-3).join(" | ")} (${probes.length} probes, ${probes.filter((p) => p.includes("failed")).length} failed)`);

    // every user's interest at the server
    const tSubs = performance.now();
    let subs = 0;
    for (let i = 0; i < 600 && (subs = await nats.subscriptions()) < subs0 + r.open; i++) await sleep(200);
    log(`  nats-server holds ${fmt(subs - subs0)} new subscriptions (${fmt(r.open)} users) ${((performance.now() - tSubs) / 1000).toFixed(1)} s after the ramp`);

    // live: a sample of users across every chunk (and so every worker) gets one message
    const out0 = sumMetric(await gw.metricsAll(), "wsgate_messages_out_total");
    const nc = await connect({ servers: nats.url, name: "million-sample" });
    const sample: string[] = [];
    const per = Math.max(1, Math.floor(o.sample / Math.max(1, r.chunks.length)));
    for (const c of r.chunks) for (let j = 0; j < per; j++) sample.push(`ws.recv.s1.${c.prefix}${Math.floor((j * c.users) / per)}`);
    for (const s of sample) nc.publish(s, "are you there");
    await nc.flush();
    await nc.close();
    let out = 0, all = new Map<string, Record<string, number>>();
    for (let i = 0; i < 60; i++) {
      all = await gw.metricsAll();
      out = sumMetric(all, "wsgate_messages_out_total") - out0;
      if (out >= sample.length) break;
      await sleep(500);
    }
    const delivering = [...all.values()].filter((m) => (m.wsgate_connections ?? 0) > 0).length;
    log(`  live: ${fmt(out)} of ${fmt(sample.length)} sample messages went out of the gateways (${all.size} of ${o.workers} workers answered /metrics, ${delivering} hold connections)`);

    // memory
    const settled = { gw: gw.rss(), clients: sumRss(clientPids(r.chunks)), nats: rssOr0(nats.pid), slab: kernelStats().slabBytes, mem: memAvailable() };
    await gw.gc();
    await sleep(1500);
    const gwAfterGc = gw.rss();
    const per1 = (x: number) => fmt(x / r!.open);
    log(
      `  memory at ${fmt(r.open)}: gateways ${fmt(settled.gw / MiB)} MiB (${per1(settled.gw - base.gw)} B/conn; after GC ${fmt(gwAfterGc / MiB)} MiB, ${per1(gwAfterGc - base.gw)} B/conn), ` +
        `clients ${fmt(settled.clients / MiB)} MiB (${per1(settled.clients)} B/conn), nats-server ${fmt(settled.nats / MiB)} MiB (${per1(settled.nats - base.nats)} B/conn), ` +
        `kernel slab +${fmt((settled.slab - base.slab) / MiB)} MiB (${per1(settled.slab - base.slab)} B/conn), MemAvailable ${fmt(settled.mem / GiB, 1)} GiB (used ${per1(base.mem - settled.mem)} B/conn in all)`,
    );
    Object.assign(result, { open: r.open, openSeconds: r.seconds, stoppedBecause: r.stoppedBecause, base, settled, gwAfterGc, liveOut: out, sample: sample.length });

    // NATS restart: every user's interest back
    if (o.reconnect) {
      const gwCpu0 = gw.cpu();
      await nats.stop();
      const tDown = performance.now();
      await sleep(1000);
      await nats.start();
      const tUp = performance.now();
      let peakGw = 0, peakNats = 0, n = 0, back = -1;
      for (let i = 0; i < 600; i++) {
        peakGw = Math.max(peakGw, gw.rss());
        peakNats = Math.max(peakNats, rssOr0(nats.pid));
        n = await nats.subscriptions();
        if (n >= r.open) {
          back = (performance.now() - tUp) / 1000;
          break;
        }
        await sleep(250);
      }
      const natsCpu = cpuOr0(nats.pid);
      const gwCpu = gw.cpu() - gwCpu0;
      log(
        `  NATS restart: down ${((tUp - tDown) / 1000).toFixed(1)} s; ${back >= 0 ? `every user's interest back ${back.toFixed(1)} s after it was up` : `only ${fmt(n)} of ${fmt(r.open)} subscriptions back after 150 s`}; ` +
          `gateways: ${gwCpu.toFixed(1)} CPU s meanwhile, peak RSS ${fmt(peakGw / MiB)} MiB; nats-server: ${natsCpu.toFixed(1)} CPU s, peak RSS ${fmt(peakNats / MiB)} MiB`,
      );
      Object.assign(result, { reconnect: { backSeconds: back, subscriptions: n, gwCpuS: gwCpu, gwPeakRss: peakGw, natsCpuS: natsCpu, natsPeakRss: peakNats } });
    }
  } finally {
    const tClose = performance.now();
    const recv = r ? await closeAll(r.chunks) : 0;
    log(`  closed in ${((performance.now() - tClose) / 1000).toFixed(1)} s; the clients received ${fmt(recv)} messages`);
    result.clientsReceived = recv;
    await gw.stop();
  }

  // the reference: the same count on bare Bun.serve processes sharing a port
  if (o.ref && r && r.open > 0) {
    const port = freePort("http");
    const refs: Server[] = [];
    try {
      for (let i = 0; i < o.workers; i++) refs.push(await startRef("million-ref-bun", "idle", undefined, "ws", { port }));
      const k1 = kernelStats();
      const refBase = refs.reduce((a, s) => a + s.rss(), 0);
      const rr = await ramp("ref-bun", refs[0].wsUrl, { ...o, conns: r.open }, Date.now() + 4 * 60_000, (chunks) => `ref ${fmt(refs.reduce((a, s) => a + s.rss(), 0) / MiB)} MiB, clients ${fmt(sumRss(chunks.flatMap((c) => tree(c.lg.pid))) / MiB)} MiB`);
      const refRss = refs.reduce((a, s) => a + s.rss(), 0);
      const clients = sumRss(rr.chunks.flatMap((c) => tree(c.lg.pid)));
      const slab = kernelStats().slabBytes - k1.slabBytes;
      log(`  ref-bun: ${fmt(rr.open)} open in ${rr.seconds.toFixed(1)} s; RSS ${fmt(refRss / MiB)} MiB (${fmt((refRss - refBase) / rr.open)} B/conn), clients ${fmt(clients / MiB)} MiB, slab +${fmt(slab / MiB)} MiB`);
      result.ref = { open: rr.open, seconds: rr.seconds, rss: refRss, base: refBase, clients, slab };
      await closeAll(rr.chunks);
    } finally {
      for (const s of refs) await s.stop();
    }
  }
  await nats.stop();
  printMillion(o, result);
  return result;
}

function printMillion(o: MillionOptions, res: Record<string, any>) {
  if (res.open === undefined) return;
  const n = res.open as number;
  const rows: string[][] = [
    ["gateways (" + o.workers + " workers)", fmt(res.settled.gw / MiB), fmt((res.settled.gw - res.base.gw) / n), fmt((res.gwAfterGc - res.base.gw) / n)],
    ["load clients", fmt(res.settled.clients / MiB), fmt(res.settled.clients / n), ""],
    ["nats-server", fmt(res.settled.nats / MiB), fmt((res.settled.nats - res.base.nats) / n), ""],
    ["kernel slab (both ends)", fmt((res.settled.slab - res.base.slab) / MiB), fmt((res.settled.slab - res.base.slab) / n), ""],
  ];
  if (res.ref) rows.push([`ref: bare Bun.serve × ${o.workers} (${fmt(res.ref.open)} conns)`, fmt(res.ref.rss / MiB), fmt((res.ref.rss - res.ref.base) / res.ref.open), ""]);
  console.log(
    `\nA million: ${fmt(n)} of ${fmt(o.conns)} connections open at once in ${res.openSeconds.toFixed(1)} s (${fmt(n / res.openSeconds)}/s); ramp: ${res.stoppedBecause}\n` +
      table(["process", "RSS MiB", "B/conn (growth)", "B/conn after GC"], rows) +
      `\nlive: ${fmt(res.liveOut)} of ${fmt(res.sample)} sample messages out of the gateways, ${fmt(res.clientsReceived)} received by the clients` +
      (res.reconnect ? `\nNATS restart: every user's interest back after ${res.reconnect.backSeconds.toFixed(1)} s; gateways ${res.reconnect.gwCpuS.toFixed(1)} CPU s, nats-server ${res.reconnect.natsCpuS.toFixed(1)} CPU s` : "") +
      "\n",
  );
}

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      conns: { type: "string", default: "1000000" },
      workers: { type: "string" },
      chunk: { type: "string", default: "57000" },
      "reserve-gib": { type: "string", default: "3" },
      mailbox: { type: "string", default: "off" },
      reconnect: { type: "string", default: "on" },
      ref: { type: "string", default: "on" },
      sample: { type: "string", default: "2000" },
      "max-minutes": { type: "string", default: "15" },
    },
  });
  const onOff = (x: string | undefined, name: string) => {
    if (x !== "on" && x !== "off") throw new Error(`--${name} must be on or off`);
    return x === "on";
  };
  const conns = argInt(v.conns, "conns", 1, 1_100_000, 1_000_000);
  const t0 = Date.now();
  await runMillion({
    conns,
    workers: argInt(v.workers, "workers", 1, 64, Math.ceil(conns / 18_500)),
    chunk: argInt(v.chunk, "chunk", 1000, 200_000, 57_000),
    reserveGiB: argInt(v["reserve-gib"], "reserve-gib", 1, 20, 3),
    mailbox: onOff(v.mailbox, "mailbox"),
    reconnect: onOff(v.reconnect, "reconnect"),
    ref: onOff(v.ref, "ref"),
    sample: argInt(v.sample, "sample", 1, 100_000, 2000),
    maxMinutes: argInt(v["max-minutes"], "max-minutes", 2, 15, 15),
  });
  log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  process.exit(0);
}
