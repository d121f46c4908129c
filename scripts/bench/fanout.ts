// Benchmark: fan-out NATS → WebSocket clients.
//
// Each target server holds --conns connections of distinct users (loadgen, recv mode). A
// publisher process publishes 32-byte messages to --users of those users (spread over all
// loadgen workers), each payload starting with its send time:
//   max      as fast as the server keeps up: at most --window messages in flight, counted from
//            the server's own wsgate_messages_out_total (closed loop, --duration s, --repeat runs
//            per target, targets interleaved). Figure: messages/s received by the clients.
//   latency  a fixed rate, half of the gateway's (mailbox on) median max, the same for every
//            target (a target whose own max is lower runs at half of its own), --duration s;
//            client-side latency p50/p99/p99.9/max from the embedded send time. --latency-rate N
//            fixes the rate instead (the same again for every target), e.g. to compare two builds.
//
// Targets (all up at once on one nats-server, each on its own subjects, each with its own load
// client; only one is driven at a time):
//   wsgate        the gateway (scripts/start.sh bun), NATS mode, defaults: mailbox on, so each
//                 message is stored in JetStream and republished to the gateway. Its stream is
//                 purged before every run, so no user's mailbox reaches its cap (1,000) mid-run.
//   wsgate-mbfull the same with every mailbox full (cap 10 per user, filled before the runs):
//                 the steady state of users who get more than the cap within the max age. On
//                 nats-server 2.9.10 enforcing a per-subject limit makes each stored message
//                 much more expensive (measured ~110k/s → ~6k/s ingest on this box), so this
//                 row differs a lot from the one above.
//   wsgate-nomb   the gateway with WSGATE_MAILBOX=off: core NATS subscriptions only
//   ref-bun-nats  bare Bun.serve + one plain nats.js subscription per user, forwarding data
//   wsgate-r3     the gateway as "wsgate" on a three-server cluster of its own (scripts/nats-cluster.ts)
//                 with WSGATE_MAILBOX_REPLICAS=3: every message stored on three servers; "nats cores"
//                 are the three servers' together
//   ref-bun-js    the same reference fed through JetStream: its users' subjects are captured by a
//                 stream created with the gateway's own mailbox code and defaults (file storage,
//                 limits, RePublish), and it subscribes to the republished <prefix>.live.<svc>.<user>.
//                 It pays nats-server's storage and republish cost like the gateway with the mailbox
//                 does, and nothing else (no headers read, no sequence chain, no cursors). Purged
//                 before every run like the gateway's stream.
// Only with --targets (Node-uWS, what scripts/start.sh's `--max-semi-space-size=2` costs):
//   wsgate-node          the gateway on Node-uWS as scripts/start.sh runs it (mailbox on)
//   wsgate-node-v8       the same bundle run with node's default young generation (no flag)
//   wsgate-node-nomb, wsgate-node-nomb-v8   the two above with WSGATE_MAILBOX=off
//
//   bun scripts/bench/fanout.ts [--conns 10000] [--users 1000] [--duration 10] [--repeat 3] [--targets a,b,...] [--latency-rate 0]
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import {
  argInt, cpuSeconds, treeCpuSeconds, fmt, installCleanup, Loadgen, log, machineBusySeconds, median, type Nats, runDir, runPublisher,
  purgeStream, ratio, warnIfBusy, type Server, sleep, startGateway, startNats, startNodeGatewayWith, startRef, table, waitCatchups, waitMetrics,
} from "./lib.ts";
import { natsPids, startClusterNats } from "./cluster.ts";
import { loadConfig } from "../../app/ops/config.ts";
import { MailboxStore } from "../../app/mailbox/store.ts";
import { subjects } from "../../app/core/subjects.ts";

