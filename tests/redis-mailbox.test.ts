// The durable mailbox on Redis Streams (WSGATE_MAILBOX=on with REDIS_URL), on every runtime:
// the behaviours of tests/mailbox.test.ts that both brokers give, plus the atomic
// append-and-announce and Redis's own faults.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Redis as IORedis } from "ioredis";
import { bunClient, cookie, type Client, wsPackageClient } from "./helpers/clients.ts";
import { type Gateway, RUNTIMES, startGateway, waitFor } from "./helpers/procs.ts";
import { type Redis, startRedis } from "./helpers/redis.ts";

const texts = (c: Client) => c.received.map((m) => m.data as string);
const range = (from: number, to: number, p = "m") => Array.from({ length: to - from }, (_, i) => `${p}${from + i}`);
const MAILBOX_ENV = { WSGATE_MAILBOX: "on", WSGATE_MAILBOX_CURSOR_FLUSH_MS: "50" };

for (const runtime of RUNTIMES) {
  describe(`${runtime}: mailbox on Redis`, () => {
    let redis: Redis;
    let rc: IORedis;
    let gw: Gateway;
    const svc = `rmb-${runtime}`;
    const env = () => ({ REDIS_URL: redis.url, ...MAILBOX_ENV });
    /** What a service does: store and announce in one call of the gateway's function. */
    const pub = (user: string, data: string | Uint8Array, frame = "") => rc.fcall("wsgate_send", 1, `ws.mailbox.${svc}.${user}`, data as string, frame);
    const live = (user: string) => `ws.live.${svc}.${user}`;
    const numsub = async (channel: string) => Number((await rc.pubsub("NUMSUB", channel))[1]);

    beforeAll(async () => {
      redis = await startRedis({ aof: true });
      rc = new IORedis(redis.url);
      gw = await startGateway(runtime, { env: env() });
    });
    afterAll(async () => {
      await gw?.stop("SIGKILL");
      rc?.disconnect();
      await redis?.clean();
    });

    async function publishPaced(user: string, count: number, batch: number) {
      for (let sent = 0; sent < count; ) {
        const batchOf: Promise<unknown>[] = [];
        for (let i = 0; i < batch && sent < count; i++) batchOf.push(pub(user, `m${sent++}`));
        await Promise.all(batchOf);
        await Bun.sleep(5);
      }
    }

    async function settle(c: Client | Client[], user: string) {
      const all = Array.isArray(c) ? c : [c];
      const mark = `sentinel-${crypto.randomUUID()}`;
      await pub(user, mark);
      await waitFor(`sentinel for ${user}`, () => all.every((x) => texts(x).includes(mark)));
      for (const x of all) x.received.splice(texts(x).indexOf(mark), 1);
    }

    test("an offline user gets the backlog in order, then live messages, with no gap or repeat at the switch", async () => {
      for (let i = 0; i < 25; i++) await pub("off", `m${i}`);
      const c = await bunClient(gw.ws, { Cookie: cookie(svc, "off") });
      const racing: Promise<unknown>[] = [];
      for (let i = 25; i < 60; i++) racing.push(pub("off", `m${i}`)); // racing the catch-up
      await Promise.all(racing);
      await settle(c, "off");
      expect(texts(c)).toEqual(range(0, 60));
      expect(await gw.metric("wsgate_mailbox_backlog_delivered_total")).toBeGreaterThanOrEqual(25);
      c.close();
    });

    test("a user who comes back gets exactly what they missed; the HTTP publish API stores too", async () => {
      let c = await bunClient(gw.ws, { Cookie: cookie(svc, "back") });
      for (let i = 0; i < 5; i++) await pub("back", `m${i}`);
      await c.waitFor(5);
      c.close();
      await c.closed;
      await waitFor("user released", async () => (await numsub(live("back"))) === 0);
      for (let i = 5; i < 11; i++) await pub("back", `m${i}`);
      expect((await gw.fetch(`/v1/publish/${svc}/back`, { method: "POST", body: "m11" })).status).toBe(202);
      await waitFor("stored", async () => (await rc.xlen(`ws.mailbox.${svc}.back`)) === 12);
      c = await bunClient(gw.ws, { Cookie: cookie(svc, "back") });
      await settle(c, "back");
      expect(texts(c)).toEqual(range(5, 12));
      c.close();
    });

    test("two nodes with the same user: each connection gets each message once", async () => {
      const other = await startGateway(runtime, { env: env() });
      try {
        const a = await bunClient(gw.ws, { Cookie: cookie(svc, "both") });
        const b = await bunClient(other.ws, { Cookie: cookie(svc, "both") });
        // Both nodes listening first: a message published while the second node's SUBSCRIBE is still
        // on its way reaches only the first, which moves the user's cursor past it (see the note in the README).
        await waitFor("both nodes subscribed", async () => (await numsub(live("both"))) === 2);
        await settle([a, b], "both");
        a.received.length = 0;
        b.received.length = 0;
        await Promise.all(Array.from({ length: 50 }, (_, i) => pub("both", `m${i}`)));
        await settle([a, b], "both");
        expect(texts(a)).toEqual(range(0, 50));
        expect(texts(b)).toEqual(range(0, 50));
        a.close();
        b.close();
      } finally {
        await other.stop("SIGKILL");
      }
    });

    test("gateway kill -9 in the middle of a 1,000-message stream loses nothing and redelivers in order", async () => {
      const g1 = await startGateway(runtime, { env: env() });
      const first = await bunClient(g1.ws, { Cookie: cookie(svc, "crash") });
      await waitFor("subscribed", async () => (await numsub(live("crash"))) === 1);
      const publisher = publishPaced("crash", 1000, 25);
      await waitFor("a third of the stream", () => first.received.length >= 300, 20_000);
      await g1.stop("SIGKILL");
      await publisher;
      const g2 = await startGateway(runtime, { env: env() });
      try {
        const second = await bunClient(g2.ws, { Cookie: cookie(svc, "crash") });
        await settle(second, "crash");
        const a = texts(first);
        const b = texts(second);
        expect(a).toEqual(range(0, a.length));
        const start = Number(b[0].slice(1));
        expect(start).toBeLessThanOrEqual(a.length);
        expect(b).toEqual(range(start, 1000));
        console.log(`[${runtime}] redis: kill -9 after ${a.length} delivered: ${a.length - start} redelivered, 0 lost`);
        second.close();
      } finally {
        await g2.stop("SIGKILL");
      }
    });

    test("envelope resume by seq after a gateway kill -9: exactly what follows, seqs rising (stream ids mapped to numbers)", async () => {
      const frames = (c: Client) => c.received.map((m) => JSON.parse(m.data as string) as { type: string; data: string; seq: number }).filter((f) => f.type === "message"); // not the hello
      const g1 = await startGateway(runtime, { env: env() });
      const first = await wsPackageClient(g1.ws, { Cookie: cookie(svc, "env") }, "wsgate.v1");
      first.send(JSON.stringify({ type: "resume" }));
      await waitFor("subscribed", async () => (await numsub(live("env"))) === 1);
      const publisher = publishPaced("env", 600, 20);
      await waitFor("part of the stream", () => first.received.length >= 150, 20_000);
      await g1.stop("SIGKILL");
      await publisher;
      const seen = frames(first);
      const last = seen[seen.length - 1].seq;
      const g2 = await startGateway(runtime, { env: env() });
      try {
        const second = await wsPackageClient(g2.ws, { Cookie: cookie(svc, "env") }, "wsgate.v1");
        second.send(JSON.stringify({ type: "resume", after: last }));
        await waitFor("the rest of the stream", () => frames(second).some((f) => f.data === "m599"), 20_000);
        const all = [...seen, ...frames(second)];
        expect(all.map((f) => f.data)).toEqual(range(0, 600));
        const seqs = all.map((f) => f.seq);
        expect(seqs.every((s, i) => i === 0 || s > seqs[i - 1])).toBe(true);
        // seq = ms * 1000 + n of the stream id
        const [id] = (await rc.xrevrange(`ws.mailbox.${svc}.env`, "+", "-", "COUNT", 1))[0];
        const [ms, n] = id.split("-").map(Number);
        expect(seqs.at(-1)).toBe(ms * 1000 + n);
        second.close();
      } finally {
        await g2.stop("SIGKILL");
      }
    });

    test("binary messages keep their frame type through the stream", async () => {
      const c = await bunClient(gw.ws, { Cookie: cookie(svc, "bin") });
      await waitFor("subscribed", async () => (await numsub(live("bin"))) === 1);
      await pub("bin", Buffer.from([0xff, 0, 1]) as unknown as Uint8Array);
      await pub("bin", "forced", "binary");
      const got = await c.waitFor(2);
      expect(got[0]).toEqual({ data: new Uint8Array([0xff, 0, 1]), binary: true });
      expect(got[1].binary).toBe(true);
      c.close();
    });
  });
}

