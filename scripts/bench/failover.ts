// Benchmark: what losing a NATS server costs delivery, and what three replicas cost (issue 15).
//
// One Bun gateway (scripts/start.sh bun, mailbox on) with --users users, one raw WebSocket
// each (held by this process). A service in this process sends every user a numbered message
// each --interval ms: a JetStream publish that waits for its ack and, failing, is sent again
// (same Nats-Msg-Id, so the stream keeps it once) until it is stored.
//   r1        a single nats-server (replicas 1): the steady phase only
//   r3        a three-server cluster (scripts/nats-cluster.ts, WSGATE_MAILBOX_REPLICAS=3):
//               steady   --steady s; delivery latency (first send → arrival) p50/p99
//               leader   kill -9 of the server leading the mailbox stream
//               conn     kill -9 of the server the gateway is on (not the leader), after the
//                        first one restarted and caught up
//             per kill: how long the stream had no leader (kill → a new leader on the
//             monitoring endpoint), and per user the pause: kill → the arrival of the first
//             message first sent after the kill (p50/p99/max over users); then every stored
//             message must have arrived: lost and repeated are counted.
// Store rate, r1 beside r3: a closed loop of JetStream publishes (--window in flight) for --steady s.
//
//   bun scripts/bench/failover.ts [--users 200] [--interval 100] [--steady 5] [--window 256] [--runs 1]
import { parseArgs } from "node:util";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { argInt, fmt, installCleanup, log, runDir, sleep, startGateway, startNats, table, warnIfBusy, type Server } from "./lib.ts";
import { type NatsCluster, startCluster } from "../nats-cluster.ts";

const SVC = "fo";
const STREAM = "WSGATE";

type Options = { users: number; intervalMs: number; steadyS: number; window: number; runs: number };
type Kill = { what: string; killed: string; leaderlessMs: number; pause: { p50: number; p99: number; max: number }; retries: number };
type Steady = { latency: { p50: number; p99: number }; storeRate: number };

const pct = (xs: number[], p: number) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};

/** Users' sockets: arrival stamps of every numbered message, per user. */
class Clients {
  readonly arrivals: Map<number, number>[] = [];
  readonly repeats: number[] = [];
  private sockets: WebSocket[] = [];

  static async open(url: string, users: number): Promise<Clients> {
    const c = new Clients();
    await Promise.all(Array.from({ length: users }, (_, u) => c.one(url, u)));
    return c;
  }

  private one(url: string, u: number): Promise<void> {
    this.arrivals[u] = new Map();
    this.repeats[u] = 0;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: { Cookie: `service=${SVC}; user=u${u}` } } as unknown as string[]);
      ws.onmessage = (e) => {
        const n = Number(String(e.data).split(" ")[0]);
        if (this.arrivals[u].has(n)) this.repeats[u]++;
        else this.arrivals[u].set(n, Date.now());
      };
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`user u${u} could not connect`));
      this.sockets.push(ws);
    });
  }

  close() {
    for (const ws of this.sockets) ws.close();
  }
}

/** The service: every user a message per interval, each sent until stored. */
class Service {
  /** per user: message number → time of its first send */
  readonly firstSent: Map<number, number>[] = [];
  readonly stored: Set<number>[] = [];
  retries = 0;
  private running = true;
  private loops: Promise<void>[] = [];

  constructor(private js: JetStreamClient, users: number, intervalMs: number) {
    for (let u = 0; u < users; u++) {
      this.firstSent[u] = new Map();
      this.stored[u] = new Set();
      this.loops.push(this.loop(u, intervalMs, (u * intervalMs) / users));
    }
  }

  private async loop(u: number, intervalMs: number, offset: number) {
    await sleep(offset);
    for (let n = 0; this.running; n++) {
      const t = Date.now();
      this.firstSent[u].set(n, t);
      for (;;) {
        try {
          await this.js.publish(`ws.recv.${SVC}.u${u}`, `${n} ${t}`, { msgID: `u${u}-${n}`, timeout: 2_000 });
          this.stored[u].add(n);
          break;
        } catch {
          this.retries++;
          if (!this.running) return;
          await sleep(100);
        }
      }
      await sleep(Math.max(0, t + intervalMs - Date.now()));
    }
  }