/** What `npm run bench` runs. */
export const FANOUT_TARGETS = ["wsgate", "wsgate-mbfull", "wsgate-nomb", "ref-bun-nats", "ref-bun-js", "wsgate-r3"] as const;
/** Also known, run only when named in --targets. */
export const NODE_FANOUT_TARGETS = ["wsgate-node", "wsgate-node-v8", "wsgate-node-nomb", "wsgate-node-nomb-v8"] as const;
const ALL_TARGETS = [...FANOUT_TARGETS, ...NODE_FANOUT_TARGETS] as const;
type Target = (typeof ALL_TARGETS)[number];
const REFS: Target[] = ["ref-bun-nats", "ref-bun-js"];
/** Node's flag in scripts/start.sh that the -v8 targets leave out. */
const SEMI_SPACE_FLAG = "--max-semi-space-size=2";

export type FanoutOptions = {
  conns: number;
  users: number;
  duration: number;
  repeat: number;
  workers: number;
  size: number;
  targets: Target[];
  /** msgs/s of the latency runs; 0: half of the gateway's median max (comparing two builds needs one fixed rate) */
  latencyRate?: number;
};

const LABEL: Record<Target, string> = {
  wsgate: "wsgate (mailbox on, below cap)",
  "wsgate-mbfull": "wsgate (mailbox on, mailboxes full)",
  "wsgate-nomb": "wsgate (mailbox off)",
  "ref-bun-nats": "ref: Bun.serve + nats.js sub/user",
  "ref-bun-js": "ref: the same, fed through a JetStream stream",
  "wsgate-r3": "wsgate (mailbox on, 3 servers, replicas 3)",
  "wsgate-node": `wsgate Node-uWS (mailbox on, ${SEMI_SPACE_FLAG})`,
  "wsgate-node-v8": "wsgate Node-uWS (mailbox on, V8 default)",
  "wsgate-node-nomb": `wsgate Node-uWS (mailbox off, ${SEMI_SPACE_FLAG})`,
  "wsgate-node-nomb-v8": "wsgate Node-uWS (mailbox off, V8 default)",
};

/** `nats`: the shared server, or the target's own three-server cluster (wsgate-r3), stopped with it */
type Side = { target: Target; server: Server; lg: Loadgen; prefix: string; svc: string; purge: string | null; nats: Nats; ownNats: boolean };

type PhaseRun = {
  target: Target;
  phase: string;
  published: number;
  pubRate: number;
  /** deliveries the server counted from publisher start until it exited (after draining) per second */
  srvRate: number;
  stalls: number;
  serverCpu: number; // cores used by the server during the phase
  natsCpu: number;
  clientCpu: number; // the target's loadgen (parent + workers)
  pubCpu: number; // the publisher process
  machineCpu: number; // cores busy on the whole machine
  notes: Record<string, number>; // server counter deltas worth seeing (drops, backpressure...)
};

const WATCH = [
  "wsgate_dropped_total",
  "wsgate_backpressure_total",
  "wsgate_slow_consumers_total",
  "wsgate_mailbox_gaps_healed_total",
  "wsgate_mailbox_duplicates_skipped_total",
  "wsgate_mailbox_catchup_errors_total",
  "wsgate_broker_reconnects_total",
];

