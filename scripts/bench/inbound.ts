// Benchmark: inbound clients → NATS (issue 6 #5), next to a bare Bun server publishing to NATS.
//
// --conns connections (distinct users) send --size-byte text frames, each starting with its
// send time; a NATS subscriber (subscriber.ts, a service) on <prefix>.send.> counts what
// arrives and how late. Per target, one server on one nats-server shared by all:
//   max      closed loop: the clients keep at most --window messages in flight, counted from
//            what the subscriber has received (loadgen --window with the subscriber's running
//            count as feedback), so they send exactly as fast as the server gets messages into
//            NATS and nothing piles up in socket buffers (an open-loop flood would fill
//            megabytes of kernel buffer per socket and measure the drain instead);
//            --duration s, --repeat runs. Figure: messages per second received by the
//            subscriber (= published by the server), between its first and last message.
//   latency  a fixed total rate, half of the reference's median max (for the gateway on Bun,
//            ref-bun-pub's; on Node, ref-uws-pub's; a reference at half its own), --duration s;
//            latency p50/p99/p99.9 from the client's send time to the subscriber's receive.
// Targets:
//   wsgate        the gateway (scripts/start.sh bun), NATS mode, defaults, except
//                 WSGATE_MAX_MSGS_PER_SEC=0 (the 100 frames/s per connection limit off) and
//                 WSGATE_MAX_UPGRADES_PER_SEC=0; each frame is published with its Ws-Conn,
//                 Ws-Node and Ws-Frame headers
//   ref-bun-pub   bare Bun.serve that publishes each frame as is (no headers, no checks) with
//                 one nats.js connection (ref-bun.ts, REF_MODE=nats)
//   wsgate-node   the gateway on Node + uWebSockets.js (scripts/start.sh node), the same settings
//   ref-uws-pub   bare uWebSockets.js on Node publishing each frame the same way (ref-uws.mjs, REF_MODE=nats)
// Each payload carries its connection's sequence number (the loadgen's send mode); the
// subscriber counts gaps and frames out of order per connection.
//
// --window (default 100,000): a small window caps the rate by the loop's round trip (20,000
// gave ~2/3 of the rate here); past ~100,000 the rate stops growing and only the queue does.
//
//   bun scripts/bench/inbound.ts [--conns 1000] [--duration 5] [--repeat 1] [--size 32] [--window 100000]
import { parseArgs } from "node:util";
import {
  argInt, cpuSeconds, fmt, installCleanup, Loadgen, log, machineBusySeconds, median, MiB, type Nats, natsQuiet, natsVarz, ratio,
  ResourceWatch, runDir, type Server, sleep, startGateway, startNats, startRef, startRefUws, Subscriber, table, treeCpuSeconds, waitMetrics, warnIfBusy,
} from "./lib.ts";

export const INBOUND_TARGETS = ["wsgate", "ref-bun-pub", "wsgate-node", "ref-uws-pub"] as const;
type Target = (typeof INBOUND_TARGETS)[number];
/** Each target's reference: the same runtime publishing each frame bare. */
const REF_OF: Partial<Record<Target, Target>> = { wsgate: "ref-bun-pub", "wsgate-node": "ref-uws-pub" };
export type InboundOptions = { conns: number; duration: number; repeat: number; size: number; workers: number; rateMax: number; window: number; targets: Target[] };

const LABEL: Record<Target, string> = {
  wsgate: "wsgate (NATS, headers)",
  "ref-bun-pub": "ref: Bun.serve + nats.js publish",
  "wsgate-node": "wsgate on Node-uWS (NATS, headers)",
  "ref-uws-pub": "ref: uWS.js on Node + nats.js publish",
};
const PREFIX: Record<Target, string> = { wsgate: "ws", "ref-bun-pub": "ref", "wsgate-node": "ws", "ref-uws-pub": "ref" };

