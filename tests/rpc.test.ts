// The wsgate.v1 envelope, request/reply both ways and the client SDK, on every runtime,
// against a real nats-server with JetStream (the mailbox on, as in production).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { WsgateError } from "../sdk/client.ts";
import { bunClient, cookie } from "./helpers/clients.ts";
import { type Gateway, type Nats, ROOT, RUNTIMES, startGateway, startNats, stopNatsAndClean, waitFor } from "./helpers/procs.ts";
import { percentile, sdkClient, waitForSub } from "./helpers/sdk.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

let nats: Nats;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await startNats({ jetstream: true });
  nc = await connect({ servers: nats.url });
});

afterAll(async () => {
  await nc?.close();
  if (nats) await stopNatsAndClean(nats);
});

/** A raw socket offering the envelope, to send what the SDK never would. */
function envelopeSocket(url: string, svc: string, user: string): Promise<{ ws: WebSocket; frames: any[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { protocols: ["wsgate.v1"], headers: { Cookie: cookie(svc, user) } } as unknown as string[]);
    const frames: any[] = [];
    ws.onmessage = (e) => frames.push(JSON.parse(String(e.data)));
    ws.onopen = () => resolve({ ws, frames });
    ws.onerror = () => reject(new Error("not upgraded"));
  });
}

/** Collects a child's output as it comes. */
function readAll(stream: ReadableStream<Uint8Array>): { text: string } {
  const out = { text: "" };
  void (async () => {
    for await (const chunk of stream) out.text += dec.decode(chunk, { stream: true });
  })();
  return out;
}

async function elapsed<T>(p: Promise<T>): Promise<{ ms: number; value?: T; error?: any }> {
  const t0 = performance.now();
  try {
    const value = await p;
    return { ms: performance.now() - t0, value };
  } catch (error) {
    return { ms: performance.now() - t0, error };
  }
}

