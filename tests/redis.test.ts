// The Redis backplane (REDIS_URL): live routing by per-user channels, client frames on a
// stream per service, request/reply, two nodes on one Redis, and Redis faults. Each runtime.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Redis as IORedis } from "ioredis";
import { WsgateError } from "../sdk/client.ts";
import { bunClient, cookie, tryUpgrade } from "./helpers/clients.ts";
import { sdkClient } from "./helpers/sdk.ts";
import { freePort, type Gateway, RUNTIMES, startGateway, waitFor } from "./helpers/procs.ts";
import { type Redis, startRedis, startSentinel } from "./helpers/redis.ts";

let redis: Redis;
let rc: IORedis;

beforeAll(async () => {
  redis = await startRedis();
  rc = new IORedis(redis.url);
});

afterAll(async () => {
  rc?.disconnect();
  await redis?.clean();
});

const numsub = async (channel: string) => Number((await rc.pubsub("NUMSUB", channel))[1]);

test("config - NATS_URL and REDIS_URL together are refused with one line naming both", async () => {
  const gw = await startGateway("bun", { env: { NATS_URL: "nats://127.0.0.1:4222", REDIS_URL: "redis://127.0.0.1:6379" }, waitListening: false, waitReady: false });
  expect(await gw.proc.exited).toBe(2);
  expect(gw.output()).toContain("NATS_URL and REDIS_URL rejected: set one of them, not both");
});

test("config - a password in REDIS_URL is never shown", async () => {
  const gw = await startGateway("bun", { env: { REDIS_URL: "redis://app:s3cret@127.0.0.1:1", WSGATE_MAILBOX: "off" }, waitReady: false });
  await waitFor("redis settings logged", () => gw.output().includes("redis settings"));
  await gw.stop("SIGKILL");
  expect(gw.output()).toContain("redis://app:***@127.0.0.1:1");
  expect(gw.output()).not.toContain("s3cret");
});