type PhaseRun = {
  target: Target;
  phase: string;
  ratePerConn: number;
  sent: number;
  skipped: number;
  serverIn: number;
  natsIn: number;
  received: number;
  /** per connection, from the sequence number in each payload: frames checked, skipped over (lost), repeated or reordered */
  seq: { checked: number; missing: number; outOfOrder: number; subjects: number } | null;
  subRate: number;
  latency: { p50: number; p90: number; p99: number; p999: number; max: number } | null;
  serverCores: number;
  natsCores: number;
  clientCores: number;
  subCores: number;
  machineCores: number;
  peakRssMiB: number;
  subEvents: string[];
  closes: Record<string, number>;
  errors: Record<string, number>;
};

async function start(t: Target, nats: Nats): Promise<Server> {
  if (t === "wsgate") return startGateway("inbound-wsgate", nats.url, { WSGATE_MAX_MSGS_PER_SEC: "0" });
  if (t === "wsgate-node") return startGateway("inbound-wsgate-node", nats.url, { WSGATE_MAX_MSGS_PER_SEC: "0" }, { runtime: "node" });
  if (t === "ref-uws-pub") return startRefUws("inbound-ref-uws-pub", { REF_MODE: "nats", NATS_URL: nats.url, REF_PREFIX: PREFIX[t] });
  return startRef("inbound-ref-bun-pub", "nats", nats.url, PREFIX[t]);
}

async function drive(t: Target, s: Server, nats: Nats, o: InboundOptions, phase: string, ratePerConn: number, closedLoop: boolean): Promise<PhaseRun> {
  const sub = await Subscriber.start(`inbound-${t}-${phase}-subscriber`, nats.url, `${PREFIX[t]}.send.>`);
  const lg = Loadgen.start(`inbound-${t}-${phase}`, [
    "--url", s.wsUrl, "-n", String(o.conns), "-w", String(o.workers), "--mode", "send", "--rate", String(ratePerConn), "--size", String(o.size),
    "-d", String(o.duration), "--max-seconds", String(o.duration + 120), "-q",
    ...(closedLoop ? ["--window", String(o.window), "--feedback-url", sub.metricsUrl, "--feedback-metric", "wsgate_bench_sub_messages_total"] : []),
  ]);
  const m0 = await s.metrics();
  const v0 = await natsVarz(nats);
  await lg.ready(60_000);
  // the loadgen starts sending as soon as every connection is open: the clocks start here
  const c0 = { srv: s.cpu(), nats: cpuSeconds(nats.pid), sub: cpuSeconds(sub.pid), all: machineBusySeconds(), t: performance.now() };
  const watch = new ResourceWatch(s.pids);
  const lgPid = lg.pid;
  let lgCpu = 0;
  const lgTimer = setInterval(() => (lgCpu = Math.max(lgCpu, treeCpuSeconds(lgPid))), 250);
  const lgCpu0 = treeCpuSeconds(lgPid);
  const sum = await lg.done((o.duration + 130) * 1000);
  clearInterval(lgTimer);
  const c1 = { srv: s.cpu(), nats: cpuSeconds(nats.pid), sub: cpuSeconds(sub.pid), all: machineBusySeconds(), t: performance.now() };
  const secs = (c1.t - c0.t) / 1000;
  await natsQuiet(nats);
  const w = watch.stop();
  const m1 = await s.metrics();
  const v1 = await natsVarz(nats);
  const subSum = await sub.stop();
  const p = subSum.phases?.[0] ?? {};
  return {
    target: t,
    phase,
    ratePerConn,
    sent: sum.send?.messages ?? 0,
    skipped: sum.send?.skipped ?? 0,
    serverIn: (m1.wsgate_messages_in_total ?? 0) - (m0.wsgate_messages_in_total ?? 0),
    natsIn: v1.in_msgs - v0.in_msgs,
    received: p.messages ?? 0,
    seq: p.sequence ?? null,
    subRate: p.ratePerS ?? 0,
    latency: p.latencyMs ?? null,
    serverCores: (c1.srv - c0.srv) / secs,
    natsCores: (c1.nats - c0.nats) / secs,
    clientCores: (lgCpu - lgCpu0) / secs,
    subCores: (c1.sub - c0.sub) / secs,
    machineCores: (c1.all - c0.all) / secs,
    peakRssMiB: w.peakRss / MiB,
    subEvents: subSum.statusEvents ?? [],
    closes: sum.closes ?? {},
    errors: sum.errors ?? {},
  };
}

