// The service's side of a broker, the same for NATS and Redis, so one suite asserts the
// contract on both: publish to a user, read what clients send, count a node's interest.
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { Redis as IORedis } from "ioredis";
import { type Nats, startNats, stopNatsAndClean } from "./procs.ts";
import { type Redis, startRedis } from "./redis.ts";

export type ClientFrame = { user: string; data: Uint8Array; conn?: string; node?: string; frame?: string };

export type Backplane = {
  name: "NATS" | "Redis";
  /** the gateway's broker settings (mailbox off: the live contract alone) */
  env: Record<string, string>;
  /** how many subscriptions on exactly this subject the node holds */
  subs(nodeId: string, subject: string): Promise<number>;
  /** every subscription the node holds */
  total(nodeId: string): Promise<number>;
  /** a service's message to `<prefix>.recv.<svc>.<user>`; `binary` forces a binary frame */
  publish(subject: string, data: string | Uint8Array, binary?: boolean): Promise<void>;
  /** the next message on a user's subject (what the HTTP publish API sent) */
  next(subject: string): Promise<{ started: Promise<void>; message: Promise<Uint8Array> }>;
  /** what the clients of one service send, as that service reads it */
  clientFrames(svc: string): Promise<{ got: ClientFrame[]; stop(): Promise<void> }>;
  close(): Promise<void>;
};

const enc = new TextEncoder();
const bytes = (d: string | Uint8Array) => (typeof d === "string" ? enc.encode(d) : d);

export async function natsBackplane(): Promise<Backplane> {
  const nats: Nats = await startNats();
  const nc: NatsConnection = await connect({ servers: nats.url });
  return {
    name: "NATS",
    env: { NATS_URL: nats.url, WSGATE_MAILBOX: "off" },
    subs: async (nodeId, subject) => (await nats.subsOf(nodeId)).filter((s) => s === subject).length,
    total: async (nodeId) => (await nats.subsOf(nodeId)).length,
    async publish(subject, data, binary) {
      const h = natsHeaders();
      if (binary) h.set("Ws-Frame", "binary");
      nc.publish(subject, bytes(data), binary ? { headers: h } : undefined);
      await nc.flush();
    },
    async next(subject) {
      const sub = nc.subscribe(subject, { max: 1 });
      const started = nc.flush();
      const message = (async () => {
        for await (const m of sub) return m.data;
        throw new Error(`no message on ${subject}`);
      })();
      return { started, message };
    },
    async clientFrames(svc) {
      const sub = nc.subscribe(`ws.send.${svc}.*`);
      const got: ClientFrame[] = [];
      void (async () => {
        for await (const m of sub) {
          const h = m.headers;
          got.push({ user: m.subject.split(".").pop()!, data: m.data, conn: h?.get("Ws-Conn"), node: h?.get("Ws-Node"), frame: h?.get("Ws-Frame") });
        }
      })();
      await nc.flush();
      return { got, stop: async () => sub.unsubscribe() };
    },
    async close() {
      await nc.close();
      await stopNatsAndClean(nats);
    },
  };
}

export async function redisBackplane(): Promise<Backplane> {
  const redis: Redis = await startRedis();
  const rc = new IORedis(redis.url);
  const clientList = async (nodeId: string) => (await rc.client("LIST")) as string;
  return {
    name: "Redis",
    env: { REDIS_URL: redis.url, WSGATE_MAILBOX: "off" },
    // A channel's subscribers on the server: the suites give every node its own users.
    subs: async (_nodeId, subject) => Number((await rc.pubsub("NUMSUB", subject))[1]),
    async total(nodeId) {
      let n = 0;
      for (const line of (await clientList(nodeId)).split("\n")) {
        if (!line.includes(`name=wsgate-${nodeId} `)) continue;
        n += Number(/ sub=(\d+)/.exec(line)?.[1] ?? 0) + Number(/ psub=(\d+)/.exec(line)?.[1] ?? 0);
      }
      return n;
    },
    async publish(subject, data, binary) {
      const b = bytes(data);
      if (!binary) {
        await rc.publish(subject, Buffer.from(b));
        return;
      }
      await rc.publish(subject, Buffer.concat([Buffer.from("WSGATE/1\r\nWs-Frame: binary\r\n\r\n"), Buffer.from(b)]));
    },
    async next(subject) {
      const sub = new IORedis(redis.url);
      const message = new Promise<Uint8Array>((resolve) =>
        sub.on("messageBuffer", (_c: Buffer, m: Buffer) => {
          resolve(new Uint8Array(m));
          sub.disconnect();
        }),
      );
      const started = sub.subscribe(subject).then(() => {});
      return { started, message };
    },
    async clientFrames(svc) {
      const reader = new IORedis(redis.url);
      const got: ClientFrame[] = [];
      let running = true;
      const stream = `ws.send.${svc}`;
      let last = (await rc.xrevrange(stream, "+", "-", "COUNT", 1))[0]?.[0] ?? "0-0";
      const loop = (async () => {
        while (running) {
          const r = await reader.xreadBuffer("COUNT", 100, "BLOCK", 100, "STREAMS", stream, last).catch(() => null);
          for (const [, entries] of r ?? []) {
            for (const [id, fields] of entries) {
              last = id.toString();
              const f: Record<string, Buffer> = {};
              for (let i = 0; i < fields.length; i += 2) f[fields[i].toString()] = fields[i + 1];
              got.push({ user: f.user.toString(), data: new Uint8Array(f.data), conn: f.conn?.toString(), node: f.node?.toString(), frame: f.frame?.toString() });
            }
          }
        }
      })();
      return {
        got,
        async stop() {
          running = false;
          await loop;
          reader.disconnect();
        },
      };
    },
    async close() {
      rc.disconnect();
      await redis.clean();
    },
  };
}