for (const runtime of RUNTIMES) {
  describe(`${runtime}: Redis mode`, () => {
    let gw: Gateway;
    beforeAll(async () => {
      gw = await startGateway(runtime, { env: { REDIS_URL: redis.url, WSGATE_MAILBOX: "off" } });
    });
    afterAll(async () => {
      await gw?.stop("SIGKILL");
    });

    test("a message published on the user's channel reaches every connection of that user, and only that user", async () => {
      const user = `u-${runtime}`;
      const a1 = await bunClient(gw.ws, { Cookie: cookie("s1", user) });
      const a2 = await bunClient(gw.ws, { Cookie: cookie("s1", user) });
      const b = await bunClient(gw.ws, { Cookie: cookie("s1", `other-${runtime}`) });
      await waitFor("one subscription for the user", async () => (await numsub(`ws.recv.s1.${user}`)) === 1);
      await rc.publish(`ws.recv.s1.${user}`, "hello");
      await rc.publish(`ws.recv.s1.${user}`, Buffer.from([0xff, 0x00]));
      expect((await a1.waitFor(2)).map((m) => m.binary)).toEqual([false, true]);
      expect((await a2.waitFor(2))[0].data).toBe("hello");
      expect(b.received.length).toBe(0);
      for (const c of [a1, a2, b]) c.close();
      await waitFor("subscription dropped with the last connection", async () => (await numsub(`ws.recv.s1.${user}`)) === 0);
    });

    test("the HTTP publish API reaches the user, binary when asked", async () => {
      const c = await bunClient(gw.ws, { Cookie: cookie("s1", `h-${runtime}`) });
      await waitFor("subscribed", async () => (await numsub(`ws.recv.s1.h-${runtime}`)) === 1);
      expect((await gw.fetch(`/v1/publish/s1/h-${runtime}`, { method: "POST", body: "plain" })).status).toBe(202);
      expect((await gw.fetch(`/v1/publish/s1/h-${runtime}`, { method: "POST", body: "forced", headers: { "Ws-Frame": "binary" } })).status).toBe(202);
      const got = await c.waitFor(2);
      expect(got[0]).toEqual({ data: "plain", binary: false });
      expect(got[1].binary).toBe(true);
      expect(new TextDecoder().decode(got[1].data as Uint8Array)).toBe("forced");
      c.close();
    });

    test("client frames land on the service's stream with user, conn, node and frame fields", async () => {
      const svc = `svc-${runtime}`;
      const c = await bunClient(gw.ws, { Cookie: cookie(svc, "writer") });
      c.send("to the service");
      c.send(new Uint8Array([1, 2, 3]));
      const entries = await waitFor("two stream entries", async () => {
        const e = await rc.xrangeBuffer(`ws.send.${svc}`, "-", "+");
        return e.length >= 2 ? e : undefined;
      });
      const fields = (e: (typeof entries)[number]) => {
        const f: Record<string, Buffer> = {};
        for (let i = 0; i < e[1].length; i += 2) f[e[1][i].toString()] = e[1][i + 1];
        return f;
      };
      const [t, b] = entries.map(fields);
      expect(t.user.toString()).toBe("writer");
      expect(t.node.toString()).toBe(gw.nodeId);
      expect(t.conn.toString()).toMatch(/^[A-Za-z0-9_-]+\.\d+$/); // <node>.<n>
      expect(t.frame.toString()).toBe("text");
      expect(t.data.toString()).toBe("to the service");
      expect(b.frame.toString()).toBe("binary");
      expect([...b.data]).toEqual([1, 2, 3]);
      c.close();
    });

    test("service → client requests over Redis: answered (200), timed out (504), refused by the client (502), one answer with two nodes", async () => {
      const svc = `rr-${runtime}`;
      const d = sdkClient(gw.ws, svc, "asked");
      d.client.onRequest((data) => `got ${data}`);
      await d.client.opened();
      await waitFor("request channel watched", async () => (await numsub(`ws.req.${svc}.asked`)) === 1);
      const res = await gw.fetch(`/v1/request/${svc}/asked?timeout=2000`, { method: "POST", body: "via http" });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("got via http");
      d.client.onRequest(() => new Promise(() => {}));
      const t0 = Date.now();
      expect((await gw.fetch(`/v1/request/${svc}/asked?timeout=300`, { method: "POST", body: "x" })).status).toBe(504);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
      d.client.onRequest(() => {
        throw new WsgateError("not_allowed", "no");
      });
      const refused = await gw.fetch(`/v1/request/${svc}/asked?timeout=2000`, { method: "POST", body: "x" });
      expect(refused.status).toBe(502);
      // The same user on a second node: every request is answered exactly once.
      const other = await startGateway(runtime, { env: { REDIS_URL: redis.url, WSGATE_MAILBOX: "off" } });
      try {
        const asked = [0, 0];
        d.client.onRequest((q) => (asked[0]++, `one:${q}`));
        const e = sdkClient(other.ws, svc, "asked");
        e.client.onRequest((q) => (asked[1]++, `two:${q}`));
        await e.client.opened();
        await waitFor("both nodes watch", async () => (await numsub(`ws.req.${svc}.asked`)) === 2);
        for (let i = 0; i < 20; i++) {
          const r = await gw.fetch(`/v1/request/${svc}/asked?timeout=2000`, { method: "POST", body: `q${i}` });
          expect(await r.text()).toMatch(new RegExp(`^(one|two):q${i}$`));
        }
        expect(asked[0] + asked[1]).toBe(20);
        e.client.close();
      } finally {
        await other.stop("SIGKILL");
      }
      d.client.close();
      await waitFor("request channel dropped", async () => (await numsub(`ws.req.${svc}.asked`)) === 0);
    });

    test("client → service calls over Redis: the service answers on the reply channel; nobody listening is no_responders at once", async () => {
      const svc = `call-${runtime}`;
      const service = new IORedis(redis.url);
      const answerer = new IORedis(redis.url);
      await service.subscribe(`ws.call.${svc}.echo`);
      service.on("messageBuffer", (_ch: Buffer, msg: Buffer) => {
        const text = msg.toString();
        const [head, body] = text.split("\r\n\r\n");
        const reply = /Ws-Reply: (\S+)/.exec(head)![1];
        const user = /Ws-User: (\S+)/.exec(head)![1];
        void answerer.publish(reply, `WSGATE/1\r\nWs-Frame: text\r\n\r\n${user} said ${body}`);
      });
      try {
        const c = sdkClient(gw.ws, svc, "caller");
        await c.client.opened();
        expect(await c.client.request("echo", "hi")).toBe("caller said hi");
        const t0 = Date.now();
        const err = await c.client.request("nobody", "hi").catch((e) => e);
        expect(err.code).toBe("no_responders");
        expect(Date.now() - t0).toBeLessThan(2_000);
        c.client.close();
      } finally {
        service.disconnect();
        answerer.disconnect();
      }
    });

    test("a request to a user with no envelope connection fails at once with 404 no_responders", async () => {
      const t0 = Date.now();
      const res = await gw.fetch("/v1/request/s1/nobody?timeout=5000", { method: "POST", body: "q" });
      expect(res.status).toBe(404);
      expect(await res.text()).toContain("no_responders");
      expect(Date.now() - t0).toBeLessThan(2_000);
    });
  });
}

