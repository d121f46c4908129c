// Benchmark: connection setup rate and a reconnect storm (issue 6 #3), next to bare Bun.serve.
//
// Per target: one load client (--workers processes) opens --conns connections of distinct
// users with --concurrency handshakes in flight per process, holds them --hold s, drops them
// all with a WebSocket close and reconnects each after a random delay in [0, --jitter] ms
// (loadgen storm mode; jitter 0 = all at once). No mailbox backlog is waiting.
// Figures:
//   setup     upgrades per second (connections / time from the first connect start to the last
//             handshake) and the server's CPU µs per upgrade over the opening (with the mailbox,
//             the user's catch-up read that each first connection starts is included: the opening
//             is counted until the server's catch-ups are done)
//   storm     time from the drop until every connection is back, reconnect latency p50/p99
//             (drop → handshake done), and the server's CPU µs per reconnect (close + upgrade)
// Targets (same run, one after the other, each on its own server; one nats-server for all):
//   wsgate       the gateway (scripts/start.sh bun), NATS mode, defaults (mailbox on, nothing
//                kept) except WSGATE_MAX_UPGRADES_PER_SEC=0 (the 5,000/s admission limit off)
//   wsgate-nomb  the same with WSGATE_MAILBOX=off (what the mailbox's catch-up read adds)
//   ref-bun      bare Bun.serve WebSockets that only hold sockets
//
// Handshakes in flight: 250 per client process (500 in all) by default. Far more than the
// server's listen backlog (~512 on uSockets) makes the kernel drop SYNs, and every dropped one
// costs a client a 1 s retransmission: the figures then measure TCP's timer, not the server.
// --concurrency 1000 shows that (a real storm of uncoordinated clients looks like it).
//
//   bun scripts/bench/setup.ts [--conns 10000] [--jitter 0] [--concurrency 250] [--repeat 1]
import { parseArgs } from "node:util";
import {
  argInt, fmt, installCleanup, Loadgen, log, machineBusySeconds, median, type Nats, ratio, runDir, type Server, sleep, startGateway,
  startNats, startRef, table, treeCpuSeconds, waitCatchups, waitMetrics, warnIfBusy,
} from "./lib.ts";

export const SETUP_TARGETS = ["wsgate", "wsgate-nomb", "wsgate-nomb-noev", "wsgate-nomb-peer", "ref-bun"] as const;
export const SETUP_DEFAULT_TARGETS = ["wsgate", "wsgate-nomb", "ref-bun"] as const;
type Target = (typeof SETUP_TARGETS)[number];
export type SetupOptions = { conns: number; workers: number; concurrency: number; jitter: number; hold: number; repeat: number; targets: Target[] };

const LABEL: Record<Target, string> = {
  wsgate: "wsgate (NATS, mailbox on, empty)",
  "wsgate-nomb": "wsgate (NATS, mailbox off)",
  "wsgate-nomb-noev": "wsgate (NATS, mailbox off, WSGATE_EVENTS=off)",
  "wsgate-nomb-peer": "wsgate (NATS, mailbox off, events on, 1 idle peer node)",
  "ref-bun": "ref: bare Bun.serve",
};

type Run = {
  target: Target;
  opened: number;
  openMs: number;
  upgradesPerS: number;
  cpuUsPerUpgrade: number;
  handshake: { p50: number; p99: number };
  clientCores: number;
  machineCores: number;
  back: number;
  dropped: number;
  allBackMs: number | null;
  reconnect: { p50: number; p99: number };
  cpuUsPerReconnect: number;
  errors: Record<string, number>;
};

function start(t: Target, nats: Nats): Promise<Server> {
  if (t === "ref-bun") return startRef("setup-ref-bun", "idle");
  const env: Record<string, string> = t === "wsgate" ? {} : { WSGATE_MAILBOX: "off" };
  if (t === "wsgate-nomb-noev") env.WSGATE_EVENTS = "off";
  return startGateway(`setup-${t}`, nats.url, env);
}