describe("Redis mailbox specifics (bun)", () => {
  let redis: Redis;
  let rc: IORedis;
  beforeAll(async () => {
    redis = await startRedis({ aof: true });
    rc = new IORedis(redis.url);
  });
  afterAll(async () => {
    rc?.disconnect();
    await redis?.clean();
  });

  test("append and announce are one step: a reader woken by the announcement always finds the message stored", async () => {
    const gw = await startGateway("bun", { env: { REDIS_URL: redis.url, ...MAILBOX_ENV } });
    const sub = new IORedis(redis.url);
    try {
      // A listener reads the stream the moment each announcement arrives, while 2,000 are appended.
      let missing = 0;
      let heard = 0;
      const reader = new IORedis(redis.url);
      await sub.subscribe("ws.live.race.u");
      sub.on("messageBuffer", async (_ch: Buffer, msg: Buffer) => {
        const seq = Number(/Ws-Seq: (\d+)/.exec(msg.toString("latin1"))![1]);
        const r = await reader.xrange("ws.mailbox.race.u", `${Math.floor(seq / 1000)}-${seq % 1000}`, "+", "COUNT", 1);
        heard++;
        if (r.length === 0 || r[0][0] !== `${Math.floor(seq / 1000)}-${seq % 1000}`) missing++;
      });
      const sends = Array.from({ length: 2_000 }, (_, i) => rc.fcall("wsgate_send", 1, "ws.mailbox.race.u", `r${i}`));
      const seqs = (await Promise.all(sends)).map(Number);
      await waitFor("every announcement heard", () => heard === 2_000, 20_000);
      expect(missing).toBe(0);
      // and every stored message was announced, with a strictly rising sequence
      expect(new Set(seqs).size).toBe(2_000);
      expect(seqs.every((s, i) => i === 0 || s > seqs[i - 1])).toBe(true);
      reader.disconnect();
    } finally {
      sub.disconnect();
      await gw.stop("SIGKILL");
    }
  });

  test("more than 1,000 messages for one user within a millisecond keep unique, rising sequences", async () => {
    const gw = await startGateway("bun", { env: { REDIS_URL: redis.url, ...MAILBOX_ENV } });
    try {
      const pipe = rc.pipeline();
      for (let i = 0; i < 3_000; i++) pipe.fcall("wsgate_send", 1, "ws.mailbox.burst.u", `b${i}`);
      const seqs = ((await pipe.exec()) ?? []).map(([, s]) => Number(s));
      expect(seqs.every((s, i) => i === 0 || s > seqs[i - 1])).toBe(true);
      const ids = (await rc.xrange("ws.mailbox.burst.u", "-", "+")).map(([id]) => id);
      expect(ids.every((id) => Number(id.split("-")[1]) < 1000)).toBe(true);
    } finally {
      await gw.stop("SIGKILL");
    }
  });

  test("per-user count and age limits drop what they should", async () => {
    const gw = await startGateway("bun", { env: { REDIS_URL: redis.url, ...MAILBOX_ENV, WSGATE_MAILBOX_MAX_PER_USER: "5", WSGATE_MAILBOX_MAX_AGE_S: "1" } });
    try {
      for (let i = 0; i < 10; i++) await rc.fcall("wsgate_send", 1, "ws.mailbox.lim.count", `m${i}`);
      expect((await rc.xrange("ws.mailbox.lim.count", "-", "+")).map(([, f]) => f[1])).toEqual(range(5, 10));
      const c = await bunClient(gw.ws, { Cookie: cookie("lim", "count") });
      await c.waitFor(5);
      expect(texts(c)).toEqual(range(5, 10));
      c.close();
      await rc.fcall("wsgate_send", 1, "ws.mailbox.lim.aged", "old");
      await Bun.sleep(1_100); // "old" ages past WSGATE_MAILBOX_MAX_AGE_S (1 s, the least it can be)
      await rc.fcall("wsgate_send", 1, "ws.mailbox.lim.aged", "fresh");
      expect((await rc.xrange("ws.mailbox.lim.aged", "-", "+")).map(([, f]) => f[1])).toEqual(["fresh"]);
      // A user's whole stream goes once its newest message is past the age limit.
      await waitFor("aged stream gone", async () => (await rc.exists("ws.mailbox.lim.aged")) === 0, 5_000);
    } finally {
      await gw.stop("SIGKILL");
    }
  });

  test("a bad call of the function is refused with a reason", async () => {
    const gw = await startGateway("bun", { env: { REDIS_URL: redis.url, ...MAILBOX_ENV } });
    try {
      expect(String(await rc.fcall("wsgate_send", 1, "elsewhere.u", "x").catch((e) => e))).toContain("the key must be ws.mailbox.<svc>.<user>");
      expect(String(await rc.fcall("wsgate_send", 1, "ws.mailbox.s.u", "x", "html").catch((e) => e))).toContain("text or binary");
    } finally {
      await gw.stop("SIGKILL");
    }
  });

  test("a node cut off by Redis as a slow subscriber gets back every message from the stream, in order", async () => {
    const r = await startRedis();
    const gw = await startGateway("bun", { env: { REDIS_URL: r.url, ...MAILBOX_ENV } });
    const pub = new IORedis(r.url);
    try {
      const c = await bunClient(gw.ws, { Cookie: cookie("gap", "u") });
      await waitFor("subscribed", async () => (await r.cli("PUBSUB", "NUMSUB", "ws.live.gap.u")).endsWith("1"));
      await pub.fcall("wsgate_send", 1, "ws.mailbox.gap.u", "m0");
      await c.waitFor(1);
      // A stopped gateway reads nothing: past 256 KB of pending pub/sub output Redis drops its connection.
      await pub.config("SET", "client-output-buffer-limit", "pubsub 256kb 128kb 1");
      process.kill(gw.proc.pid, "SIGSTOP");
      // Past what the loopback socket buffers hold (several MB) too.
      const big = "x".repeat(64 * 1024);
      for (let i = 1; i <= 400; i++) await pub.fcall("wsgate_send", 1, "ws.mailbox.gap.u", `m${i}:${big}`);
      await waitFor("subscriber cut", async () => (await r.cli("PUBSUB", "NUMSUB", "ws.live.gap.u")).endsWith("0"), 10_000);
      process.kill(gw.proc.pid, "SIGCONT");
      await pub.fcall("wsgate_send", 1, "ws.mailbox.gap.u", "m401");
      await waitFor("all 402", () => c.received.length >= 402, 30_000);
      expect(texts(c).map((t) => t.split(":")[0])).toEqual(range(0, 402));
    } finally {
      process.kill(gw.proc.pid, "SIGCONT");
      pub.disconnect();
      await gw.stop("SIGKILL");
      await r.clean();
    }
  });

  test("Redis restarted (AOF) with clients connected: they stay, the backlog stored meanwhile arrives, nothing lost", async () => {
    const r = await startRedis({ aof: true });
    const gw = await startGateway("bun", { env: { REDIS_URL: r.url, ...MAILBOX_ENV } });
    let pub = new IORedis(r.url);
    try {
      const c = await bunClient(gw.ws, { Cookie: cookie("rs", "stay") });
      let closed = false;
      void c.closed.then(() => (closed = true));
      await waitFor("subscribed", async () => (await r.cli("PUBSUB", "NUMSUB", "ws.live.rs.stay")).endsWith("1"));
      for (let i = 0; i < 10; i++) await pub.fcall("wsgate_send", 1, "ws.mailbox.rs.stay", `m${i}`);
      await c.waitFor(10);
      pub.disconnect();
      await r.stop();
      await r.start();
      pub = new IORedis(r.url);
      // Stored while the gateway may still be reconnecting: it catches up when it is back.
      for (let i = 10; i < 20; i++) await pub.fcall("wsgate_send", 1, "ws.mailbox.rs.stay", `m${i}`);
      await waitFor("re-subscribed", async () => (await r.cli("PUBSUB", "NUMSUB", "ws.live.rs.stay")).endsWith("1"), 20_000);
      for (let i = 20; i < 25; i++) await pub.fcall("wsgate_send", 1, "ws.mailbox.rs.stay", `m${i}`);
      await waitFor("all 25", () => c.received.length >= 25, 20_000);
      expect(texts(c)).toEqual(range(0, 25));
      expect(closed).toBe(false);
      c.close();
    } finally {
      pub.disconnect();
      await gw.stop("SIGKILL");
      await r.clean();
    }
  });
});
