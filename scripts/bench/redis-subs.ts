// What one served user costs on Redis, beside NATS:
//   broker  in this process, the Redis broker watching 10,000 user channels: heap and RSS per
//           subscription in the gateway, and Redis's used_memory per subscription (INFO memory)
//   idle    a Bun gateway with 5,000 idle connections of distinct users, on Redis and on NATS
//           (mailbox off): gateway RSS per connection, and the broker server's memory per user
//   bun scripts/bench/redis-subs.ts [--subs 10000] [--conns 5000]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { heapStats } from "bun:jsc";
import { RedisBroker } from "../../app/broker/redis.ts";
import { subjects } from "../../app/core/subjects.ts";
import { redisSettings } from "../../app/broker/redis-options.ts";
import { setLogLevel } from "../../app/ops/log.ts";
import { redisInfo, startRedis } from "../../tests/helpers/redis.ts";
import { startGateway, startNats, stopNatsAndClean, waitFor } from "../../tests/helpers/procs.ts";

const { values } = parseArgs({ options: { subs: { type: "string", default: "10000" }, conns: { type: "string", default: "5000" } } });
const SUBS = Number(values.subs);
const CONNS = Number(values.conns);

const rssOf = (pid: number | "self") => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
async function settledHeap() {
  Bun.gc(true);
  await Bun.sleep(100);
  Bun.gc(true);
  return heapStats().heapSize;
}

async function brokerCost() {
  setLogLevel("warn");
  const redis = await startRedis();
  let ready!: () => void;
  const connected = new Promise<void>((r) => (ready = r));
  const broker = new RedisBroker(
    { settings: redisSettings(redis.url), nodeId: "bench", subjects: subjects("ws"), sendMaxLen: 1000, mailbox: false },
    { deliver() {}, rewatchAll() {}, onState: (s) => s === "connected" && ready() },
  );
  await broker.start();
  await connected;
  const redis0 = await redisInfo(redis, "used_memory");
  const heap0 = await settledHeap();
  const rss0 = rssOf("self");
  const handles: unknown[] = [];
  for (let i = 0; i < SUBS; i++) handles.push(broker.watch(`ws.recv.bench.user${i}`));
  await waitFor("all subscribed", async () => Number(/pubsub_channels:(\d+)/.exec(await redis.cli("INFO", "stats"))?.[1]) >= SUBS, 60_000);
  const heap1 = await settledHeap();
  const rss1 = rssOf("self");
  const redis1 = await redisInfo(redis, "used_memory");
  await broker.close();
  await redis.clean();
  return { gatewayHeap: (heap1 - heap0) / SUBS, gatewayRss: (rss1 - rss0) / SUBS, redis: (redis1 - redis0) / SUBS, handles: handles.length };
}

async function idleCost(kind: "redis" | "nats") {
  const redis = kind === "redis" ? await startRedis() : null;
  const nats = kind === "nats" ? await startNats() : null;
  const env: Record<string, string> = { WSGATE_MAILBOX: "off", WSGATE_MAX_UPGRADES_PER_SEC: "0" };
  if (redis) env.REDIS_URL = redis.url;
  if (nats) env.NATS_URL = nats.url;
  const gw = await startGateway("bun", { env });
  const serverPid = (redis?.proc ?? nats!.proc).pid;
  const serverRss0 = rssOf(serverPid);
  const redis0 = redis ? await redisInfo(redis, "used_memory") : 0;
  await Bun.sleep(500);
  const rss0 = rssOf(gw.proc.pid);
  const sockets: WebSocket[] = [];
  for (let i = 0; i < CONNS; i += 200) {
    await Promise.all(
      Array.from({ length: Math.min(200, CONNS - i) }, (_, j) => {
        const ws = new WebSocket(gw.ws, { headers: { Cookie: `service=idle; user=u${i + j}` } } as unknown as string[]);
        sockets.push(ws);
        return new Promise((r, e) => ((ws.onopen = r), (ws.onerror = e)));
      }),
    );
  }
  await waitFor("users counted", async () => (await gw.metric("wsgate_users")) === CONNS, 60_000);
  await Bun.sleep(2_000);
  const rss1 = rssOf(gw.proc.pid);
  const serverRss1 = rssOf(serverPid);
  const redis1 = redis ? await redisInfo(redis, "used_memory") : 0;
  for (const ws of sockets) ws.close();
  await gw.stop("SIGKILL");
  if (redis) await redis.clean();
  if (nats) await stopNatsAndClean(nats);
  return { gatewayRssPerConn: (rss1 - rss0) / CONNS, serverRssPerUser: (serverRss1 - serverRss0) / CONNS, redisUsedPerUser: redis ? (redis1 - redis0) / CONNS : NaN };
}

const b = await brokerCost();
console.log(`broker, ${SUBS} channel subscriptions: gateway heap ${b.gatewayHeap.toFixed(0)} B/sub, gateway RSS ${b.gatewayRss.toFixed(0)} B/sub, Redis used_memory ${b.redis.toFixed(0)} B/sub`);
console.log(`| broker | gateway RSS per idle connection (${CONNS} users) | broker server RSS per user | Redis used_memory per user |`);
console.log("|---|---|---|---|");
for (const kind of ["redis", "nats"] as const) {
  const r = await idleCost(kind);
  console.log(`| ${kind} | ${r.gatewayRssPerConn.toFixed(0)} B | ${r.serverRssPerUser.toFixed(0)} B | ${Number.isNaN(r.redisUsedPerUser) ? "" : r.redisUsedPerUser.toFixed(0) + " B"} |`);
}
process.exit(0);