async function startSide(t: Target, shared: Nats, o: FanoutOptions): Promise<Side> {
  let server: Server, prefix: string, svc: string;
  let purge: string | null = null;
  const nats = t === "wsgate-r3" ? await startClusterNats() : shared;
  if (t === "wsgate-r3") {
    [prefix, svc, purge] = ["ws", "gw", "WSGATE"];
    server = await startGateway(t, nats.url, { WSGATE_MAILBOX_STREAM: purge, WSGATE_MAILBOX_REPLICAS: "3" });
  } else if (t === "wsgate") {
    [prefix, svc, purge] = ["ws", "gw", "WSGATE"];
    server = await startGateway(t, nats.url, { WSGATE_MAILBOX_STREAM: purge });
  } else if (t === "wsgate-mbfull") {
    [prefix, svc] = ["wsfull", "gw"];
    server = await startGateway(t, nats.url, { WSGATE_SUBJECT_PREFIX: prefix, WSGATE_MAILBOX_STREAM: "WSFULL", WSGATE_MAILBOX_MAX_PER_USER: "10" });
  } else if (t === "wsgate-nomb") {
    [prefix, svc] = ["wsoff", "gw"];
    server = await startGateway(t, nats.url, { WSGATE_MAILBOX: "off", WSGATE_SUBJECT_PREFIX: prefix });
  } else if (t === "ref-bun-nats") {
    [prefix, svc] = ["ref", "ref"];
    server = await startRef(t, "nats", nats.url, prefix);
  } else if (t === "ref-bun-js") {
    [prefix, svc, purge] = ["refjs", "ref", "REFJS"];
    await createMailboxStream(nats.url, prefix, purge);
    server = await startRef(t, "nats", nats.url, prefix, { subscribe: "live" });
  } else {
    // Node-uWS: each variant on subjects (and, with the mailbox, a stream) of its own
    const mailbox = !t.includes("-nomb");
    const v8default = t.endsWith("-v8");
    prefix = t.replace("wsgate-", "ws").replaceAll("-", "");
    svc = "gw";
    purge = mailbox ? prefix.toUpperCase() : null;
    const env: Record<string, string> = { WSGATE_SUBJECT_PREFIX: prefix, ...(mailbox ? { WSGATE_MAILBOX_STREAM: purge! } : { WSGATE_MAILBOX: "off" }) };
    server = v8default
      ? await startNodeGatewayWith(t, nats.url, [], env)
      : await startGateway(t, nats.url, env, { runtime: "node" });
  }
  const subs0 = await nats.subscriptions();
  const lg = Loadgen.start(`${t}-recv`, [
    "--url", server.wsUrl, "-n", String(o.conns), "-w", String(o.workers), "--mode", "recv", "--svc", svc,
    "-d", "0", "--max-seconds", "1500", "-q",
  ]);
  const ready = await lg.ready(180_000);
  await waitMetrics(server, (m) => m.wsgate_connections >= ready.open && m.wsgate_users >= ready.open, 20_000, `${ready.open} connections`);
  const until = Date.now() + 20_000;
  let subs = 0;
  while ((subs = await nats.subscriptions()) < subs0 + ready.open && Date.now() < until) await sleep(200);
  await waitCatchups(server, ready.open);
  log(`  ${t}: ${ready.open}/${o.conns} connected in ${(ready.ms / 1000).toFixed(1)} s, ${subs - subs0} new NATS subscriptions`);
  lg.phase("idle");
  return { target: t, server, lg, prefix, svc, purge, nats, ownNats: nats !== shared };
}

/** A mailbox stream exactly as the gateway makes it (its own code, its defaults), on other subjects. */
async function createMailboxStream(natsUrl: string, prefix: string, stream: string) {
  const config = loadConfig({ NATS_URL: natsUrl, WSGATE_SUBJECT_PREFIX: prefix, WSGATE_MAILBOX_STREAM: stream });
  const nc = await connect({ servers: natsUrl.split(","), name: "wsgate-bench-admin" });
  try {
    await new MailboxStore(config.mailbox!, subjects(prefix)).attach(nc);
  } finally {
    await nc.close();
  }
}