/** Sequence check over a target's runs: "checked / gaps / out of order". */
function seqCell(rs: PhaseRun[]): string {
  const s = rs.map((r) => r.seq).filter((x) => x !== null);
  if (s.length === 0) return "n/a";
  const sum = (f: (x: NonNullable<PhaseRun["seq"]>) => number) => s.reduce((a, x) => a + f(x!), 0);
  return `${fmt(sum((x) => x.checked))} / ${fmt(sum((x) => x.missing))} / ${fmt(sum((x) => x.outOfOrder))}`;
}

export async function runInbound(o: InboundOptions) {
  installCleanup();
  log(`inbound: ${fmt(o.conns)} connections → NATS, ${o.size} B frames, ${o.duration} s per run, targets ${o.targets.join(", ")}; logs in ${runDir()}`);
  await warnIfBusy("the inbound runs");
  const nats = await startNats();
  const servers = new Map<Target, Server>();
  const runs: PhaseRun[] = [];
  const describe = (r: PhaseRun) =>
    `${r.target} ${r.phase}: subscriber got ${fmt(r.received)} (${fmt(r.subRate)}/s), server read ${fmt(r.serverIn)}, nats in ${fmt(r.natsIn)}, client sent ${fmt(r.sent)} (skipped ${fmt(r.skipped)} at full sockets); ` +
    `cores: server ${r.serverCores.toFixed(2)}, nats ${r.natsCores.toFixed(2)}, clients ${r.clientCores.toFixed(2)}, subscriber ${r.subCores.toFixed(2)}, machine ${r.machineCores.toFixed(2)} of 2; server peak RSS ${fmt(r.peakRssMiB, 1)} MiB` +
    (r.latency ? `; latency p50 ${fmt(r.latency.p50, 2)} p99 ${fmt(r.latency.p99, 2)} ms` : "") +
    (r.seq ? `; sequence: ${fmt(r.seq.checked)} checked over ${fmt(r.seq.subjects)} connections, ${fmt(r.seq.missing)} missing, ${fmt(r.seq.outOfOrder)} out of order` : "") +
    (r.subEvents.length ? `; subscriber events: ${r.subEvents.join(" | ")}` : "") +
    (Object.keys(r.closes).length ? `; closes ${JSON.stringify(r.closes)}` : "") +
    (Object.keys(r.errors).length ? `; errors ${JSON.stringify(r.errors)}` : "");
  let latRate = 0;
  const latRates = new Map<Target, number>();
  try {
    for (const t of o.targets) servers.set(t, await start(t, nats));
    for (let i = 1; i <= o.repeat; i++) {
      for (const t of o.targets) {
        const r = await drive(t, servers.get(t)!, nats, o, `max${i}`, o.rateMax, true);
        runs.push(r);
        log(`  ${describe(r)}`);
      }
    }
    const maxOf = (t: Target) => median(runs.filter((r) => r.target === t && r.phase.startsWith("max")).map((r) => r.subRate));
    // The yardstick: a gateway and its reference both at half of the reference's saturation.
    for (const t of o.targets) {
      const lead = REF_OF[t] && o.targets.includes(REF_OF[t]!) ? REF_OF[t]! : t;
      const rate = Math.max(o.conns, Math.round(maxOf(lead) / 2 / o.conns) * o.conns);
      latRates.set(t, rate);
      latRate = Math.max(latRate, rate);
      log(`  ${t}: latency at ${fmt(rate)} msgs/s in total (half of ${lead}'s median max ${fmt(maxOf(lead))}/s)`);
      const r = await drive(t, servers.get(t)!, nats, o, "latency", rate / o.conns, false);
      runs.push(r);
      log(`  ${describe(r)}`);
    }
  } finally {
    for (const s of servers.values()) await s.stop();
    await nats.stop();
  }

  const refOf = (t: Target) => (REF_OF[t] && o.targets.includes(REF_OF[t]!) ? REF_OF[t]! : null);
  const maxOf = (t: Target) => median(runs.filter((r) => r.target === t && r.phase.startsWith("max")).map((r) => r.subRate));
  const latOf = (t: Target) => runs.find((r) => r.target === t && r.phase === "latency")?.latency ?? null;
  const rows: string[][] = [];
  const result: Record<string, unknown> = { latencyRate: latRate };
  for (const t of o.targets) {
    const maxRuns = runs.filter((r) => r.target === t && r.phase.startsWith("max"));
    const l = latOf(t);
    const lr = runs.find((r) => r.target === t && r.phase === "latency");
    const ref = refOf(t);
    rows.push([
      LABEL[t],
      fmt(maxOf(t)),
      ref ? ratio(maxOf(t), maxOf(ref)) : "",
      maxRuns.map((r) => fmt(r.subRate)).join(" / "),
      fmt(median(maxRuns.map((r) => r.serverCores)), 2),
      fmt(median(maxRuns.map((r) => r.natsCores)), 2),
      fmt(median(maxRuns.map((r) => r.peakRssMiB)), 0),
      fmt(latRates.get(t)),
      fmt(l?.p50, 2),
      fmt(l?.p99, 2),
      ref ? ratio(l?.p99 ?? NaN, latOf(ref)?.p99 ?? NaN) : "",
      fmt(l?.p999, 2),
      fmt(lr ? lr.sent - lr.received : NaN),
      seqCell(runs.filter((r) => r.target === t)),
    ]);
    result[t] = { maxPerS: maxOf(t), latencyRate: latRates.get(t), latencyMs: l, runs: runs.filter((r) => r.target === t) };
  }
  console.log(
    `\nInbound clients → NATS: ${fmt(o.conns)} connections, ${o.size} B text frames, a NATS subscriber on <prefix>.send.>; ${o.duration} s per run\n` +
      table(["server", "max msg/s (median)", "vs ref", "each run", "server cores", "nats cores", "server peak MiB", "lat. @ msg/s", "p50 ms", "p99 ms", "p99 vs ref", "p99.9 ms", "lost", "per conn: checked / gaps / out of order"], rows) +
      `\nmax msg/s: received by the subscriber between its first and last message; clients keep ≤ ${fmt(o.window)} messages in flight (closed loop on the subscriber's count).` +
      `\nlatency: a fixed total rate (half the reference's max), client send time → subscriber; lost = sent − received in that run.` +
      `\nper conn: every payload carries its connection's sequence number; the subscriber counts numbers skipped (gaps) and numbers at or below one already seen (out of order), over all runs.\n`,
  );
  return result;
}

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      conns: { type: "string", default: "1000" },
      duration: { type: "string", default: "5" },
      repeat: { type: "string", default: "1" },
      size: { type: "string", default: "32" },
      workers: { type: "string", default: "1" },
      "rate-max": { type: "string", default: "1000000" },
      window: { type: "string", default: "100000" },
      targets: { type: "string", default: INBOUND_TARGETS.join(",") },
    },
  });
  const targets = v.targets!.split(",").map((s) => s.trim()) as Target[];
  for (const t of targets) if (!INBOUND_TARGETS.includes(t)) throw new Error(`unknown target ${t}; known: ${INBOUND_TARGETS.join(", ")}`);
  const t0 = Date.now();
  await runInbound({
    conns: argInt(v.conns, "conns", 1, 19_000, 1000),
    duration: argInt(v.duration, "duration", 1, 120, 5),
    repeat: argInt(v.repeat, "repeat", 1, 10, 1),
    size: argInt(v.size, "size", 24, 65536, 32),
    workers: argInt(v.workers, "workers", 1, 16, 1),
    rateMax: argInt(v["rate-max"], "rate-max", 1, 1_000_000, 1_000_000),
    window: argInt(v.window, "window", 100, 10_000_000, 100_000),
    targets,
  });
  log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  process.exit(0);
}
