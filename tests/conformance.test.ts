// One behaviour, three runtimes, two brokers: every test here runs against the Bun, Node-uWS
// and Deno adapters, on a real nats-server and on a real redis-server, with real clients.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Backplane, natsBackplane, redisBackplane } from "./helpers/backplane.ts";
import { bunClient, cookie, tryUpgrade, wsPackageClient } from "./helpers/clients.ts";
import { nodeLts } from "./helpers/node-lts.ts";
import { type Gateway, ROOT, type Runtime, RUNTIMES, startGateway, waitFor } from "./helpers/procs.ts";

const dec = new TextDecoder();

/** The brokers the suite runs on (WSGATE_TEST_BROKERS=nats,redis by default). */
const BROKERS = (process.env.WSGATE_TEST_BROKERS ?? "nats,redis").split(",");
const backplanes: Backplane[] = [];

beforeAll(async () => {
  if (BROKERS.includes("nats")) backplanes.push(await natsBackplane());
  if (BROKERS.includes("redis")) backplanes.push(await redisBackplane());
});

afterAll(async () => {
  for (const b of backplanes) await b.close();
});

/** Each runtime, and the Node adapter again on each Node LTS line (NODE_BIN picks the binary in scripts/start.sh). */
type Variant = { runtime: Runtime; label: string; env: Record<string, string>; unloadable?: string };
const VARIANTS: Variant[] = RUNTIMES.flatMap((runtime): Variant[] => {
  if (runtime !== "node") return [{ runtime, label: runtime, env: {} }];
  const lts = ([22, 24] as const).map(nodeLts).map((n): Variant => ({ runtime, label: `node${n.major}`, env: { NODE_BIN: n.bin }, unloadable: n.unloadable }));
  return [{ runtime, label: "node", env: {} }, ...lts];
});