  async stop() {
    this.running = false;
    await Promise.all(this.loops);
  }
}

/** Closed loop of acked JetStream publishes with `window` in flight: stored messages per second. */
async function storeRate(js: JetStreamClient, seconds: number, window: number): Promise<number> {
  const end = Date.now() + seconds * 1000;
  let done = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: window }, async (_, w) => {
      while (Date.now() < end) {
        await js.publish(`ws.recv.${SVC}.rate${w % 50}`, "x".repeat(32));
        done++;
      }
    }),
  );
  return done / ((performance.now() - t0) / 1000);
}

async function steady(js: JetStreamClient, gw: Server, o: Options): Promise<{ s: Steady; clients: Clients; service: Service }> {
  const clients = await Clients.open(gw.wsUrl, o.users);
  const service = new Service(js, o.users, o.intervalMs);
  await sleep(o.steadyS * 1000);
  const lat: number[] = [];
  for (let u = 0; u < o.users; u++) for (const [n, at] of clients.arrivals[u]) lat.push(at - (service.firstSent[u].get(n) ?? at));
  return { s: { latency: { p50: pct(lat, 50), p99: pct(lat, 99) }, storeRate: 0 }, clients, service };
}

async function killAndMeasure(what: string, cluster: NatsCluster, victim: number, clients: Clients, service: Service): Promise<Kill> {
  const retries0 = service.retries;
  const killedAt = Date.now();
  await cluster.kill(victim);
  await cluster.waitStreamLeader(STREAM, { timeoutMs: 60_000 });
  const leaderlessMs = Date.now() - killedAt;
  // every user gets at least one message first sent after the kill
  const firstAfter = (u: number) => {
    let best = Infinity;
    for (const [n, at] of clients.arrivals[u]) if ((service.firstSent[u].get(n) ?? 0) >= killedAt) best = Math.min(best, at);
    return best;
  };
  const until = Date.now() + 60_000;
  while (Date.now() < until && clients.arrivals.some((_, u) => firstAfter(u) === Infinity)) await sleep(50);
  const pauses = clients.arrivals.map((_, u) => firstAfter(u) - killedAt);
  return { what, killed: cluster.nodes[victim].name, leaderlessMs, pause: { p50: pct(pauses, 50), p99: pct(pauses, 99), max: Math.max(...pauses) }, retries: service.retries - retries0 };
}

/** After the service stopped: every stored message arrived? (bounded wait) */
async function tally(clients: Clients, service: Service): Promise<{ lost: number; repeated: number }> {
  const missing = () => service.stored.reduce((a, set, u) => a + [...set].filter((n) => !clients.arrivals[u].has(n)).length, 0);
  const until = Date.now() + 30_000;
  while (missing() > 0 && Date.now() < until) await sleep(100);
  return { lost: missing(), repeated: clients.repeats.reduce((a, b) => a + b, 0) };
}