async function once(t: Target, nats: Nats, o: SetupOptions, i: number): Promise<Run> {
  // With a peer each user's first connection asks another node (the online check): the cluster cost of events.
  const peer = t === "wsgate-nomb-peer" ? await startGateway(`setup-${t}-peer`, nats.url, { WSGATE_MAILBOX: "off" }) : null;
  const s = await start(t, nats);
  try {
    // warm-up: code paths compiled before the clock starts
    const warm = Loadgen.start(`setup-${t}-r${i}-warmup`, ["--url", s.wsUrl, "-n", "500", "--user-prefix", "warm", "--mode", "idle", "-d", "1", "--max-seconds", "60", "-q"]);
    await warm.done(60_000);
    await waitMetrics(s, (m) => m.wsgate_connections === 0, 10_000, "warm-up connections closed");
    await sleep(500);
    const cpu0 = s.cpu();
    const mc0 = machineBusySeconds();
    const t0 = performance.now();
    const lg = Loadgen.start(`setup-${t}-r${i}`, [
      "--url", s.wsUrl, "-n", String(o.conns), "-w", String(o.workers), "--concurrency", String(o.concurrency), "--mode", "storm",
      "--rounds", "1", "--hold", String(o.hold), "--jitter", String(o.jitter), "--drop", "close", "--round-timeout", "60", "--max-seconds", "180", "-q",
    ]);
    const ready = await lg.ready(120_000);
    lg.phase("storm"); // the opening's counters are phase "main", the storm's "storm"
    if (t !== "ref-bun") await waitCatchups(s, ready.open, 30_000);
    const cpuOpen = s.cpu() - cpu0;
    const lgCpu = treeCpuSeconds(lg.pid);
    const openWall = (performance.now() - t0) / 1000;
    const mcOpen = machineBusySeconds() - mc0;
    // the storm: the loadgen drops everything after --hold s and reconnects
    const cpu1 = s.cpu();
    const sum = await lg.done(200_000);
    if (t !== "ref-bun") await waitCatchups(s, 2 * ready.open, 30_000);
    const cpuStorm = s.cpu() - cpu1;
    const st = sum.storm?.[0];
    // the opening: first connect start → last handshake of phase "main" (the ready line's time also counts the client's start)
    const openMs = sum.phases?.[0]?.allOpenMs ?? ready.ms;
    return {
      target: t,
      opened: ready.open,
      openMs,
      upgradesPerS: ready.open / (openMs / 1000),
      cpuUsPerUpgrade: (cpuOpen / ready.open) * 1e6,
      handshake: { p50: NaN, p99: NaN, ...(sum.phases?.[0]?.handshakeMs ?? {}) },
      clientCores: lgCpu / openWall,
      machineCores: mcOpen / openWall,
      back: st?.back ?? 0,
      dropped: st?.dropped ?? 0,
      allBackMs: st?.allBackMs ?? null,
      reconnect: st?.reconnectMs ?? { p50: NaN, p99: NaN },
      // over the hold (idle), the drop and every reconnect with its catch-up
      cpuUsPerReconnect: st?.back ? (cpuStorm / st.back) * 1e6 : NaN,
      errors: sum.errors ?? {},
    };
  } finally {
    await s.stop();
    await peer?.stop();
  }
}