test("cross-server chat - two gateway nodes on one Redis, users on each, messages cross", async () => {
  const [n1, n2] = await Promise.all([1, 2].map(() => startGateway("bun", { env: { REDIS_URL: redis.url, WSGATE_MAILBOX: "off" } })));
  // The chat service: reads what clients send (consumer group), sends it to every member.
  const svc = new IORedis(redis.url);
  await svc.xgroup("CREATE", "ws.send.chat", "chat", "$", "MKSTREAM");
  let running = true;
  const relay = (async () => {
    while (running) {
      const r = (await svc.xreadgroup("GROUP", "chat", "c1", "COUNT", 10, "BLOCK", 200, "STREAMS", "ws.send.chat", ">")) as [string, [string, string[]][]][] | null;
      for (const [, entries] of r ?? []) {
        for (const [id, f] of entries) {
          const user = f[f.indexOf("user") + 1];
          const data = f[f.indexOf("data") + 1];
          for (const to of ["alice", "bob"]) await svc.publish(`ws.recv.chat.${to}`, `${user}: ${data}`);
          await svc.xack("ws.send.chat", "chat", id);
        }
      }
    }
  })();
  try {
    const alice = await bunClient(n1.ws, { Cookie: cookie("chat", "alice") });
    const bob = await bunClient(n2.ws, { Cookie: cookie("chat", "bob") });
    await waitFor("both subscribed", async () => (await numsub("ws.recv.chat.alice")) === 1 && (await numsub("ws.recv.chat.bob")) === 1);
    alice.send("hi bob");
    bob.send("hi alice");
    const a = (await alice.waitFor(2)).map((m) => m.data).sort();
    const b = (await bob.waitFor(2)).map((m) => m.data).sort();
    expect(a).toEqual(["alice: hi bob", "bob: hi alice"]);
    expect(b).toEqual(a);
  } finally {
    running = false;
    await relay;
    svc.disconnect();
    await Promise.all([n1.stop("SIGKILL"), n2.stop("SIGKILL")]);
  }
});

test("credentials - a password in REDIS_URL authenticates; a wrong one is logged as refused and never shown", async () => {
  const r = await startRedis({ args: ["--requirepass", "right-pw"], password: "right-pw" });
  const good = await startGateway("bun", { env: { REDIS_URL: `redis://:right-pw@127.0.0.1:${r.port}`, WSGATE_MAILBOX: "off" } });
  const bad = await startGateway("bun", { env: { REDIS_URL: `redis://:wrong-pw@127.0.0.1:${r.port}`, WSGATE_MAILBOX: "off" }, waitReady: false });
  try {
    expect((await good.fetch("/readyz")).status).toBe(200);
    await waitFor("refusal logged", () => bad.output().includes("redis refused the gateway's credentials; retrying"));
    expect((await bad.fetch("/readyz")).status).toBe(503);
    for (const g of [good, bad]) expect(g.output()).not.toMatch(/right-pw|wrong-pw/);
  } finally {
    await Promise.all([good.stop("SIGKILL"), bad.stop("SIGKILL")]);
    await r.clean();
  }
});

test("two workers on one port meet in Redis: every user's messages reach it, whichever worker holds it", async () => {
  const port = await freePort();
  const gw = await startGateway("bun", { port, env: { REDIS_URL: redis.url, WSGATE_MAILBOX: "off", WSGATE_WORKERS: "2" } });
  try {
    await waitFor("both workers connected to Redis", () => gw.output().split('"redis connected"').length - 1 === 2, 30_000);
    const clients = [];
    for (let i = 0; i < 40; i++) clients.push(await bunClient(gw.ws, { Cookie: cookie("wk", `u${i}`) }));
    // Only the users' channels count: each worker also listens on its services' broadcast channel
    // and the cluster's channels, and has a connection of its own for group membership (`-groups`).
    const holders = await waitFor("each user subscribed once", async () => {
      const channels = (await rc.pubsub("CHANNELS", "ws.recv.wk.*")) as string[];
      if (channels.length !== 40) return undefined;
      const numsub = (await rc.pubsub("NUMSUB", ...channels)) as (string | number)[];
      if (numsub.some((v, i) => i % 2 === 1 && Number(v) !== 1)) return undefined;
      const list = (await rc.client("LIST")) as string;
      return list.split("\n").filter((l) => l.includes(`name=wsgate-${gw.nodeId}-w`) && !l.includes("-groups ") && / sub=[1-9]/.test(l));
    });
    expect(holders.length).toBe(2);
    for (let i = 0; i < 40; i++) await rc.publish(`ws.recv.wk.u${i}`, `for u${i}`);
    for (let i = 0; i < 40; i++) expect((await clients[i].waitFor(1))[0].data).toBe(`for u${i}`);
    expect(await gw.stop("SIGTERM")).toBe(0);
  } finally {
    await gw.stop("SIGKILL");
  }
});

