// Benchmark: group fan-out and the memory of a membership, each beside its reference.
//
//   fanout   one group of --conns members on one node (embedded broker), --messages text
//            messages of 32 bytes (a send time first), published one after another through
//            POST /v1/groups/<svc>/<group>; figure: deliveries/s received by the clients
//            (loadgen, from the first to the last message) and the latency p99.
//            Reference: bare Bun.serve, the same sockets subscribed to one native topic,
//            published with server.publish through POST /publish (scripts/bench/ref-topic.ts).
//   memory   --conns connections, then every user put in --groups groups (PUT per membership,
//            applied to the open sockets at once); RSS and heap after a full GC before and after.
//            Figure: bytes per membership (the node's membership index plus the native topic
//            subscription). Reference: the same count of native subscriptions on bare Bun.serve.
//   broadcast (Bun) a service of --conns users split over 2 gateway nodes on one nats-server
//            (mailbox off, no broadcast cap): --messages broadcasts published on ws.bcast.<svc> at
//            once (deliveries/s at the clients), then 5 broadcasts/s for 10 s (latency publish →
//            delivery from the send time in each payload; its p99 and max stand for "publish →
//            last delivery", which no client can see per message). No reference: nothing else
//            here fans one publish out to two nodes' sockets.
//
// Both on Bun (Bun.serve) and on Node (uWS: the gateway vs bare uWS.js app.publish, ref-uws-topic.mjs).
//
//   bun scripts/bench/groups.ts [--conns 10000] [--messages 200] [--groups 10] [--repeat 3 (fan-out pairs)] [--only fanout,memory] [--runtimes bun,node]
import { join } from "node:path";
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import { argInt, BUN, fmt, installCleanup, Loadgen, log, median, type Server, sleep, startGateway, startNats, startServer, table, waitMetrics } from "./lib.ts";

export type GroupsOptions = { conns: number; messages: number; groups: number; workers: number; repeat: number; only: Set<string>; runtimes: string[] };
type Target = "wsgate" | "ref-topic" | "wsgate-node" | "ref-uws-topic";
/** Each runtime's pair: the reference first. */
const PAIRS: Record<string, [Target, Target]> = { bun: ["ref-topic", "wsgate"], node: ["ref-uws-topic", "wsgate-node"] };
const SVC = "bench";

function start(t: Target): Promise<Server> {
  const caps = { WSGATE_MAX_GROUP_MEMBERS: "0", WSGATE_MAX_GROUPS_PER_USER: "0" };
  if (t === "wsgate") return startGateway("groups-wsgate", null, caps);
  if (t === "wsgate-node") return startGateway("groups-wsgate-node", null, caps, { runtime: "node" });
  if (t === "ref-uws-topic") {
    const cmd = ["sh", "-c", `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec node ${join(import.meta.dir, "ref-uws-topic.mjs")}`];
    return startServer("groups-ref-uws-topic", cmd, {}, "/readyz", { runtime: "node" });
  }
  return startServer("groups-ref-topic", [BUN, join(import.meta.dir, "ref-topic.ts")], {}, "/readyz");
}

const base = (s: Server) => `http://127.0.0.1:${s.port}`;

/** PUTs every (user, group) membership with a bounded number in flight. */
async function putMembers(s: Server, users: number, groups: number) {
  const total = users * groups;
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= total) return;
      const r = await fetch(`${base(s)}/v1/groups/${SVC}/g${i % groups}/members/u${Math.floor(i / groups)}`, { method: "PUT" });
      if (r.status !== 200) throw new Error(`PUT membership ${i}: ${r.status} ${await r.text()}`);
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}

/** 32 bytes, the send time first (loadgen reads it for latency). */
function payload(): string {
  return (performance.timeOrigin + performance.now()).toFixed(3).padEnd(32, " ");
}

