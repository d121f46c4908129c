// The cluster's plumbing on Redis (Broker.listen/publishReply/newInbox) with two brokers in
// this process on a real redis-server: wildcards, queue groups, replies, a Redis restart.
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { HeaderLookup } from "../app/broker/broker.ts";
import { RedisBroker } from "../app/broker/redis.ts";
import { globOf } from "../app/broker/redis-listen.ts";
import { redisSettings } from "../app/broker/redis-options.ts";
import { subjects } from "../app/core/subjects.ts";
import { waitFor } from "./helpers/procs.ts";
import { type Redis, startRedis } from "./helpers/redis.ts";

let redis: Redis;
const brokers: RedisBroker[] = [];
const enc = new TextEncoder();
const dec = new TextDecoder();

async function broker(nodeId: string) {
  const b = new RedisBroker({ settings: redisSettings(redis.url), nodeId, subjects: subjects("ws"), sendMaxLen: 1000, mailbox: false }, { deliver() {}, rewatchAll() {}, onState() {} });
  brokers.push(b);
  await b.start();
  return b;
}

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  for (const b of brokers) await b.close();
  await redis?.clean();
});

test("redis listen - a wildcard subject becomes a glob with its literal parts escaped", () => {
  expect(globOf("ws.api.>")).toBe("ws.api.*");
  expect(globOf("ws._inbox.n1.abc.*")).toBe("ws._inbox.n1.abc.*");
  expect(globOf("a*b.*")).toBe("a\\*b.*");
});

test("redis listen - exact and wildcard listeners hear what matches, a queue group once across nodes, the answer comes to the inbox", async () => {
  const [a, b] = [await broker("la"), await broker("lb")];
  const heard: string[] = [];
  const queued: string[] = [];
  let header: HeaderLookup = () => null;
  for (const [name, br] of [["a", a], ["b", b]] as const) {
    br.listen("ws.cluster.query", (s, d) => void heard.push(`${name} ${s} ${dec.decode(d)}`));
    br.listen("ws.one.*", (s) => void heard.push(`${name} ${s}`));
    br.listen(
      "ws.api.>",
      (s, d, reply, h) => {
        queued.push(`${name} ${s} ${dec.decode(d)}`);
        // the headers of the message that asked: the replyless one may reach the other node after it
        if (reply) header = h;
        if (reply) br.publish(reply, enc.encode(`answer from ${name}`));
      },
      "wsgate-api",
    );
  }
  await waitFor("both connected", () => a.state() === "connected" && b.state() === "connected");
  const inbox = a.newInbox();
  expect(inbox).not.toBe(a.newInbox());
  const answers: string[] = [];
  a.listen(inbox + ".*", (s, d) => void answers.push(`${s.slice(inbox.length + 1)} ${dec.decode(d)}`));
  // unique patterns: each broker's request inbox, ws.one.*, ws.api.*, the cluster inbox
  await waitFor("subscriptions in place", async () => (await redis.cli("PUBSUB", "NUMPAT")) === "5");
  a.publish("ws.cluster.query", enc.encode("q"));
  b.publish("ws.one.x.y", enc.encode("too deep")); // the glob matches it, the subject does not
  b.publish("ws.one.x", enc.encode("x"));
  a.publish("ws.api.presence.s.u", enc.encode("{}"), { "Ws-Frame": "binary" });
  a.publishReply("ws.api.presence.s.u", enc.encode("asked"), `${inbox}.t1`);
  await waitFor("the answer", () => answers.length === 1);
  await waitFor("everything heard", () => heard.length === 4);
  expect(heard.sort()).toEqual(["a ws.cluster.query q", "a ws.one.x", "b ws.cluster.query q", "b ws.one.x"]);
  // Without a reply a queued message reaches every node (nothing to claim); with one, one node.
  await waitFor("the replyless one on both nodes", () => queued.filter((q) => q.endsWith("{}")).length === 2);
  expect(queued.filter((q) => q.endsWith("asked")).length).toBe(1);
  expect(answers[0]).toMatch(/^t1 answer from [ab]$/);
  expect(header("ws-reply")).toBe(`${inbox}.t1`);
});

test("redis listen - listeners are subscribed again after Redis restarts", async () => {
  const c = await broker("lc");
  const got: string[] = [];
  c.listen("ws.nodes.announce", (_s, d) => void got.push(dec.decode(d)));
  await waitFor("connected", () => c.state() === "connected");
  await redis.kill();
  await redis.start();
  await waitFor("reconnected", () => c.state() === "connected", 20_000);
  await waitFor("heard after the restart", async () => {
    await redis.cli("PUBLISH", "ws.nodes.announce", "again");
    return got.includes("again");
  }, 15_000, 200);
});
