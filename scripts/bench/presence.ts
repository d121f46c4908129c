// Benchmark: presence across 4 nodes (issue 12): one user's presence p50/p99, and the count
// for a service with 100,000 users spread over the nodes, asked by a service over NATS
// request/reply (ws.api.presence.*): service → one node (queue group) → scatter to all nodes
// → answers gathered → reply.
//
// Each node is a process running the real cluster code (NatsBroker, Cluster: membership,
// scatter, presence, the NATS service API) and the gateway's own LocalNode (GatewayNode over
// the core's Users table and Conn records), holding its share of the users without sockets:
// 100,000 real sockets over 4 gateways would not fit this machine's 20,000 open files per
// process next to the other benchmarks. What it measures is what a presence answer costs:
// the NATS round trips and each node's scan of its users.
//
//   bun scripts/bench/presence.ts [--users 100000] [--nodes 4] [--asks 2000] [--counts 50]
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import { NatsBroker } from "../../app/broker/nats.ts";
import { loadNatsLink } from "../../app/broker/nats-link.ts";
import { loadConfig } from "../../app/ops/config.ts";
import { Cluster } from "../../app/cluster/cluster.ts";
import { connNumbers } from "../../app/cluster/connid.ts";
import { GatewayNode } from "../../app/cluster/gateway-node.ts";
import { Conn } from "../../app/core/conn.ts";
import { subjects } from "../../app/core/subjects.ts";
import { Users } from "../../app/core/users.ts";
import { Metrics } from "../../app/ops/metrics.ts";
import { argInt, BUN, fmt, installCleanup, log, startNats, table } from "./lib.ts";

const SVC = "bench";

async function nodeMain(natsUrl: string, nodeId: string, from: number, to: number) {
  const subs = subjects("ws");
  const users = new Users(subs.recv);
  const metrics = new Metrics();
  const next = connNumbers();
  for (let i = from; i < to; i++) {
    const conn = new Conn({ svc: SVC, user: `u${i}` });
    conn.id = next();
    const entry = { key: subs.recv(SVC, `u${i}`), conns: conn, handle: null, lastSeq: -1, safeSeq: 0, held: null };
    conn.user = entry;
    users.add(entry);
  }
  metrics.connections = metrics.users = to - from;
  const transport = { runtime: "bun" as const, textAsString: true, send: () => 1, close() {} };
  const local = new GatewayNode({ nodeId, users, subjectOf: subs.recv, transport, metrics, gateway: { closeWith() {}, isDraining: () => false, broker: { state: () => "connected" } } });
  const broker = new NatsBroker(loadNatsLink(loadConfig({ NATS_URL: natsUrl }).nats!), `presence-bench ${nodeId}`, { deliver() {}, rewatchAll() {}, onState() {} });
  await broker.start();
  new Cluster(broker, local, { prefix: "ws", events: false, timing: { intervalMs: 500, missed: 3 } }).start();
  console.log("ready");
}

function pct(xs: number[], p: number) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function main() {
  setTimeout(() => {
    console.error("presence bench: over 5 minutes; stopping");
    process.exit(1);
  }, 300_000).unref();
  const { values } = parseArgs({ options: { users: { type: "string" }, nodes: { type: "string" }, asks: { type: "string" }, counts: { type: "string" }, node: { type: "string", multiple: true } } });
  if (values.node) {
    const [url, nodeId, from, to] = values.node;
    return nodeMain(url, nodeId, Number(from), Number(to));
  }
  const users = argInt(values.users, "--users", 1, 1_000_000, 100_000);
  const nodes = argInt(values.nodes, "--nodes", 1, 16, 4);
  const asks = argInt(values.asks, "--asks", 1, 100_000, 2_000);
  const counts = argInt(values.counts, "--counts", 1, 10_000, 50);
  installCleanup();
  const nats = await startNats();
  const per = Math.ceil(users / nodes);
  const procs = [];
  for (let n = 0; n < nodes; n++) {
    const args = ["--node", nats.url, "--node", `pb${n}`, "--node", String(n * per), "--node", String(Math.min(users, (n + 1) * per))];
    const p = Bun.spawn([BUN, import.meta.path, ...args], { stdout: "pipe", stderr: "inherit" });
    process.on("exit", () => p.kill("SIGKILL"));
    procs.push(p);
  }
  const nc = await connect({ servers: nats.url });
  const ask = async (subject: string, body = "") => {
    const t0 = performance.now();
    const m = await nc.request(subject, new TextEncoder().encode(body), { timeout: 5_000 });
    return { ms: performance.now() - t0, body: JSON.parse(new TextDecoder().decode(m.data)) };
  };
  log(`waiting for ${nodes} nodes holding ${users} users to see each other`);
  for (let i = 0; ; i++) {
    const r = await ask(`ws.api.presence.${SVC}`, JSON.stringify({ limit: 1 })).catch((err) => ({ ms: 0, body: { error: String(err) } }));
    if (r.body.users === users && r.body.missing.length === 0) break;
    if (i === 100) throw new Error(`the nodes did not come up: last answer ${JSON.stringify(r.body)}`);
    await Bun.sleep(100);
  }
  // warm-up, not counted: each node's presence, scatter and answer paths compiled, and the
  // start-up's garbage (25,000 users a node) collected, before the clock starts
  for (let i = 0; i < 300; i++) await ask(`ws.api.presence.${SVC}.u${(i * 104729) % users}`);
  for (let i = 0; i < 5; i++) await ask(`ws.api.presence.${SVC}`, JSON.stringify({ limit: 100 }));
  const one: number[] = [];
  for (let i = 0; i < asks; i++) {
    const r = await ask(`ws.api.presence.${SVC}.u${(i * 7919) % users}`);
    if (!r.body.online || r.body.missing.length) throw new Error(`bad answer: ${JSON.stringify(r.body)}`);
    one.push(r.ms);
  }
  const all: number[] = [];
  for (let i = 0; i < counts; i++) {
    const r = await ask(`ws.api.presence.${SVC}`, JSON.stringify({ limit: 100 }));
    if (r.body.users !== users || r.body.list.length !== 100) throw new Error(`bad count: ${JSON.stringify({ ...r.body, list: r.body.list.length })}`);
    all.push(r.ms);
  }
  console.log(`\npresence over ${nodes} nodes, ${users} users of one service (NATS request/reply, a service asking)\n`);
  console.log(
    table(
      ["question", "asks", "p50 ms", "p99 ms", "max ms"],
      [
        ["one user's presence", String(asks), fmt(pct(one, 50), 2), fmt(pct(one, 99), 2), fmt(Math.max(...one), 2)],
        [`count + first page of ${users} users`, String(counts), fmt(pct(all, 50), 1), fmt(pct(all, 99), 1), fmt(Math.max(...all), 1)],
      ],
    ),
  );
  await nc.close();
  for (const p of procs) p.kill("SIGKILL");
  await nats.stop();
  process.exit(0);
}

await main();