async function connectJs(url: string): Promise<{ nc: NatsConnection; js: JetStreamClient }> {
  const nc = await connect({ servers: url.split(","), name: "wsgate-bench-failover", maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  return { nc, js: jetstream(nc, { timeout: 2_000 }) };
}

export async function runFailover(o: Options) {
  installCleanup();
  log(`failover: ${o.users} users, a message each per ${o.intervalMs} ms; logs in ${runDir()}`);
  await warnIfBusy("the failover benchmark");
  const rows: string[][] = [];
  const result: Record<string, unknown> = {};

  // r1: a single server
  {
    const nats = await startNats();
    const gw = await startGateway("failover-r1", nats.url);
    const { nc, js } = await connectJs(nats.url);
    try {
      const { s, clients, service } = await steady(js, gw, o);
      await service.stop();
      clients.close();
      s.storeRate = await storeRate(js, o.steadyS, o.window);
      result.r1 = s;
      rows.push(["1 server, replicas 1", fmt(s.latency.p50, 1), fmt(s.latency.p99, 1), fmt(s.storeRate), "-", "-", "-", "-"]);
    } finally {
      await nc.close();
      await gw.stop();
      await nats.stop();
    }
  }

  // r3: a three-server cluster
  const cluster = await startCluster();
  const gw = await startGateway("failover-r3", cluster.url, { WSGATE_MAILBOX_REPLICAS: "3" });
  const { nc, js } = await connectJs(cluster.url);
  try {
    await cluster.waitCurrent(STREAM);
    const { s, clients, service } = await steady(js, gw, o);
    const kills: Kill[] = [];
    for (let r = 0; r < o.runs; r++) {
      const leader = await cluster.waitStreamLeader(STREAM);
      kills.push(await killAndMeasure("stream leader", cluster, leader, clients, service));
      await cluster.start(leader);
      await cluster.waitCurrent(STREAM, 60_000);
      let lead = await cluster.waitStreamLeader(STREAM);
      const gwServer = await gatewayServer(cluster);
      for (let i = 0; i < 5 && gwServer === lead; i++) {
        // the gateway's server leads the stream: hand the leadership to another one first
        await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${STREAM}`, undefined, { timeout: 5_000 }).catch(() => {});
        lead = await cluster.waitStreamLeader(STREAM, { not: gwServer! }).catch(() => lead);
      }
      if (gwServer === null || gwServer === lead) {
        log(`  the gateway's server (${gwServer}) still leads the stream; its kill is skipped this run`);
      } else {
        kills.push(await killAndMeasure("the gateway's server (not the leader)", cluster, gwServer, clients, service));
        await cluster.start(gwServer);
        await cluster.waitCurrent(STREAM, 60_000);
      }
    }
    await service.stop();
    const t = await tally(clients, service);
    clients.close();
    s.storeRate = await storeRate(js, o.steadyS, o.window);
    result.r3 = { ...s, kills, lost: t.lost, repeated: t.repeated };
    rows.push(["3 servers, replicas 3", fmt(s.latency.p50, 1), fmt(s.latency.p99, 1), fmt(s.storeRate), "", "", "", ""]);
    for (const k of kills) {
      rows.push([`  kill -9: ${k.what} (${k.killed})`, "", "", "", fmt(k.leaderlessMs), `${fmt(k.pause.p50)} / ${fmt(k.pause.p99)} / ${fmt(k.pause.max)}`, fmt(k.retries), ""]);
    }
    rows.push(["  after every kill", "", "", "", "", "", "", `${t.lost} lost, ${t.repeated} repeated`]);
  } finally {
    await nc.close();
    await gw.stop();
    await cluster.close();
  }
  console.log(
    `\nNATS server loss: ${o.users} users on one Bun gateway (mailbox on), each sent a message every ${o.intervalMs} ms by a JetStream publisher awaiting acks\n` +
      table(["", "latency p50 ms", "p99 ms", "stored/s (closed loop)", "leaderless ms", "pause p50 / p99 / max ms", "publish retries", "delivery"], rows) +
      `\npause: per user, from the kill to the arrival of the first message first sent after it. leaderless: from the kill until a server reports itself the stream's leader.` +
      `\nstored/s: ${o.window} JetStream publishes in flight, each awaiting its ack, for ${o.steadyS} s.\n`,
  );
  return result;
}

/** The server the gateway's NATS connection is on (its connection name is `wsgate <node id>`). */
async function gatewayServer(cluster: NatsCluster): Promise<number | null> {
  return cluster.serverOf("wsgate ");
}

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      users: { type: "string", default: "200" },
      interval: { type: "string", default: "100" },
      steady: { type: "string", default: "5" },
      window: { type: "string", default: "256" },
      runs: { type: "string", default: "1" },
    },
  });
  const t0 = Date.now();
  await runFailover({
    users: argInt(v.users, "users", 1, 5_000, 200),
    intervalMs: argInt(v.interval, "interval", 10, 10_000, 100),
    steadyS: argInt(v.steady, "steady", 1, 600, 5),
    window: argInt(v.window, "window", 1, 10_000, 256),
    runs: argInt(v.runs, "runs", 1, 20, 1),
  });
  log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  process.exit(0);
}