async function fanout(t: Target, o: GroupsOptions) {
  const s = await start(t);
  try {
    if (t.startsWith("wsgate")) await putMembers(s, o.conns, 1);
    const lg = Loadgen.start(`groups-${t}-fanout`, [
      "--url", s.wsUrl, "-n", String(o.conns), "-w", String(o.workers), "--mode", "recv", "--svc", SVC, "-d", "0",
      "--max-seconds", "600", "-q", "--count-to", String(o.messages), "--until-counted",
    ]);
    await lg.ready(180_000);
    await waitMetrics(s, (m) => m.wsgate_connections >= o.conns, 30_000, `${o.conns} connections`);
    const url = t.startsWith("wsgate") ? `${base(s)}/v1/groups/${SVC}/g0` : `${base(s)}/publish`;
    const t0 = performance.now();
    for (let i = 0; i < o.messages; i++) {
      const r = await fetch(url, { method: "POST", body: payload() });
      if (r.status !== 202) throw new Error(`publish: ${r.status}`);
    }
    const publishS = (performance.now() - t0) / 1000;
    const sum = await lg.done(300_000);
    // Nothing else reaches these sockets: the whole run's first to last message is the fan-out.
    const recv = sum.recv;
    const got: number = recv.messages;
    const rate = recv.spanS > 0 ? got / recv.spanS : 0;
    log(`${t}: ${got} of ${o.messages * o.conns} deliveries, ${fmt(rate)}/s, publishing took ${publishS.toFixed(2)} s`);
    return { target: t, deliveries: got, expected: o.messages * o.conns, perS: rate, p99Ms: recv.latencyMs?.p99 ?? null };
  } finally {
    await s.stop();
  }
}

async function memory(t: Target, o: GroupsOptions) {
  const s = await start(t);
  try {
    const lg = Loadgen.start(`groups-${t}-memory`, ["--url", s.wsUrl, "-n", String(o.conns), "-w", String(o.workers), "--mode", "idle", "--svc", SVC, "-d", "0", "--max-seconds", "900", "-q"]);
    await lg.ready(180_000);
    await waitMetrics(s, (m) => m.wsgate_connections >= o.conns, 30_000, `${o.conns} connections`);
    const before = await s.gc();
    if (t.startsWith("wsgate")) await putMembers(s, o.conns, o.groups);
    else await fetch(`${base(s)}/subscribe?topics=${o.groups + 1}`, { method: "POST" });
    const after = await s.gc();
    await lg.stop();
    if (!before || !after) throw new Error(`${t}: no heap figures (GC hook)`);
    const n = o.conns * o.groups;
    const r = { target: t, memberships: n, rssPer: (after.rss - before.rss) / n, heapPer: (after.heapSize + after.extraMemorySize - before.heapSize - before.extraMemorySize) / n };
    log(`${t}: ${n} memberships, ${fmt(r.rssPer)} B RSS and ${fmt(r.heapPer)} B heap each`);
    return r;
  } finally {
    await s.stop();
  }
}

async function broadcast(o: GroupsOptions) {
  const nats = await startNats();
  const env = { WSGATE_MAILBOX: "off", WSGATE_MAX_BROADCASTS_PER_SEC: "0" };
  const nodes = await Promise.all([startGateway("groups-bcast-a", nats.url, env), startGateway("groups-bcast-b", nats.url, env)]);
  const nc = await connect({ servers: nats.url });
  try {
    const half = Math.floor(o.conns / 2);
    /** Connects both halves, publishes, and waits until every connection got `count` messages. */
    const run = async (phase: string, count: number, publish: () => Promise<void>) => {
      const lgs = nodes.map((n, i) =>
        Loadgen.start(`groups-bcast-${phase}-${i}`, [
          "--url", n.wsUrl, "-n", String(half), "--user-offset", String(i * half), "--mode", "recv", "--svc", SVC, "-d", "0",
          "--max-seconds", "600", "-q", "--count-to", String(count), "--until-counted",
        ]),
      );
      for (const lg of lgs) await lg.ready(180_000);
      for (const n of nodes) await waitMetrics(n, (m) => m.wsgate_connections >= half && m.wsgate_group_subscriptions >= 1, 30_000, `${half} connections`);
      await publish();
      const sums = await Promise.all(lgs.map((lg) => lg.done(300_000)));
      return { msgs: sums.reduce((a, x) => a + x.recv.messages, 0), sums };
    };
    const blast = await run("max", o.messages, async () => {
      for (let i = 0; i < o.messages; i++) nc.publish(`ws.bcast.${SVC}`, payload());
      await nc.flush();
    });
    const span = Math.max(...blast.sums.map((x) => x.recv.spanS));
    const paced = await run("latency", 50, async () => {
      for (let i = 0; i < 50; i++) {
        nc.publish(`ws.bcast.${SVC}`, payload());
        await sleep(200);
      }
    });
    const lat = paced.sums.map((x) => x.recv.latencyMs);
    const r = {
      deliveries: blast.msgs,
      expected: o.messages * half * 2,
      perS: span > 0 ? blast.msgs / span : 0,
      p99Ms: Math.max(...lat.map((l) => l?.p99 ?? 0)),
      maxMs: Math.max(...lat.map((l) => l?.max ?? 0)),
    };
    console.log(`\nBroadcast to a service of ${half * 2} users over 2 nodes (Bun, NATS): ${o.messages} at once, then 5/s for 10 s\n`);
    console.log(table(["deliveries", "deliveries/s", "latency p99 ms (5/s)", "max ms"], [[`${r.deliveries}/${r.expected}`, fmt(r.perS), fmt(r.p99Ms, 1), fmt(r.maxMs, 1)]]));
    return r;
  } finally {
    await nc.close();
    await Promise.all(nodes.map((n) => n.stop()));
    await nats.stop();
  }
}