async function drive(side: Side, o: FanoutOptions, phase: string, pubArgs: string[]): Promise<PhaseRun> {
  const s = side.server;
  const nats = side.nats;
  const natsCpu = () => natsPids(nats).reduce((a, p) => a + cpuSeconds(p), 0);
  if (side.purge) await purgeStream(nats.url, side.purge);
  const m0 = await s.metrics();
  side.lg.phase(phase);
  await sleep(100);
  const c0 = { srv: cpuSeconds(s.pid), nats: natsCpu(), lg: treeCpuSeconds(side.lg.pid), all: machineBusySeconds(), t: performance.now() };
  const stride = Math.max(1, Math.floor(o.conns / o.users));
  const outKey = "wsgate_messages_out_total";
  const pub = await runPublisher(`${side.target}-${phase}-publisher`, [
    "--nats", nats.url, "--prefix", side.prefix, "--svc", side.svc, "--users", String(Math.min(o.users, o.conns)),
    "--user-stride", String(stride), "--duration", String(o.duration), "--size", String(o.size),
    "--feedback-url", s.metricsUrl, "--max-seconds", String(o.duration + 60), ...pubArgs,
  ], (o.duration + 90) * 1000);
  const secs = (performance.now() - c0.t) / 1000;
  const out1 = (await s.metrics())[outKey] ?? NaN;
  const c1 = { srv: cpuSeconds(s.pid), nats: natsCpu(), lg: treeCpuSeconds(side.lg.pid), all: machineBusySeconds() };
  await sleep(300); // the last frames reach the clients
  side.lg.phase("idle");
  const m1 = await s.metrics();
  const notes: Record<string, number> = {};
  for (const k of WATCH) if (k in m1 && m1[k] - (m0[k] ?? 0) > 0) notes[k.replace(/^wsgate_|_total$/g, "")] = m1[k] - (m0[k] ?? 0);
  return {
    target: side.target,
    phase,
    published: pub.published,
    pubRate: pub.ratePerS,
    srvRate: (out1 - (m0[outKey] ?? NaN)) / secs,
    stalls: pub.stalls,
    serverCpu: (c1.srv - c0.srv) / secs,
    natsCpu: (c1.nats - c0.nats) / secs,
    clientCpu: (c1.lg - c0.lg) / secs,
    pubCpu: pub.cpuSeconds / secs,
    machineCpu: (c1.all - c0.all) / secs,
    notes,
  };
}