for (const runtime of RUNTIMES) {
  describe(`${runtime}: wsgate.v1 request/reply`, () => {
    let gw: Gateway;
    const svc = `rpc-${runtime}`;
    const subs = () => nats.subsOf(gw.nodeId);

    beforeAll(async () => {
      gw = await startGateway(runtime, { env: { NATS_URL: nats.url, WSGATE_CALL_TIMEOUT_MS: "400", WSGATE_MAX_CALLS_PER_CONN: "8" } });
    });
    afterAll(async () => {
      await gw?.stop("SIGKILL");
    });

    test("the subprotocol is selected when offered; raw sockets are unchanged and cost no request subscription", async () => {
      const raw = await bunClient(gw.ws, { Cookie: cookie(svc, "mixed") });
      await waitForSub(subs, `ws.live.${svc}.mixed`);
      expect(await subs()).not.toContain(`ws.req.${svc}.mixed`);
      // Only raw sockets: nobody can be asked, and the requester hears so at once.
      const none = await elapsed(nc.request(`ws.req.${svc}.mixed`, "anyone?", { timeout: 5_000 }));
      expect(String(none.error)).toContain("no responders");
      expect(none.ms).toBeLessThan(500);

      const env = sdkClient(gw.ws, svc, "mixed");
      await env.client.opened();
      await waitForSub(subs, `ws.req.${svc}.mixed`);
      const probe = new WebSocket(gw.ws, { protocols: ["wsgate.v1"], headers: { Cookie: cookie(svc, "mixed") } } as unknown as string[]);
      await new Promise((r) => (probe.onopen = r));
      expect(probe.protocol).toBe("wsgate.v1");
      probe.close();

      nc.publish(`ws.recv.${svc}.mixed`, enc.encode("to both modes"));
      expect((await raw.waitFor(1))[0]).toEqual({ data: "to both modes", binary: false });
      await waitFor("envelope message", () => env.messages.length >= 1);
      expect(env.messages[0].data).toBe("to both modes");
      expect(env.messages[0].seq).toBeGreaterThan(0);

      env.client.close();
      await waitForSub(subs, `ws.req.${svc}.mixed`, false);
      expect(await subs()).toContain(`ws.live.${svc}.mixed`);
      raw.close();
    });

    test("200 service → client requests are answered correctly, in a few ms (next to plain NATS request/reply)", async () => {
      const c = sdkClient(gw.ws, svc, "answerer");
      c.client.onRequest((data) => (typeof data === "string" ? `re:${data}` : data.slice().reverse()));
      await c.client.opened();
      await waitForSub(subs, `ws.req.${svc}.answerer`);
      const subject = `ws.req.${svc}.answerer`;
      for (let i = 0; i < 20; i++) await nc.request(subject, enc.encode(`warm${i}`), { timeout: 2_000 });

      const through: number[] = [];
      for (let i = 0; i < 200; i++) {
        const t0 = performance.now();
        const r = await nc.request(subject, enc.encode(`q${i} ✓`), { timeout: 2_000 });
        through.push(performance.now() - t0);
        expect(r.string()).toBe(`re:q${i} ✓`);
      }

      // The same measurement against a trivial NATS responder, in the same run.
      const echo = nc.subscribe(`plain.echo.${runtime}`, {
        callback: (_e, m) => {
          m.respond(m.data);
        },
      });
      const responderNc = nc; // same client: the only difference left is the gateway and the socket
      await responderNc.flush();
      for (let i = 0; i < 20; i++) await nc.request(`plain.echo.${runtime}`, enc.encode("warm"), { timeout: 2_000 });
      const plain: number[] = [];
      for (let i = 0; i < 200; i++) {
        const t0 = performance.now();
        const r = await nc.request(`plain.echo.${runtime}`, enc.encode(`q${i}`), { timeout: 2_000 });
        plain.push(performance.now() - t0);
        expect(r.string()).toBe(`q${i}`);
      }
      echo.unsubscribe();

      through.sort((a, b) => a - b);
      plain.sort((a, b) => a - b);
      const f = (x: number) => x.toFixed(2);
      console.log(
        `[${runtime}] 200 service→client requests through the gateway: p50 ${f(percentile(through, 50))} ms, p99 ${f(percentile(through, 99))} ms` +
          ` | plain NATS request/reply: p50 ${f(percentile(plain, 50))} ms, p99 ${f(percentile(plain, 99))} ms`,
      );
      expect(percentile(through, 50)).toBeLessThan(5);

      // Binary both ways: base64 on the socket, bytes and Ws-Frame: binary for the requester.
      const h = natsHeaders();
      h.set("Ws-Frame", "binary");
      const bin = await nc.request(subject, new Uint8Array([0, 1, 0xff]), { timeout: 2_000, headers: h });
      expect([...bin.data]).toEqual([0xff, 1, 0]);
      expect(bin.headers?.get("Ws-Frame")).toBe("binary");

      // A handler that throws: the requester gets the code at once, not a timeout.
      c.client.onRequest(() => {
        throw Object.assign(new Error("cannot do that"), { code: "refused" });
      });
      const failed = await nc.request(subject, enc.encode("please"), { timeout: 2_000 });
      expect(failed.headers?.get("Ws-Error")).toBe("refused");
      expect(failed.string()).toBe("cannot do that");
      c.client.close();
    });

    test("a request to a user with no envelope connection anywhere fails at once", async () => {
      const viaNats = await elapsed(nc.request(`ws.req.${svc}.offline`, "hello?", { timeout: 5_000 }));
      expect(String(viaNats.error)).toContain("no responders");
      expect(viaNats.ms).toBeLessThan(500);
      const t0 = performance.now();
      const viaHttp = await fetch(`${gw.http}/v1/request/${svc}/offline?timeout=5000`, { method: "POST", body: "hello?" });
      expect(viaHttp.status).toBe(404);
      expect((await viaHttp.json()).error).toBe("no_responders");
      expect(performance.now() - t0).toBeLessThan(500);
    });

    test("requests pending on a socket that closes fail at once; HTTP requests reach the user too", async () => {
      const c = sdkClient(gw.ws, svc, "leaver");
      let asked!: () => void;
      const wasAsked = new Promise<void>((r) => (asked = r));
      c.client.onRequest(() => {
        asked();
        return new Promise(() => {}); // never answers
      });
      await c.client.opened();
      await waitForSub(subs, `ws.req.${svc}.leaver`);
      const pending = elapsed(nc.request(`ws.req.${svc}.leaver`, "wait for me", { timeout: 5_000 }));
      await wasAsked;
      c.client.close();
      const r = await pending;
      expect(r.value?.headers?.get("Ws-Error")).toBe("connection_closed");
      expect(r.ms).toBeLessThan(1_000);

      const d = sdkClient(gw.ws, svc, "httpuser");
      d.client.onRequest((data) => `got ${data}`);
      await d.client.opened();
      await waitForSub(subs, `ws.req.${svc}.httpuser`);
      const res = await fetch(`${gw.http}/v1/request/${svc}/httpuser?timeout=2000`, { method: "POST", body: "via http" });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("got via http");
      d.client.onRequest(() => new Promise(() => {}));
      const slow = await elapsed(fetch(`${gw.http}/v1/request/${svc}/httpuser?timeout=300`, { method: "POST", body: "x" }));
      expect(slow.value?.status).toBe(504);
      expect(slow.ms).toBeGreaterThanOrEqual(290);
      expect(slow.ms).toBeLessThan(2_000);
      d.client.close();
    });

    test("a user on two nodes: each request reaches exactly one connection; the other node takes over when one leaves", async () => {
      const other = await startGateway(runtime, { env: { NATS_URL: nats.url } });
      try {
        const asked = [0, 0];
        const c1 = sdkClient(gw.ws, svc, "twonode");
        const c2 = sdkClient(other.ws, svc, "twonode");
        c1.client.onRequest((d) => (asked[0]++, `one:${d}`));
        c2.client.onRequest((d) => (asked[1]++, `two:${d}`));
        await Promise.all([c1.client.opened(), c2.client.opened()]);
        await waitForSub(subs, `ws.req.${svc}.twonode`);
        await waitForSub(() => nats.subsOf(other.nodeId), `ws.req.${svc}.twonode`);
        for (let i = 0; i < 40; i++) expect((await nc.request(`ws.req.${svc}.twonode`, `q${i}`, { timeout: 2_000 })).string()).toMatch(new RegExp(`^(one|two):q${i}$`));
        expect(asked[0] + asked[1]).toBe(40);
        expect(asked[0]).toBeGreaterThan(0);
        expect(asked[1]).toBeGreaterThan(0);
        c1.client.close();
        await waitForSub(subs, `ws.req.${svc}.twonode`, false);
        for (let i = 0; i < 10; i++) expect((await nc.request(`ws.req.${svc}.twonode`, `r${i}`, { timeout: 2_000 })).string()).toBe(`two:r${i}`);
        c2.client.close();
      } finally {
        await other.stop("SIGKILL");
      }
    });

    test("client → service calls: answered, no_responders at once, timeout as configured, bounded in flight", async () => {
      const seen: { user?: string; conn?: string; node?: string; frame?: string }[] = [];
      const echo = nc.subscribe(`ws.call.${svc}.echo`, {
        callback: (_e, m) => {
          seen.push({ user: m.headers?.get("Ws-User"), conn: m.headers?.get("Ws-Conn"), node: m.headers?.get("Ws-Node"), frame: m.headers?.get("Ws-Frame") });
          const h = natsHeaders();
          if (m.headers?.get("Ws-Frame") === "binary") h.set("Ws-Frame", "binary");
          m.respond(m.headers?.get("Ws-Frame") === "binary" ? m.data : enc.encode(`echo:${m.string()}`), { headers: h });
        },
      });
      const picky = nc.subscribe(`ws.call.${svc}.picky`, {
        callback: (_e, m) => {
          const h = natsHeaders();
          h.set("Ws-Error", "bad_input");
          m.respond(enc.encode("numbers only"), { headers: h });
        },
      });
      const slow = nc.subscribe(`ws.call.${svc}.slow`, { callback: () => {} });
      await nc.flush();
      const c = sdkClient(gw.ws, svc, "caller");
      await c.client.opened();

      expect(await c.client.request("echo", "hi")).toBe("echo:hi");
      expect(seen[0]).toMatchObject({ user: "caller", node: gw.nodeId, frame: "text" });
      expect(seen[0].conn).toMatch(new RegExp(`^${gw.nodeId}\\.\\d+$`));
      expect([...((await c.client.request("echo", new Uint8Array([9, 0, 250]))) as Uint8Array)]).toEqual([9, 0, 250]);

      const nobody = await elapsed(c.client.request("nobody-listens", "x", { timeout: 5_000 }));
      expect(nobody.error).toBeInstanceOf(WsgateError);
      expect(nobody.error.code).toBe("no_responders");
      expect(nobody.ms).toBeLessThan(500);

      const late = await elapsed(c.client.request("slow", "x", { timeout: 5_000 }));
      expect(late.error.code).toBe("timeout");
      expect(late.ms).toBeGreaterThanOrEqual(390); // WSGATE_CALL_TIMEOUT_MS=400
      expect(late.ms).toBeLessThan(4_000); // the configured 400 ms, not the 5 s the client asked for (slack for a loaded machine)

      const refused = await elapsed(c.client.request("picky", "abc"));
      expect(refused.error.code).toBe("bad_input");
      expect(refused.error.message).toBe("numbers only");

      // WSGATE_MAX_CALLS_PER_CONN=8: the ninth call in flight is refused at once.
      const calls = Array.from({ length: 9 }, () => elapsed(c.client.request("slow", "x", { timeout: 5_000 })));
      const outcomes = (await Promise.all(calls)).map((r) => r.error.code);
      expect(outcomes.filter((o) => o === "too_many_calls").length).toBe(1);
      expect(outcomes.filter((o) => o === "timeout").length).toBe(8);

      expect(await gw.metric('wsgate_calls_total{outcome="no_responders"}')).toBeGreaterThanOrEqual(1);
      expect(await gw.metric('wsgate_calls_total{outcome="timeout"}')).toBeGreaterThanOrEqual(9);
      await waitFor("nothing pending", async () => (await gw.metric("wsgate_rpc_pending")) === 0);
      echo.unsubscribe();
      picky.unsubscribe();
      slow.unsubscribe();
      c.client.close();
    });

    test("malformed envelopes get error frames; the connection stays open and the gateway healthy", async () => {
      const before = await gw.metric("wsgate_envelope_errors_total");
      const { ws, frames } = await envelopeSocket(gw.ws, svc, "fuzzer");
      ws.send(JSON.stringify({ type: "resume" }));
      const bad: [string | Uint8Array<ArrayBuffer>, string | undefined][] = [
        ["not json at all", undefined],
        ["[1,2,3]", undefined],
        ["null", undefined],
        ['{"type":"nope","id":"x1"}', "x1"],
        ['{"type":"request","id":"x2","method":"a.b"}', "x2"],
        ['{"type":"request","id":"x3","method":"' + "m".repeat(65) + '"}', "x3"],
        ['{"type":"request","id":"has space","method":"m"}', undefined],
        ['{"type":"reply","id":"' + "i".repeat(65) + '","data":"x"}', undefined],
        ['{"type":"reply","id":"x4","data":42}', "x4"],
        ['{"type":"message","data":"%%% not base64","encoding":"base64"}', undefined],
        ['{"type":"message","data":"x","encoding":"hex"}', undefined],
        ['{"type":"resume","after":-3}', undefined],
        ['{"type":"request","id":"x5","method":"m","timeout":"soon"}', "x5"],
        [new Uint8Array([1, 2, 3]), undefined],
      ];
      for (const [frame] of bad) ws.send(frame);
      await waitFor(`${bad.length} error frames`, () => frames.filter((f) => f.type === "error").length >= bad.length);
      const errors = frames.filter((f) => f.type === "error");
      expect(errors.map((e) => e.id)).toEqual(bad.map(([, id]) => id));
      for (const e of errors) {
        expect(e.code).toBe("bad_frame");
        expect(typeof e.message).toBe("string");
      }
      // Still open and still working: a valid frame goes through.
      const sub = nc.subscribe(`ws.send.${svc}.fuzzer`, { max: 1 });
      await nc.flush();
      ws.send(JSON.stringify({ type: "message", data: "aGVsbG8=", encoding: "base64" }));
      for await (const m of sub) {
        expect(m.string()).toBe("hello");
        expect(m.headers?.get("Ws-Frame")).toBe("binary");
      }
      expect(ws.readyState).toBe(WebSocket.OPEN);
      expect(await gw.metric("wsgate_envelope_errors_total")).toBe(before + bad.length);
      expect((await fetch(`${gw.http}/healthz`)).status).toBe(200);
      ws.close();
    });

    test("the README's example service and client run against it", async () => {
      const user = `ex-${runtime}`;
      const service = Bun.spawn(["node_modules/.bin/bun", "scripts/example/service.ts", "--nats", nats.url, "--user", user, "--every", "200"], {
        cwd: ROOT,
        stdout: "pipe",
        stderr: "pipe",
      });
      try {
        const out = readAll(service.stdout);
        await waitFor("service connected", () => out.text.includes("service: connected"));
        const client = Bun.spawn(["node_modules/.bin/bun", "scripts/example/client.ts", "--url", gw.ws, "--user", user, "--once"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
        const [code, text] = await Promise.all([client.exited, new Response(client.stdout).text()]);
        expect(code).toBe(0);
        expect(text).toContain("client: open");
        expect(text).toMatch(/client: time is \d{4}-\d\d-\d\dT/);
        expect(text).toContain("client: 2 + 3 = 5");
        expect(text).toContain("client: add refused: bad_input");
        expect(text).toContain(`client: message "you said: hello from ${user}"`);
        expect(text).toContain('client: the service asks "are you still there?"');
        await waitFor("the service heard the answer", () => out.text.includes(`service: ${user} answered "yes, ${user} is here"`));
        expect(out.text).toContain(`service: ${user} says "hello from ${user}"`);
        // The client is gone: the next question fails at once rather than after 3 s.
        await waitFor("offline noticed", () => out.text.includes(`service: ${user} is offline`));
      } finally {
        service.kill("SIGTERM");
        await service.exited;
      }
    });

    test("SDK reconnect across a gateway restart resumes from the mailbox: nothing missed, nothing twice", async () => {
      const user = "survivor";
      const first = await startGateway(runtime, { env: { NATS_URL: nats.url } });
      const port = first.port;
      let second: Gateway | null = null;
      const c = sdkClient(first.ws, svc, user, { backoff: { initialMs: 50, maxMs: 400 } });
      try {
        await c.client.opened();
        let published = 0;
        let publishing = true;
        // A service that keeps publishing through the restart, plain core publishes.
        const producer = (async () => {
          while (publishing) {
            nc.publish(`ws.recv.${svc}.${user}`, enc.encode(`m${published++}`));
            if (published % 10 === 0) await nc.flush();
            await Bun.sleep(3); // a steady stream, so the restart cuts into it
          }
          await nc.flush();
        })();
        await waitFor("messages before the restart", () => c.messages.length >= 100);
        expect(await first.stop("SIGTERM")).toBe(0);
        second = await startGateway(runtime, { env: { NATS_URL: nats.url }, port });
        await waitFor("reconnected", () => c.opens >= 2 && c.client.state === "open", 30_000);
        const atReconnect = published;
        await waitFor("messages after the reconnect", () => published >= atReconnect + 100);
        publishing = false;
        await producer;
        // Sentinel: an end mark on the same subject after the last message; a duplicate the
        // client would show comes before it (the SDK drops anything older after it).
        nc.publish(`ws.recv.${svc}.${user}`, enc.encode("end"));
        await waitFor(`all ${published} messages and the end mark`, () => c.messages.some((m) => m.data === "end"), 20_000);
        expect(c.messages.map((m) => m.data)).toEqual([...Array.from({ length: published }, (_, i) => `m${i}`), "end"]);
        const seqs = c.messages.map((m) => m.seq!);
        for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]);
        expect(c.client.lastSeq).toBe(seqs[seqs.length - 1]);
      } finally {
        c.client.close();
        await first.stop("SIGKILL");
        await second?.stop("SIGKILL");
      }
    });
  });

  describe(`${runtime}: wsgate.v1 in embedded mode`, () => {
    let gw: Gateway;
    beforeAll(async () => {
      gw = await startGateway(runtime);
    });
    afterAll(async () => {
      await gw?.stop("SIGKILL");
    });

    test("HTTP requests reach an envelope client; nobody connected is 404 at once; calls get no_responders", async () => {
      const c = sdkClient(gw.ws, "emb", "u1");
      c.client.onRequest((data) => `yes to ${data}`);
      await c.client.opened();
      const res = await fetch(`${gw.http}/v1/request/emb/u1?timeout=2000`, { method: "POST", body: "question" });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("yes to question");
      const nobody = await elapsed(fetch(`${gw.http}/v1/request/emb/u2?timeout=5000`, { method: "POST", body: "?" }));
      expect(nobody.value?.status).toBe(404);
      expect(nobody.ms).toBeLessThan(500);
      const bad = await fetch(`${gw.http}/v1/request/emb/u1?timeout=soon`, { method: "POST", body: "?" });
      expect(bad.status).toBe(400);
      const call = await elapsed(c.client.request("anything", "x"));
      expect(call.error.code).toBe("no_responders");
      // Messages still flow; without the mailbox they carry no seq and resume is a no-op.
      await fetch(`${gw.http}/v1/publish/emb/u1`, { method: "POST", body: "plain" });
      await waitFor("message", () => c.messages.length >= 1);
      expect(c.messages[0]).toEqual({ data: "plain", seq: undefined });
      c.client.close();
    });
  });
}
