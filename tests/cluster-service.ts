// A service's side of the cluster features, the same for NATS and Redis: it hears every
// event, reads what clients send, publishes to users and asks the service API
// (`ws.api.…`) over the broker. Over Redis a request is a PUBLISH with a `Ws-Reply` header
// block and the answer comes on that channel.
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Redis as IORedis } from "ioredis";
import { type Backplane, type ClientFrame, natsBackplane, redisBackplane } from "./helpers/backplane.ts";

export type ClusterEvent = Record<string, unknown> & { event: string };

export type ServiceSide = {
  name: "NATS" | "Redis";
  env: Record<string, string>;
  /** every event any gateway published, in arrival order */
  events: ClusterEvent[];
  /** what clients of `svc` sent (as the service reads it) */
  frames(svc: string): Promise<{ got: ClientFrame[]; stop(): Promise<void> }>;
  publish(subject: string, data: string): Promise<void>;
  /** the service API's JSON answer, or a throw after 3 s */
  request(subject: string, body: string): Promise<unknown>;
  close(): Promise<void>;
};

const dec = new TextDecoder();

/** The brokers the suites run on (WSGATE_TEST_BROKERS=nats,redis by default). */
export const BROKERS = (process.env.WSGATE_TEST_BROKERS ?? "nats,redis").split(",") as ("nats" | "redis")[];

export function serviceSide(broker: "nats" | "redis"): Promise<ServiceSide> {
  return broker === "nats" ? natsSide() : redisSide();
}

function common(bp: Backplane, events: ClusterEvent[]) {
  return { name: bp.name, env: bp.env, events, frames: (svc: string) => bp.clientFrames(svc), publish: (s: string, d: string) => bp.publish(s, d) };
}

async function natsSide(): Promise<ServiceSide> {
  const bp = await natsBackplane();
  const nc: NatsConnection = await connect({ servers: bp.env.NATS_URL });
  const events: ClusterEvent[] = [];
  nc.subscribe("ws.events.>", { callback: (_e, m) => void events.push(JSON.parse(dec.decode(m.data))) });
  await nc.flush();
  return {
    ...common(bp, events),
    request: async (subject, body) => JSON.parse(dec.decode((await nc.request(subject, body, { timeout: 3_000 })).data)),
    async close() {
      await nc.close();
      await bp.close();
    },
  };
}

async function redisSide(): Promise<ServiceSide> {
  const bp = await redisBackplane();
  const url = bp.env.REDIS_URL;
  const cmd = new IORedis(url);
  const sub = new IORedis(url);
  const events: ClusterEvent[] = [];
  const waiting = new Map<string, (data: string) => void>();
  sub.on("pmessage", (_p: string, _c: string, m: string) => void events.push(JSON.parse(m)));
  sub.on("message", (channel: string, m: string) => waiting.get(channel)?.(m));
  await sub.psubscribe("ws.events.*");
  let n = 0;
  return {
    ...common(bp, events),
    async request(subject, body) {
      const reply = `svc.reply.${process.pid}.${n++}`;
      const answer = new Promise<string>((resolve, reject) => {
        waiting.set(reply, resolve);
        setTimeout(() => reject(new Error(`no answer to ${subject} in 3 s`)), 3_000);
      });
      await sub.subscribe(reply);
      await cmd.publish(subject, `WSGATE/1\r\nWs-Reply: ${reply}\r\n\r\n${body}`);
      try {
        return JSON.parse(await answer);
      } finally {
        waiting.delete(reply);
        await sub.unsubscribe(reply);
      }
    },
    async close() {
      cmd.disconnect();
      sub.disconnect();
      await bp.close();
    },
  };
}