describe("faults", () => {
  test("Redis down at start: /readyz 503 and upgrades refused until it comes, then ready", async () => {
    const late = await startRedis();
    await late.stop();
    const gw = await startGateway("bun", { env: { REDIS_URL: late.url, WSGATE_MAILBOX: "off" }, waitReady: false });
    try {
      await waitFor("unreachable logged", () => gw.output().includes("redis unreachable; retrying"));
      expect((await gw.fetch("/readyz")).status).toBe(503);
      const refused = await tryUpgrade(gw.http, { Cookie: cookie("s1", "early") });
      expect(refused.status).toBe(503);
      expect(refused.body).toContain("broker not connected yet");
      await late.start();
      await waitFor("readyz 200", async () => (await gw.fetch("/readyz")).status === 200, 20_000);
    } finally {
      await gw.stop("SIGKILL");
      await late.clean();
    }
  });

  test("Sentinel failover: the gateway follows the new master; clients stay connected and their messages come again", async () => {
    const master = await startRedis();
    const replica = await startRedis({ args: ["--replicaof", "127.0.0.1", String(master.port)] });
    await waitFor("replica in sync", async () => (await replica.cli("INFO", "replication")).includes("master_link_status:up"));
    const sentinel = await startSentinel(master, "wsg");
    const gw = await startGateway("bun", { env: { REDIS_URL: `redis-sentinel://127.0.0.1:${sentinel.port}/wsg`, WSGATE_MAILBOX: "off" } });
    try {
      const c = await bunClient(gw.ws, { Cookie: cookie("s1", "fo") });
      let closed = false;
      void c.closed.then(() => (closed = true));
      await waitFor("subscribed on the master", async () => (await master.cli("PUBSUB", "NUMSUB", "ws.recv.s1.fo")).endsWith("1"));
      await master.cli("PUBLISH", "ws.recv.s1.fo", "before");
      expect((await c.waitFor(1))[0].data).toBe("before");
      await master.kill();
      await waitFor("replica promoted", async () => (await replica.cli("INFO", "replication")).includes("role:master"), 30_000, 200);
      await waitFor("subscribed on the new master", async () => (await replica.cli("PUBSUB", "NUMSUB", "ws.recv.s1.fo")).endsWith("1"), 30_000, 200);
      await replica.cli("PUBLISH", "ws.recv.s1.fo", "after");
      expect((await c.waitFor(2))[1].data).toBe("after");
      expect(closed).toBe(false);
      expect((await gw.fetch("/readyz")).status).toBe(200);
      c.close();
    } finally {
      await gw.stop("SIGKILL");
      await sentinel.stop();
      await replica.clean();
      await master.clean();
    }
  });

  test("Redis restarted while clients are connected: they stay connected and their messages come again", async () => {
    const r = await startRedis();
    const gw = await startGateway("bun", { env: { REDIS_URL: r.url, WSGATE_MAILBOX: "off" } });
    const pub = new IORedis(r.url, { lazyConnect: true });
    try {
      const c = await bunClient(gw.ws, { Cookie: cookie("s1", "stays") });
      let closed = false;
      void c.closed.then(() => (closed = true));
      await waitFor("subscribed", async () => (await r.cli("PUBSUB", "NUMSUB", "ws.recv.s1.stays")).endsWith("1"));
      await r.stop();
      await waitFor("readyz 503", async () => (await gw.fetch("/readyz")).status === 503);
      await r.start();
      await waitFor("re-subscribed", async () => (await r.cli("PUBSUB", "NUMSUB", "ws.recv.s1.stays")).endsWith("1"), 20_000);
      await pub.connect();
      await pub.publish("ws.recv.s1.stays", "after restart");
      expect((await c.waitFor(1))[0].data).toBe("after restart");
      expect(closed).toBe(false);
      c.close();
    } finally {
      pub.disconnect();
      await gw.stop("SIGKILL");
      await r.clean();
    }
  });
});