export async function runGroups(o: GroupsOptions) {
  const out: Record<string, unknown> = {};
  if (o.only.has("broadcast")) out.broadcast = await broadcast(o);
  for (const rt of o.runtimes) {
    const pair = PAIRS[rt];
    if (o.only.has("fanout")) {
      // reference and gateway alternately, --repeat pairs: the machine's drift falls on both
      const runs: Awaited<ReturnType<typeof fanout>>[][] = [];
      for (let i = 0; i < o.repeat; i++) {
        const pairRuns = [];
        for (const t of pair) pairRuns.push(await fanout(t, o));
        runs.push(pairRuns);
      }
      const perPair = runs.map((p) => p[1].perS / p[0].perS);
      const rows = pair.map((t, k) => {
        const mine = runs.map((p) => p[k]);
        return {
          target: t,
          deliveries: median(mine.map((r) => r.deliveries)),
          expected: mine[0].expected,
          perS: median(mine.map((r) => r.perS)),
          p99Ms: median(mine.map((r) => r.p99Ms ?? NaN)),
          vsRef: k === 0 ? "" : `${median(perPair).toFixed(2)}× (${perPair.map((x) => x.toFixed(2)).join(", ")})`,
        };
      });
      console.log(`\nGroup fan-out: one group of ${o.conns} members on one node, ${o.messages} messages of 32 bytes (${rt}; medians of ${o.repeat}, alternating)\n`);
      console.log(table(["target", "deliveries", "deliveries/s", "vs ref (median of pairs; each pair)", "p99 ms"], rows.map((r) => [r.target, `${r.deliveries}/${r.expected}`, fmt(r.perS), r.vsRef, fmt(r.p99Ms, 1)])));
      out[`fanout-${rt}`] = { rows, perPair };
    }
    if (o.only.has("memory")) {
      const rows = [];
      for (const t of pair) rows.push(await memory(t, o));
      console.log(`\nMemory per membership: ${o.conns} connections each in ${o.groups} groups, after a full GC (${rt})\n`);
      console.log(table(["target", "memberships", "RSS B each", "heap B each"], rows.map((r) => [r.target, String(r.memberships), fmt(r.rssPer), fmt(r.heapPer)])));
      out[`memory-${rt}`] = rows;
    }
  }
  return out;
}

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      conns: { type: "string", default: "10000" },
      messages: { type: "string", default: "200" },
      groups: { type: "string", default: "10" },
      workers: { type: "string", default: "1" },
      repeat: { type: "string", default: "3" },
      only: { type: "string", default: "fanout,memory,broadcast" },
      runtimes: { type: "string", default: "bun,node" },
    },
  });
  installCleanup();
  await runGroups({
    conns: argInt(v.conns, "--conns", 1, 19_000, 10_000),
    messages: argInt(v.messages, "--messages", 1, 100_000, 200),
    groups: argInt(v.groups, "--groups", 1, 1_000, 10),
    workers: argInt(v.workers, "--workers", 1, 16, 1),
    repeat: argInt(v.repeat, "--repeat", 1, 9, 3),
    only: new Set(v.only.split(",")),
    runtimes: v.runtimes.split(",").filter((r) => r in PAIRS),
  });
  process.exit(0);
}