for (const { runtime, label, env: runtimeEnv, unloadable } of VARIANTS) {
  if (unloadable) {
    // No uWS build for this Node runs on this machine's glibc (Node 24 needs 2.38; Debian 12 has 2.36):
    // the conformance suite cannot run here, so what an operator sees is asserted instead.
    test(`${label}: where no uWebSockets.js build loads, the Node adapter exits 1 with one line naming the cause`, () => {
      const r = Bun.spawnSync(["sh", "scripts/start.sh", "node"], { cwd: ROOT, env: { ...process.env, ...runtimeEnv, PORT: "0", HOST: "127.0.0.1" }, stdout: "pipe", stderr: "pipe", timeout: 60_000 });
      const err = r.stderr.toString().trim();
      expect(r.exitCode).toBe(1);
      expect(err.split("\n")).toHaveLength(1);
      expect(err).toContain("wsgate: no uWebSockets.js build loads on Node v");
      expect(err).toContain(unloadable!.replace(/^Error: /, "").slice(0, 40));
    });
    continue;
  }
  for (const [bi, broker] of BROKERS.entries()) describe(`${label}: ${broker === "nats" ? "NATS" : "Redis"} mode`, () => {
    let gw: Gateway;
    let bp: Backplane;
    /** ids unique to this runtime and broker: a Redis channel's subscriber count is server-wide */
    const tag = `${label}-${broker}`;
    beforeAll(async () => {
      bp = backplanes[bi];
      gw = await startGateway(runtime, { env: { ...runtimeEnv, ...bp.env } });
      await waitFor("readyz 200", async () => (await fetch(`${gw.http}/readyz`)).status === 200);
    });
    afterAll(async () => {
      await gw?.stop("SIGKILL");
    });

    test("health, readiness and Prometheus metrics", async () => {
      expect((await fetch(`${gw.http}/healthz`)).status).toBe(200);
      expect((await fetch(`${gw.http}/readyz`)).status).toBe(200);
      const res = await fetch(`${gw.http}/metrics`);
      expect(res.headers.get("content-type")).toContain("text/plain");
      const text = await res.text();
      for (const name of [
        "wsgate_connections",
        "wsgate_users",
        'wsgate_upgrades_refused_total{reason="identity"}',
        "wsgate_messages_in_total",
        "wsgate_bytes_in_total",
        "wsgate_messages_out_total",
        "wsgate_bytes_out_total",
        "wsgate_broker_connected 1",
        "wsgate_open_files_limit",
      ]) {
        expect(text).toContain(name);
      }
      expect(await gw.metric("wsgate_open_files_limit")).toBeGreaterThan(0);
    });

    test("refuses a missing or invalid identity with a 4xx naming the cookie, before any upgrade", async () => {
      const cases: [Record<string, string>, number, string][] = [
        [{}, 401, "cookie service is missing"],
        [{ Cookie: "service=s1" }, 401, "cookie user is missing"],
        [{ Cookie: "user=u1" }, 401, "cookie service is missing"],
        [{ Cookie: "service=s1; user=a.b" }, 400, "cookie user is invalid"],
        [{ Cookie: "service=s*; user=u1" }, 400, "cookie service is invalid"],
        [{ Cookie: "service=s1; user=>" }, 400, "cookie user is invalid"],
        [{ Cookie: "service=s1; user=a%2Eb" }, 400, "cookie user is invalid"],
        [{ Cookie: "service=s1; user=a%20b" }, 400, "cookie user is invalid"],
        [{ Cookie: "service=s1; user=%E2%82%AC" }, 400, "cookie user is invalid"],
        [{ Cookie: "service=s1; user=%zz" }, 400, "cookie user is not valid percent-encoding"],
        [{ Cookie: `service=s1; user=${"x".repeat(65)}` }, 400, "cookie user is invalid"],
        [{ Cookie: "service=s1; user=u1; user=u2" }, 400, "cookie user is given twice"],
      ];
      const subsBefore = await bp.total(gw.nodeId);
      for (const [headers, status, body] of cases) {
        const r = await tryUpgrade(gw.http, headers);
        expect({ headers, status: r.status }).toEqual({ headers, status });
        expect(r.body).toContain(body);
      }
      expect(await gw.metric("wsgate_connections")).toBe(0);
      expect(await gw.metric('wsgate_upgrades_refused_total{reason="identity"}')).toBeGreaterThanOrEqual(cases.length);
      expect(await bp.total(gw.nodeId)).toBe(subsBefore);
      // A plain GET is not an upgrade.
      const plain = await fetch(`${gw.http}/ws`, { headers: { Cookie: cookie("s1", "u1") } });
      expect(plain.status).toBe(426);
    });

    test("client frames reach the service unchanged (NATS: ws.send.<svc>.<user>, Redis: stream ws.send.<svc>), with user, connection, node and frame type", async () => {
      const { got, stop } = await bp.clientFrames(`conf-${tag}`);
      const c = await bunClient(gw.ws, { Cookie: cookie(`conf-${tag}`, "alice") });
      const binary = new Uint8Array([0, 1, 2, 0xff, 0xfe]);
      c.send("héllo wörld");
      c.send(binary);
      await waitFor("two published frames", () => got.length >= 2);
      expect(dec.decode(got[0].data)).toBe("héllo wörld");
      expect(got[0].frame).toBe("text");
      expect([...got[1].data]).toEqual([...binary]);
      expect(got[1].frame).toBe("binary");
      expect(got[0].node).toBe(gw.nodeId);
      expect(got[0].conn).toMatch(new RegExp(`^${gw.nodeId}\\.\\d+$`)); // the cluster-wide id, <node>.<n>
      expect(got[1].conn).toBe(got[0].conn);
      expect(got.map((g) => g.user)).toEqual(["alice", "alice"]);
      c.close();
      await stop();
    });

    test("broker → client: text when valid UTF-8, binary otherwise or when Ws-Frame says so, in publish order", async () => {
      const svc = `conf-${tag}`;
      const c = await bunClient(gw.ws, { Cookie: cookie(svc, "bob") });
      await waitFor("subscription on the server", async () => (await bp.subs(gw.nodeId, `ws.recv.${svc}.bob`)) === 1);
      await bp.publish(`ws.recv.${svc}.bob`, "plain ✓");
      await bp.publish(`ws.recv.${svc}.bob`, new Uint8Array([0xc3, 0x28]));
      await bp.publish(`ws.recv.${svc}.bob`, "forced binary", true);
      for (let i = 0; i < 200; i++) await bp.publish(`ws.recv.${svc}.bob`, `n${i}`);
      const got = await c.waitFor(203);
      expect(got[0]).toEqual({ data: "plain ✓", binary: false });
      expect(got[1]).toEqual({ data: new Uint8Array([0xc3, 0x28]), binary: true });
      expect(got[2]).toEqual({ data: new TextEncoder().encode("forced binary"), binary: true });
      expect(got.slice(3).map((m) => m.data)).toEqual(Array.from({ length: 200 }, (_, i) => `n${i}`));
      c.close();
    });

    test("one subscription per user: made on the first connection, kept while any remains, dropped with the last", async () => {
      const svc = `conf-${tag}`;
      const subject = `ws.recv.${svc}.carol`;
      const count = () => bp.subs(gw.nodeId, subject);
      const a = await bunClient(gw.ws, { Cookie: cookie(svc, "carol") });
      const b = await wsPackageClient(gw.ws, { Cookie: cookie(svc, "carol") });
      await waitFor("subscription", async () => (await count()) === 1);
      await bp.publish(subject, "to both");
      expect((await a.waitFor(1))[0].data).toBe("to both");
      expect((await b.waitFor(1))[0].data).toBe("to both");
      expect(await count()).toBe(1);
      a.close();
      await a.closed;
      await waitFor("a's close handled", async () => (await gw.metric("wsgate_connections")) === 1);
      // Sentinel: a later first connection's SUB leaves the gateway's broker link behind any
      // UNSUB that a's close caused; once the server holds it, that UNSUB would have landed.
      const mark = await bunClient(gw.ws, { Cookie: cookie(svc, "carol-mark") });
      await waitFor("the sentinel's subscription", async () => (await bp.subs(gw.nodeId, `ws.recv.${svc}.carol-mark`)) === 1);
      expect(await count()).toBe(1);
      mark.close();
      await waitFor("the sentinel gone", async () => (await gw.metric("wsgate_connections")) === 1);
      await bp.publish(subject, "only b");
      expect((await b.waitFor(2))[1].data).toBe("only b");
      b.close();
      await b.closed;
      await waitFor("unsubscribed", async () => (await count()) === 0);
      expect(await gw.metric("wsgate_users")).toBe(0);
    });

    test("POST /v1/publish/<svc>/<user> publishes to the user's subject", async () => {
      const next = await bp.next(`ws.recv.conf-${tag}.dave`);
      await next.started;
      const res = await fetch(`${gw.http}/v1/publish/conf-${tag}/dave`, { method: "POST", body: "via http" });
      expect(res.status).toBe(202);
      expect(dec.decode(await next.message)).toBe("via http");
      const bad = await fetch(`${gw.http}/v1/publish/conf-${tag}/da.ve`, { method: "POST", body: "x" });
      expect(bad.status).toBe(400);
      expect(await bad.text()).toContain("user must match");
    });

    test("the wscat CLI can talk to it (the websocat stand-in)", async () => {
      const svc = `conf-${tag}`;
      const frames = await bp.clientFrames(svc);
      const cli = Bun.spawn(["node_modules/.bin/wscat", "-c", gw.ws, "-H", `Cookie: ${cookie(svc, "erin")}`], {
        cwd: `${import.meta.dir}/..`,
        stdin: "pipe",
        stdout: "pipe",
        stderr: "pipe",
      });
      try {
        await waitFor("wscat connected", async () => (await bp.subs(gw.nodeId, `ws.recv.${svc}.erin`)) === 1, 10_000);
        cli.stdin.write("typed by a human\n");
        cli.stdin.flush();
        await waitFor("the typed line reached the service", () => frames.got.length >= 1);
        expect(dec.decode(frames.got[0].data)).toBe("typed by a human");
        await bp.publish(`ws.recv.${svc}.erin`, "answer for wscat");
        const reader = cli.stdout.getReader();
        let out = "";
        await waitFor("wscat printed the message", async () => {
          const { value } = await reader.read();
          out += dec.decode(value);
          return out.includes("answer for wscat");
        });
      } finally {
        cli.kill();
        await frames.stop();
      }
    });

    test("SIGTERM drains: clients get 1001, the process exits 0", async () => {
      const other = await startGateway(runtime, { env: { ...runtimeEnv, ...bp.env } });
      const c = await wsPackageClient(other.ws, { Cookie: cookie(`conf-${tag}`, "frank") });
      const code = await other.stop("SIGTERM");
      expect((await c.closed).code).toBe(1001);
      expect(code).toBe(0);
      expect(other.output()).toContain('"draining"');
    });
  });

  describe(`${label}: embedded broker (no NATS_URL)`, () => {
    let gw: Gateway;
    beforeAll(async () => {
      gw = await startGateway(runtime, { env: runtimeEnv });
    });
    afterAll(async () => {
      await gw?.stop("SIGKILL");
    });

    test("is ready with no NATS, and warns that identity is unauthenticated", async () => {
      expect((await fetch(`${gw.http}/readyz`)).status).toBe(200);
      expect(gw.output()).toContain("DEVELOPMENT MODE");
      expect(gw.output()).toContain("embedded");
    });

    test("publish API reaches every connection of the user and no one else", async () => {
      const a1 = await bunClient(gw.ws, { Cookie: cookie("s1", "u1") });
      const a2 = await wsPackageClient(`${gw.ws}/seed-path`, { Cookie: cookie("s1", "u1") });
      const b = await bunClient(gw.ws, { Cookie: cookie("s1", "u2") });
      for (let i = 0; i < 20; i++) {
        const r = await fetch(`${gw.http}/v1/publish/s1/u1`, { method: "POST", body: `m${i}` });
        expect(r.status).toBe(202);
      }
      await fetch(`${gw.http}/v1/publish/s1/u1`, { method: "POST", body: new Uint8Array([0xff, 0, 1]) });
      const want = Array.from({ length: 20 }, (_, i) => `m${i}`);
      expect((await a1.waitFor(21)).slice(0, 20).map((m) => m.data)).toEqual(want);
      expect((await a2.waitFor(21)).slice(0, 20).map((m) => m.data)).toEqual(want);
      expect(a1.received[20]).toEqual({ data: new Uint8Array([0xff, 0, 1]), binary: true });
      // Sentinel: a message for u2 published after u1's; anything of u1's that reached b came before it.
      await fetch(`${gw.http}/v1/publish/s1/u2`, { method: "POST", body: "for u2" });
      await b.waitFor(1);
      expect(b.received.map((m) => m.data)).toEqual(["for u2"]);
      expect(await gw.metric("wsgate_users")).toBe(2);
      expect(await gw.metric("wsgate_connections")).toBe(3);
      for (const c of [a1, a2, b]) c.close();
    });

    test("client frames are readable by a service as Server-Sent Events", async () => {
      const res = await fetch(`${gw.http}/v1/messages/svc-sse`);
      const reader = res.body!.getReader();
      let text = "";
      await waitFor("ready event", async () => {
        text += dec.decode((await reader.read()).value);
        return text.includes("event: ready");
      });
      const c = await bunClient(gw.ws, { Cookie: cookie("svc-sse", "zoe") });
      c.send("hi from zoe");
      await waitFor("message event", async () => {
        text += dec.decode((await reader.read()).value);
        return text.includes("hi from zoe");
      });
      const line = text.split("\n").find((l) => l.startsWith("data: {") && l.includes("zoe"))!;
      expect(JSON.parse(line.slice(6))).toMatchObject({ user: "zoe", frame: "text", data: "hi from zoe" });
      await reader.cancel();
      c.close();
    });
  });
}