export async function runSetup(o: SetupOptions) {
  installCleanup();
  log(`connection setup: ${fmt(o.conns)} connections, jitter ${o.jitter} ms, targets ${o.targets.join(", ")}, ${o.repeat} run(s) each; logs in ${runDir()}`);
  await warnIfBusy("the setup runs");
  const nats = await startNats();
  const runs: Run[] = [];
  try {
    for (let i = 1; i <= o.repeat; i++) {
      for (const t of o.targets) {
        const r = await once(t, nats, o, i);
        runs.push(r);
        log(
          `  ${t} run ${i}: ${fmt(r.opened)} open in ${fmt(r.openMs)} ms (${fmt(r.upgradesPerS)}/s), server ${fmt(r.cpuUsPerUpgrade)} CPU µs/upgrade, client ${r.clientCores.toFixed(2)} cores, machine ${r.machineCores.toFixed(2)} cores; ` +
            `storm: ${fmt(r.back)}/${fmt(r.dropped)} back after ${fmt(r.allBackMs)} ms, reconnect p50 ${fmt(r.reconnect.p50, 1)} p99 ${fmt(r.reconnect.p99, 1)} ms, ${fmt(r.cpuUsPerReconnect)} CPU µs each`,
        );
      }
    }
  } finally {
    await nats.stop();
  }
  const per = (t: Target, f: (r: Run) => number) => median(runs.filter((r) => r.target === t).map(f));
  const ref = o.targets.includes("ref-bun") ? "ref-bun" : null;
  const rows: string[][] = [];
  const result: Record<string, unknown> = {};
  const cols = (t: Target) => ({
    rate: per(t, (r) => r.upgradesPerS),
    cpu: per(t, (r) => r.cpuUsPerUpgrade),
    back: per(t, (r) => r.allBackMs ?? NaN),
    p50: per(t, (r) => r.reconnect.p50),
    p99: per(t, (r) => r.reconnect.p99),
    cpuR: per(t, (r) => r.cpuUsPerReconnect),
  });
  for (const t of o.targets) {
    const c = cols(t);
    const rc = ref && t !== ref ? cols(ref) : null;
    rows.push([
      LABEL[t],
      fmt(c.rate),
      rc ? ratio(c.rate, rc.rate) : "",
      fmt(c.cpu),
      rc ? ratio(c.cpu, rc.cpu) : "",
      fmt(c.back),
      rc ? ratio(c.back, rc.back) : "",
      fmt(c.p50, 1),
      fmt(c.p99, 1),
      fmt(c.cpuR),
      fmt(per(t, (r) => r.clientCores), 2),
    ]);
    result[t] = { upgradesPerS: Math.round(c.rate), cpuUsPerUpgrade: Math.round(c.cpu), stormAllBackMs: c.back, reconnectMs: { p50: c.p50, p99: c.p99 }, cpuUsPerReconnect: Math.round(c.cpuR), runs: runs.filter((r) => r.target === t) };
  }
  console.log(
    `\nConnection setup and reconnect storm (${fmt(o.conns)} connections of distinct users, ≤ ${fmt(o.concurrency * o.workers)} handshakes in flight; storm: close all, each back after [0, ${o.jitter}] ms; medians of ${o.repeat})\n` +
      table(["server", "upgrades/s", "vs ref", "server CPU µs/upgrade", "vs ref", "storm: all back ms", "vs ref", "reconnect p50 ms", "p99 ms", "CPU µs/reconnect", "client cores"], rows) +
      `\nupgrades/s: connections / (first connect start → last handshake), client and server on the same 2 cores (client cores: the load client's use while opening).` +
      `\nCPU µs/upgrade: the server process's CPU over the opening (gateway: until its mailbox catch-ups were done). CPU µs/reconnect: over the storm (closes + upgrades).\n`,
  );
  // The cost of events (issue 12: at most 10% of upgrade throughput), run by run: each run of
  // one target is next to the other's in time, so the machine's drift falls on both.
  const on = runs.filter((r) => r.target === "wsgate-nomb");
  const off = runs.filter((r) => r.target === "wsgate-nomb-noev");
  if (on.length && on.length === off.length) {
    const pairs = on.map((r, i) => r.upgradesPerS / off[i].upgradesPerS);
    const cpu = on.map((r, i) => r.cpuUsPerUpgrade - off[i].cpuUsPerUpgrade);
    console.log(
      `events on / off, upgrades/s of each run's pair: ${pairs.map((x) => x.toFixed(2)).join(", ")}; median ${median(pairs).toFixed(2)}× ` +
        `(server CPU µs/upgrade on − off: ${cpu.map((x) => Math.round(x)).join(", ")}; median ${Math.round(median(cpu))})\n`,
    );
    result.eventsOnOff = { upgradesRatio: median(pairs), cpuUsDelta: median(cpu), pairs };
  }
  return result;
}

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      conns: { type: "string", default: "10000" },
      workers: { type: "string", default: "2" },
      concurrency: { type: "string", default: "250" },
      jitter: { type: "string", default: "0" },
      hold: { type: "string", default: "2" },
      repeat: { type: "string", default: "1" },
      targets: { type: "string", default: SETUP_DEFAULT_TARGETS.join(",") },
    },
  });
  const targets = v.targets!.split(",").map((s) => s.trim()) as Target[];
  for (const t of targets) if (!SETUP_TARGETS.includes(t)) throw new Error(`unknown target ${t}; known: ${SETUP_TARGETS.join(", ")}`);
  const t0 = Date.now();
  await runSetup({
    conns: argInt(v.conns, "conns", 1, 19_000, 10_000),
    workers: argInt(v.workers, "workers", 1, 16, 2),
    concurrency: argInt(v.concurrency, "concurrency", 1, 10_000, 250),
    jitter: argInt(v.jitter, "jitter", 0, 60_000, 0),
    hold: argInt(v.hold, "hold", 1, 60, 2),
    repeat: argInt(v.repeat, "repeat", 1, 10, 1),
    targets,
  });
  log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  process.exit(0);
}