export async function runFanout(o: FanoutOptions) {
  installCleanup();
  log(`fan-out: ${o.conns} connections per target, ${o.users} users published to, ${o.size} B messages, ${o.duration} s per run, ${o.repeat} max run(s); logs in ${runDir()}`);
  await warnIfBusy("the fan-out runs");
  const nats = await startNats();
  const sides: Side[] = [];
  const runs: PhaseRun[] = [];
  let latRate = 0;
  const latRates = new Map<Target, number>();
  const summaries = new Map<Target, any>();
  try {
    for (const t of o.targets) sides.push(await startSide(t, nats, o));
    for (const side of sides) {
      if (side.target !== "wsgate-mbfull") continue;
      // 20 messages per published-to user: past the cap of 10, so every later message evicts one
      const fill = await drive(side, { ...o, duration: 4 }, "prefill", ["--mode", "rate", "--rate", String(Math.ceil((Math.min(o.users, o.conns) * 20) / 4)), "--window", "20000"]);
      log(`  ${side.target}: mailboxes filled (${fmt(fill.published)} messages)`);
    }
    for (let r = 1; r <= o.repeat; r++) {
      for (const side of sides) {
        const run = await drive(side, o, `max${r}`, ["--mode", "max", "--window", "20000"]);
        runs.push(run);
        log(`  ${side.target} max run ${r}: published ${fmt(run.pubRate)}/s, server sent ${fmt(run.srvRate)}/s (${run.stalls} window stalls); ${cpuText(run)}` + notesText(run.notes));
      }
    }
    const gwMax = median(runs.filter((r) => r.target === (o.targets.includes("wsgate") ? "wsgate" : o.targets[0])).map((r) => Math.min(r.pubRate, r.srvRate)));
    latRate = o.latencyRate || Math.max(100, Math.round(gwMax / 2 / 100) * 100);
    log(`  latency runs at ${fmt(latRate)} msgs/s (${o.latencyRate ? "--latency-rate; " : "half of "}${o.targets.includes("wsgate") ? "wsgate" : o.targets[0]}'s median max ${fmt(gwMax)}/s)`);
    for (const side of sides) {
      // what the server really delivered: a backlog inside nats-server makes the publisher's own rate look higher
      const ownMax = median(runs.filter((r) => r.target === side.target && r.phase.startsWith("max")).map((r) => Math.min(r.pubRate, r.srvRate)));
      const rate = Math.min(latRate, Math.max(100, Math.round(ownMax / 2 / 100) * 100));
      latRates.set(side.target, rate);
      if (rate < latRate) log(`  ${side.target}: its max (${fmt(ownMax)}/s) is below ${fmt(latRate * 2)}/s: latency run at half of its own max, ${fmt(rate)}/s`);
      const run = await drive(side, o, "latency", ["--mode", "rate", "--rate", String(rate), "--window", String(Math.max(20000, rate * 2))]);
      runs.push(run);
      log(`  ${side.target} latency run: published ${fmt(run.pubRate)}/s (${run.stalls} stalls); ${cpuText(run)}` + notesText(run.notes));
    }
    for (const side of sides) summaries.set(side.target, await side.lg.stop());
  } finally {
    for (const side of sides) {
      await side.server.stop();
      if (side.ownNats) await side.nats.stop();
    }
    await nats.stop();
  }

  // ── report ──
  const rows: string[][] = [];
  const result: Record<string, unknown> = { latencyRate: latRate };
  for (const side of sides) {
    const t = side.target;
    const sum = summaries.get(t);
    const phases: any[] = sum?.phases ?? [];
    const maxRuns = runs.filter((r) => r.target === t && r.phase.startsWith("max"));
    const recvRates = maxRuns.map((r) => phases.find((p) => p.name === r.phase)?.recv?.ratePerS ?? NaN);
    const lost = maxRuns.reduce((a, r) => a + r.published - (phases.find((p) => p.name === r.phase)?.recv?.messages ?? 0), 0);
    const latRun = runs.find((r) => r.target === t && r.phase === "latency");
    const lat = phases.find((p) => p.name === "latency")?.recv;
    const latLost = latRun && lat ? latRun.published - lat.messages : NaN;
    const l = lat?.latencyMs;
    rows.push([
      LABEL[t],
      fmt(median(recvRates)),
      recvRates.map((x) => fmt(x)).join(" / "),
      fmt(median(maxRuns.map((r) => r.serverCpu)), 2),
      fmt(median(maxRuns.map((r) => r.natsCpu)), 2),
      fmt(lost),
      fmt(latRates.get(t)),
      fmt(l?.p50, 2),
      fmt(l?.p90, 2),
      fmt(l?.p99, 2),
      fmt(l?.p999, 2),
      fmt(l?.max, 1),
      fmt(latLost),
    ]);
    result[t] = { latencyRate: latRates.get(t), maxDeliveriesPerS: median(recvRates), maxRuns: recvRates, lostInMaxRuns: lost, latencyMs: l ?? null, lostInLatencyRun: latLost, clientErrors: sum?.errors, clientCloses: sum?.closes, runs: runs.filter((r) => r.target === t) };
  }
  console.log(
    `\nFan-out NATS → ${fmt(o.conns)} connected users; publisher → ${fmt(o.users)} of them, ${o.size} B messages, ${o.duration} s per run\n` +
      table(
        ["server", "max deliv/s (median)", "each run", "server cores", "nats cores", "lost", "lat. @ msg/s", "p50 ms", "p90", "p99", "p99.9", "max", "lost"],
        rows,
      ) +
      `\nmax: closed loop (≤ 20,000 in flight by the server's messages_out counter), rate measured by the clients between their first and last message.\n` +
      `latency: fixed ${fmt(latRate)} msgs/s (${o.latencyRate ? "--latency-rate" : "half the gateway's max"}; a server whose own max is lower: half of its own); send time embedded by the publisher, read by the clients.\n` +
      `cores: CPU used during the max runs (median) by the server process and by nats-server; the box has 2, shared with clients and publisher.\n`,
  );
  // Each gateway row against each reference of the same run: max deliveries (higher is better
  // for the gateway) and p99 at the fixed rate (the gateway's over the reference's).
  const refsRun = REFS.filter((r) => r in result);
  const ratioRows: string[][] = [];
  const ratios: Record<string, Record<string, { max: number; p99: number }>> = {};
  for (const side of sides) {
    const t = side.target;
    if (REFS.includes(t)) continue;
    const g = result[t] as any;
    ratios[t] = {};
    const row = [LABEL[t]];
    for (const ref of refsRun) {
      const r = result[ref] as any;
      ratios[t][ref] = { max: g.maxDeliveriesPerS / r.maxDeliveriesPerS, p99: (g.latencyMs?.p99 ?? NaN) / (r.latencyMs?.p99 ?? NaN) };
      row.push(ratio(g.maxDeliveriesPerS, r.maxDeliveriesPerS), ratio(g.latencyMs?.p99 ?? NaN, r.latencyMs?.p99 ?? NaN));
    }
    ratioRows.push(row);
  }
  result.ratios = ratios;
  if (refsRun.length && ratioRows.length) {
    console.log(
      `Same-run ratios (max: gateway / reference, target ≥ 0.70; p99 at the fixed rate: gateway / reference)\n` +
        table(["server", ...refsRun.flatMap((r) => [`max vs ${r}`, `p99 vs ${r}`])], ratioRows) +
        `\nref-bun-nats is fed by core NATS; ref-bun-js by the same JetStream storage + RePublish as the mailbox (nats-server's share).\n`,
    );
  }
  for (const side of sides) {
    const s = summaries.get(side.target);
    const errs = { ...(s?.errors ?? {}) };
    const closes = s?.closes ?? {};
    if (Object.keys(errs).length || Object.keys(closes).length) console.log(`${side.target}: client errors ${JSON.stringify(errs)} closes ${JSON.stringify(closes)}`);
  }
  return result;
}

