// Redis beside NATS in the same run, one Bun gateway each:
//   fanout  --users sockets of distinct users; --messages published round-robin to them by a
//           service in a process of its own (pipelined PUBLISH / core publish, mailbox off);
//           delivered messages per second
//   storm   --storm users, each with 5 messages stored while offline (mailbox on), all connecting
//           at once; seconds until every message has arrived
//   bun scripts/bench/redis-vs-nats.ts [--users 1000] [--messages 100000] [--storm 10000]
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import { Redis as IORedis } from "ioredis";
import { type Gateway, startGateway, startNats, stopNatsAndClean, waitFor } from "../../tests/helpers/procs.ts";
import { startRedis } from "../../tests/helpers/redis.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { users: { type: "string", default: "1000" }, messages: { type: "string", default: "100000" }, storm: { type: "string", default: "10000" }, publish: { type: "string" } },
});
const USERS = Number(values.users);
const MESSAGES = Number(values.messages);
const STORM = Number(values.storm);
const PER_USER = 5;

type Service = { send(user: string, data: string): void; flush(): Promise<void>; close(): Promise<void> };

async function broker(kind: "redis" | "nats", mailbox: boolean): Promise<{ env: Record<string, string>; service: Service }> {
  if (kind === "redis") {
    const r = await startRedis();
    const rc = new IORedis(r.url);
    let pending: Promise<unknown>[] = [];
    const service: Service = {
      send(user, data) {
        pending.push(mailbox ? rc.fcall("wsgate_send", 1, `ws.mailbox.svc.${user}`, data) : rc.publish(`ws.recv.svc.${user}`, data));
        if (pending.length >= 5_000) void this.flush();
      },
      async flush() {
        const p = pending;
        pending = [];
        await Promise.all(p);
      },
      async close() {
        rc.disconnect();
        await r.clean();
      },
    };
    return { env: { REDIS_URL: r.url }, service };
  }
  const n = await startNats({ jetstream: mailbox });
  const nc = await connect({ servers: n.url });
  const service: Service = {
    send: (user, data) => nc.publish(`ws.recv.svc.${user}`, data),
    flush: () => nc.flush(),
    async close() {
      await nc.close();
      await stopNatsAndClean(n);
    },
  };
  return { env: { NATS_URL: n.url }, service };
}

/** The fan-out's service, alone in its process: `--publish redis|nats <url>`. */
async function publishAlone(kind: string, url: string) {
  const payload = (i: number) => `message ${i} ${"x".repeat(32)}`;
  if (kind === "redis") {
    const rc = new IORedis(url);
    for (let i = 0; i < MESSAGES; i += 5_000) {
      const pipe = rc.pipeline();
      for (let j = i; j < Math.min(i + 5_000, MESSAGES); j++) pipe.publish(`ws.recv.svc.u${j % USERS}`, payload(j));
      await pipe.exec();
    }
    rc.disconnect();
  } else {
    const nc = await connect({ servers: url });
    for (let i = 0; i < MESSAGES; i++) nc.publish(`ws.recv.svc.u${i % USERS}`, payload(i));
    await nc.drain();
  }
  process.exit(0);
}
if (values.publish) await publishAlone(values.publish, positionals[0]);

async function openSockets(gw: Gateway, count: number, counter: { n: number }): Promise<WebSocket[]> {
  const sockets: WebSocket[] = [];
  for (let i = 0; i < count; i += 250) {
    await Promise.all(
      Array.from({ length: Math.min(250, count - i) }, (_, j) => {
        const ws = new WebSocket(gw.ws, { headers: { Cookie: `service=svc; user=u${i + j}` } } as unknown as string[]);
        ws.onmessage = () => counter.n++;
        sockets.push(ws);
        return new Promise((r, e) => ((ws.onopen = r), (ws.onerror = e)));
      }),
    );
  }
  return sockets;
}

async function fanout(kind: "redis" | "nats") {
  const b = await broker(kind, false);
  const gw = await startGateway("bun", { env: { ...b.env, WSGATE_MAILBOX: "off", WSGATE_MAX_UPGRADES_PER_SEC: "0", WSGATE_MAX_MSGS_PER_SEC: "0" } });
  const got = { n: 0 };
  const sockets = await openSockets(gw, USERS, got);
  await waitFor("users watched", async () => (await gw.metric("wsgate_users")) === USERS, 60_000);
  await Bun.sleep(500);
  const url = b.env.REDIS_URL ?? b.env.NATS_URL;
  const t0 = performance.now();
  const publisher = Bun.spawn([process.execPath, import.meta.path, "--publish", kind, "--users", String(USERS), "--messages", String(MESSAGES), url], { stdout: "ignore", stderr: "inherit" });
  await waitFor("all delivered", () => got.n >= MESSAGES, 120_000, 5);
  await publisher.exited;
  const perS = MESSAGES / ((performance.now() - t0) / 1000);
  for (const ws of sockets) ws.close();
  await gw.stop("SIGKILL");
  await b.service.close();
  return perS;
}

async function storm(kind: "redis" | "nats") {
  const b = await broker(kind, true);
  const gw = await startGateway("bun", { env: { ...b.env, WSGATE_MAILBOX: "on", WSGATE_MAX_UPGRADES_PER_SEC: "0" } });
  for (let m = 0; m < PER_USER; m++) for (let u = 0; u < STORM; u++) b.service.send(`u${u}`, `stored ${m}`);
  await b.service.flush();
  await Bun.sleep(1_000);
  const got = { n: 0 };
  const t0 = performance.now();
  const sockets = await openSockets(gw, STORM, got);
  await waitFor("every backlog delivered", () => got.n >= STORM * PER_USER, 300_000, 20);
  const s = (performance.now() - t0) / 1000;
  for (const ws of sockets) ws.close();
  await gw.stop("SIGKILL");
  await b.service.close();
  return s;
}

console.log(`| broker | fan-out, ${USERS} users, ${MESSAGES} messages | mailbox storm: ${STORM} users × ${PER_USER} stored messages reconnecting at once |`);
console.log("|---|---|---|");
for (const kind of ["redis", "nats"] as const) {
  const f = await fanout(kind);
  const s = await storm(kind);
  console.log(`| ${kind} | ${Math.round(f).toLocaleString("en")} msg/s | ${s.toFixed(1)} s to deliver all |`);
}
process.exit(0);
