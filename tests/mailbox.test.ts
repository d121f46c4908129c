// The durable mailbox on every runtime, against a real nats-server with JetStream:
// nothing lost, nothing repeated, in order, across reconnects, restarts and crashes.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { bunClient, cookie, type Client, pausableReader, wsPackageClient } from "./helpers/clients.ts";
import { type Gateway, type Nats, RUNTIMES, startGateway, startNats, stopNatsAndClean, waitFor } from "./helpers/procs.ts";

const texts = (c: Client) => c.received.map((m) => m.data as string);
const range = (from: number, to: number, p = "m") => Array.from({ length: to - from }, (_, i) => `${p}${from + i}`);
/** Fast cursor flushes so tests see them without long waits. */
const MAILBOX_ENV = { WSGATE_MAILBOX_CURSOR_FLUSH_MS: "50" };

for (const runtime of RUNTIMES) {
  describe(`${runtime}: mailbox`, () => {
    let nats: Nats;
    let nc: NatsConnection;
    let gw: Gateway;
    const svc = `mb-${runtime}`;
    const pub = (user: string, data: string) => nc.publish(`ws.recv.${svc}.${user}`, data);

    beforeAll(async () => {
      nats = await startNats({ jetstream: true });
      nc = await connect({ servers: nats.url });
      gw = await startGateway(runtime, { env: { NATS_URL: nats.url, ...MAILBOX_ENV } });
    });
    afterAll(async () => {
      await gw?.stop("SIGKILL");
      await nc?.close();
      if (nats) await stopNatsAndClean(nats);
    });

    /** Publishes m0…m<count-1> to a user in batches of `batch`, 5 ms apart: a steady stream to cut into. */
    async function publishPaced(user: string, count: number, batch: number) {
      for (let sent = 0; sent < count; ) {
        for (let i = 0; i < batch && sent < count; i++) pub(user, `m${sent++}`);
        await nc.flush();
        await Bun.sleep(5);
      }
    }

    /** Publishes a sentinel and waits for it: everything before it has then arrived, once. */
    async function settle(c: Client | Client[], user: string) {
      const all = Array.isArray(c) ? c : [c];
      const mark = `sentinel-${crypto.randomUUID()}`;
      pub(user, mark);
      await waitFor(`sentinel for ${user}`, () => all.every((x) => texts(x).includes(mark)));
      for (const x of all) x.received.splice(texts(x).indexOf(mark), 1);
    }

    test("an offline user gets the backlog in order, then live messages, with no gap or repeat at the switch", async () => {
      for (let i = 0; i < 20; i++) pub("off", `m${i}`);
      const js = jetstream(nc);
      for (let i = 20; i < 25; i++) await js.publish(`ws.recv.${svc}.off`, `m${i}`); // JetStream publishes are kept too
      await nc.flush();
      const c = await bunClient(gw.ws, { Cookie: cookie(svc, "off") });
      for (let i = 25; i < 60; i++) pub("off", `m${i}`); // racing the catch-up
      await settle(c, "off");
      expect(texts(c)).toEqual(range(0, 60));
      // The counter moves when the read is over, which can be a round trip after its last message went out.
      await waitFor("backlog counted", async () => (await gw.metric("wsgate_mailbox_backlog_delivered_total")) >= 25);
      c.close();
    });

    test("a user who comes back gets exactly what they missed", async () => {
      let c = await bunClient(gw.ws, { Cookie: cookie(svc, "back") });
      for (let i = 0; i < 5; i++) pub("back", `m${i}`);
      await c.waitFor(5);
      c.close();
      await c.closed;
      await waitFor("user released", async () => (await nats.subsOf(gw.nodeId)).every((s) => !s.endsWith(`.${svc}.back`)));
      for (let i = 5; i < 12; i++) pub("back", `m${i}`);
      await nc.flush();
      c = await bunClient(gw.ws, { Cookie: cookie(svc, "back") });
      await settle(c, "back");
      expect(texts(c)).toEqual(range(5, 12));
      c.close();
    });

    test("a crowd coming back at once shares reads of the stream and each gets exactly what it missed", async () => {
      const N = 150;
      const users = Array.from({ length: N }, (_, i) => `crowd${i}`);
      // Each has been here before and has a cursor.
      let clients = await Promise.all(users.map((u) => bunClient(gw.ws, { Cookie: cookie(svc, u) })));
      users.forEach((u) => pub(u, "seen"));
      await Promise.all(clients.map((c) => c.waitFor(1)));
      clients.forEach((c) => c.close());
      await Promise.all(clients.map((c) => c.closed));
      await waitFor("all released", async () => (await nats.subsOf(gw.nodeId)).every((s) => !s.includes(`.${svc}.crowd`)), 15_000);
      // Interleaved backlogs, as a service notifying many users over time leaves them.
      for (let i = 0; i < 10; i++) for (const u of users) pub(u, `m${i}`);
      await nc.flush();
      const passesBefore = await gw.metric("wsgate_mailbox_shared_reads_total");
      clients = await Promise.all(users.map((u) => bunClient(gw.ws, { Cookie: cookie(svc, u) })));
      for (const u of users) pub(u, "m10"); // live, racing the catch-ups
      await Promise.all(clients.map((c, i) => settle(c, users[i])));
      for (const c of clients) expect(texts(c)).toEqual(range(0, 11));
      expect(await gw.metric("wsgate_mailbox_shared_reads_total")).toBeGreaterThan(passesBefore);
      clients.forEach((c) => c.close());
    }, 60_000);

    test("a crowd of envelope clients resuming at once each gets exactly what follows its own point", async () => {
      type Frame = { type: string; data: string; seq: number };
      const frames = (c: Client) => c.received.map((m) => JSON.parse(m.data as string) as Frame).filter((f) => f.type === "message"); // not the hello
      const N = 100;
      const users = Array.from({ length: N }, (_, i) => `envcrowd${i}`);
      const open = () => Promise.all(users.map((u) => wsPackageClient(gw.ws, { Cookie: cookie(svc, u) }, "wsgate.v1")));
      let clients = await open();
      clients.forEach((c) => c.send(JSON.stringify({ type: "resume" })));
      for (let i = 0; i < 5; i++) for (const u of users) pub(u, `m${i}`);
      await Promise.all(clients.map((c) => c.waitFor(6))); // hello and m0..m4
      const points = clients.map((c) => frames(c)[2].seq); // each resumes after its own m2
      clients.forEach((c) => c.close());
      await Promise.all(clients.map((c) => c.closed));
      for (let i = 5; i < 10; i++) for (const u of users) pub(u, `m${i}`);
      await nc.flush();
      clients = await open();
      clients.forEach((c, i) => c.send(JSON.stringify({ type: "resume", after: points[i] })));
      for (const u of users) pub(u, "m10");
      await Promise.all(clients.map((c) => c.waitFor(8)));
      // A last message marks the end: anything sent twice would have come before it.
      for (const u of users) pub(u, "m11");
      await waitFor("the last message everywhere", () => clients.every((c) => frames(c).some((x) => x.data === "m11")));
      for (const c of clients) {
        const f = frames(c);
        expect(f.map((x) => x.data)).toEqual(range(3, 12));
        expect(f.every((x, i) => i === 0 || x.seq > f[i - 1].seq)).toBe(true);
      }
      clients.forEach((c) => c.close());
    }, 60_000);

    test("two nodes with the same user: each connection gets each message once", async () => {
      const other = await startGateway(runtime, { env: { NATS_URL: nats.url, ...MAILBOX_ENV } });
      try {
        const a = await bunClient(gw.ws, { Cookie: cookie(svc, "both") });
        const b = await bunClient(other.ws, { Cookie: cookie(svc, "both") });
        await settle([a, b], "both");
        a.received.length = 0;
        b.received.length = 0;
        for (let i = 0; i < 50; i++) pub("both", `m${i}`);
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
      const g1 = await startGateway(runtime, { env: { NATS_URL: nats.url, ...MAILBOX_ENV } });
      const first = await bunClient(g1.ws, { Cookie: cookie(svc, "crash") });
      const publisher = publishPaced("crash", 1000, 25);
      await waitFor("a third of the stream", () => first.received.length >= 300, 20_000);
      await g1.stop("SIGKILL");
      await publisher;
      const g2 = await startGateway(runtime, { env: { NATS_URL: nats.url, ...MAILBOX_ENV } });
      try {
        const second = await bunClient(g2.ws, { Cookie: cookie(svc, "crash") });
        await settle(second, "crash");
        const a = texts(first);
        const b = texts(second);
        // What the first connection got is a gap-free prefix; the second continues from at
        // or before its end (at-least-once across a crash), in order, to the last message.
        expect(a).toEqual(range(0, a.length));
        const start = Number(b[0].slice(1));
        expect(start).toBeLessThanOrEqual(a.length);
        expect(b).toEqual(range(start, 1000));
        console.log(`[${runtime}] kill -9 after ${a.length} delivered: ${a.length - start} redelivered, 0 lost`);
        second.close();
      } finally {
        await g2.stop("SIGKILL");
      }
    });

    test("envelope resume after a gateway kill -9: exactly what follows the last seen seq, no duplicate", async () => {
      const frames = (c: Client) => c.received.map((m) => JSON.parse(m.data as string) as { type: string; data: string; seq: number }).filter((f) => f.type === "message"); // not the hello
      const g1 = await startGateway(runtime, { env: { NATS_URL: nats.url, ...MAILBOX_ENV } });
      const first = await wsPackageClient(g1.ws, { Cookie: cookie(svc, "env") }, "wsgate.v1");
      first.send(JSON.stringify({ type: "resume" }));
      const publisher = publishPaced("env", 600, 20);
      await waitFor("part of the stream", () => first.received.length >= 150, 20_000);
      await g1.stop("SIGKILL");
      await publisher;
      const seen = frames(first);
      const last = seen[seen.length - 1].seq;
      const g2 = await startGateway(runtime, { env: { NATS_URL: nats.url, ...MAILBOX_ENV } });
      try {
        const second = await wsPackageClient(g2.ws, { Cookie: cookie(svc, "env") }, "wsgate.v1");
        second.send(JSON.stringify({ type: "resume", after: last }));
        await waitFor("the rest of the stream", () => frames(second).some((f) => f.data === "m599"), 20_000);
        const all = [...seen, ...frames(second)];
        expect(all.map((f) => f.data)).toEqual(range(0, 600));
        const seqs = all.map((f) => f.seq);
        expect(seqs.every((s, i) => i === 0 || s > seqs[i - 1])).toBe(true);
        second.close();
      } finally {
        await g2.stop("SIGKILL");
      }
    });

    test("a backlog larger than the outbound limit is paced to a slow reader, not cut off", async () => {
      const g = await startGateway(runtime, { env: { NATS_URL: nats.url, ...MAILBOX_ENV, WSGATE_MAX_BUFFERED_BYTES: String(256 * 1024) } });
      try {
        const big = "y".repeat(64 * 1024);
        for (let i = 0; i < 200; i++) pub("paced", `m${i}:${big}`); // 12.8 MB, fifty times the limit
        await nc.flush();
        const r = await pausableReader(g.port, { Cookie: cookie(svc, "paced") });
        r.pause();
        // A reader that looks away once the backlog is coming ...
        await waitFor("the backlog under way", async () => (await g.metric("wsgate_messages_out_total")) > 0, 20_000);
        // ... for a second, in which a gateway that did not pace would overrun the limit fifty
        // times over. (Backpressure is no signal to wait on: a paced Deno socket never counts it.)
        await Bun.sleep(1_000);
        r.resume();
        await waitFor("the whole backlog", () => r.texts.length >= 200 || r.closeCode() !== 0, 30_000);
        expect(r.closeCode()).toBe(0);
        expect(r.texts.map((t) => t.split(":")[0])).toEqual(range(0, 200));
        expect(await g.metric("wsgate_slow_consumers_total")).toBe(0);
        r.close();
      } finally {
        await g.stop("SIGKILL");
      }
    });

    test("nats-server restarted with a backlog waiting (file storage) loses nothing", async () => {
      for (let i = 0; i < 30; i++) pub("restart", `m${i}`);
      await nc.flush();
      await nats.stop();
      await nats.start();
      await waitFor("gateway ready again", async () => (await fetch(`${gw.http}/readyz`)).status === 200, 20_000);
      await waitFor("test client reconnected", async () => {
        await nc.flush();
        return true;
      });
      const c = await bunClient(gw.ws, { Cookie: cookie(svc, "restart") });
      await settle(c, "restart");
      expect(texts(c)).toEqual(range(0, 30));
      c.close();
    });

    test("a live gap (node cut off as a slow consumer) is healed from the stream", async () => {
      // A NATS server that cuts slow readers quickly, and a gateway frozen with SIGSTOP.
      const strict = await startNats({ jetstream: true, config: "write_deadline: \"250ms\"\nmax_pending: 262144\nmax_payload: 65536\n" });
      const snc = await connect({ servers: strict.url });
      const g = await startGateway(runtime, { env: { NATS_URL: strict.url, ...MAILBOX_ENV } });
      try {
        const c = await bunClient(g.ws, { Cookie: cookie(svc, "gap") });
        const big = "x".repeat(32 * 1024);
        snc.publish(`ws.recv.${svc}.gap`, "m0");
        await c.waitFor(1);
        process.kill(g.proc.pid, "SIGSTOP");
        try {
          for (let i = 1; i <= 200; i++) snc.publish(`ws.recv.${svc}.gap`, `m${i}:${big}`);
          await snc.flush();
          await waitFor("the server cut the frozen gateway", async () => {
            const v = await (await fetch(`http://127.0.0.1:${strict.monitor}/varz`)).json();
            return v.slow_consumers > 0;
          }, 15_000);
        } finally {
          process.kill(g.proc.pid, "SIGCONT");
        }
        await c.waitFor(201, 20_000);
        const got = texts(c).map((t) => t.split(":")[0]);
        expect(got).toEqual(range(0, 201));
        const healed = (await g.metric("wsgate_mailbox_backlog_delivered_total")) + (await g.metric("wsgate_mailbox_gaps_healed_total"));
        expect(healed).toBeGreaterThan(0);
        c.close();
      } finally {
        await g.stop("SIGKILL");
        await snc.close();
        await stopNatsAndClean(strict);
      }
    });

    test("count and age limits drop what they should", async () => {
      const own = await startNats({ jetstream: true });
      const onc = await connect({ servers: own.url });
      const g = await startGateway(runtime, {
        env: { NATS_URL: own.url, ...MAILBOX_ENV, WSGATE_MAILBOX_MAX_PER_USER: "5", WSGATE_MAILBOX_MAX_AGE_S: "1" },
      });
      try {
        for (let i = 0; i < 10; i++) onc.publish(`ws.recv.${svc}.count`, `m${i}`);
        await onc.flush();
        const c = await bunClient(g.ws, { Cookie: cookie(svc, "count") });
        await c.waitFor(5);
        expect(texts(c)).toEqual(range(5, 10));
        c.close();

        for (let i = 0; i < 3; i++) onc.publish(`ws.recv.${svc}.aged`, `old${i}`);
        await onc.flush();
        const jsm = await jetstreamManager(onc);
        await waitFor("messages past max age are gone", async () => (await jsm.direct.getMessage("WSGATE", { last_by_subj: `ws.recv.${svc}.aged` })) === null, 10_000, 100);
        const d = await bunClient(g.ws, { Cookie: cookie(svc, "aged") });
        onc.publish(`ws.recv.${svc}.aged`, "fresh");
        await d.waitFor(1);
        expect(texts(d)).toEqual(["fresh"]);
        d.close();
      } finally {
        await g.stop("SIGKILL");
        await onc.close();
        await stopNatsAndClean(own);
      }
    });

    test("a deleted mailbox stream is made again, with sequences above the old ones: no user skips its new messages", async () => {
      const own = await startNats({ jetstream: true });
      const onc = await connect({ servers: own.url });
      const g = await startGateway(runtime, { env: { NATS_URL: own.url, ...MAILBOX_ENV } });
      const opub = (user: string, data: string) => onc.publish(`ws.recv.${svc}.${user}`, data);
      try {
        const jsm = await jetstreamManager(onc);
        const before = (await jsm.streams.info("WSGATE")).created;
        // A user with a cursor far into the old stream, and one who stays connected throughout.
        let gone = await bunClient(g.ws, { Cookie: cookie(svc, "away") });
        const stays = await bunClient(g.ws, { Cookie: cookie(svc, "stays") });
        for (let i = 0; i < 30; i++) opub("away", `old${i}`);
        await gone.waitFor(30);
        gone.close();
        await gone.closed;
        await waitFor("cursor saved", async () => (await jsm.direct.getMessage("WSGATE_CURSORS", { last_by_subj: `ws.cursor.${svc}.away` })) !== null);

        await jsm.streams.delete("WSGATE");
        const info = await waitFor("stream made again", async () => {
          const i = await jsm.streams.info("WSGATE").catch(() => null);
          return i && i.created !== before && i.config.subjects.includes("ws.recv.>") ? i : null;
        });
        expect(info.state.first_seq).toBeGreaterThan(1_000_000);

        for (let i = 0; i < 5; i++) opub("away", `new${i}`);
        opub("stays", "live-after");
        await onc.flush();
        await stays.waitFor(1);
        expect(texts(stays)).toEqual(["live-after"]);
        gone = await bunClient(g.ws, { Cookie: cookie(svc, "away") });
        await gone.waitFor(5);
        expect(texts(gone)).toEqual(range(0, 5, "new"));
        expect(g.output()).toContain("mailbox stream was deleted; creating it again");
        gone.close();
        stays.close();
      } finally {
        await g.stop("SIGKILL");
        await onc.close();
        await stopNatsAndClean(own);
      }
    }, 30_000);
  });
}