function cpuText(r: PhaseRun) {
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "-");
  return `CPU cores: server ${f(r.serverCpu)}, nats-server ${f(r.natsCpu)}, clients ${f(r.clientCpu)}, publisher ${f(r.pubCpu)}, machine ${f(r.machineCpu)} of 2`;
}

function notesText(n: Record<string, number>) {
  const e = Object.entries(n);
  return e.length ? `; server counters: ${e.map(([k, v]) => `${k}=${v}`).join(" ")}` : "";
}

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      conns: { type: "string", default: "10000" },
      users: { type: "string", default: "1000" },
      duration: { type: "string", default: "10" },
      repeat: { type: "string", default: "3" },
      workers: { type: "string", default: "2" },
      size: { type: "string", default: "32" },
      targets: { type: "string", default: FANOUT_TARGETS.join(",") },
      "latency-rate": { type: "string", default: "0" },
    },
  });
  const targets = v.targets!.split(",").map((s) => s.trim()) as Target[];
  for (const t of targets) if (!ALL_TARGETS.includes(t)) throw new Error(`unknown target ${t}; known: ${ALL_TARGETS.join(", ")}`);
  const t0 = Date.now();
  await runFanout({
    conns: argInt(v.conns, "conns", 1, 19_500, 10_000),
    users: argInt(v.users, "users", 1, 19_500, 1000),
    duration: argInt(v.duration, "duration", 1, 120, 10),
    repeat: argInt(v.repeat, "repeat", 1, 10, 3),
    workers: argInt(v.workers, "workers", 1, 16, 2),
    size: argInt(v.size, "size", 24, 65536, 32),
    targets,
    latencyRate: argInt(v["latency-rate"], "latency-rate", 0, 1_000_000, 0),
  });
  log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  process.exit(0);
}
