// Request/reply bookkeeping in the core, against the embedded broker and a recording
// transport: who is asked, the per-connection bounds, timeouts, and what is left behind.
import { expect, test } from "bun:test";
import { EmbeddedBroker } from "../../app/broker/embedded.ts";
import { loadConfig } from "../../app/ops/config.ts";
import { createGateway } from "../../app/startup.ts";
import type { Conn } from "../../app/core/conn.ts";
import type { Transport } from "../../app/core/transport.ts";
import { waitFor } from "../helpers/procs.ts";

type Sock = { sent: string[]; closed?: number };

async function setup(env: Record<string, string> = {}) {
  const transport: Transport<Sock> = {
    runtime: "bun",
    textAsString: true,
    send: (ws, data) => (ws.closed ? 0 : (ws.sent.push(data as string), 1)),
    close: (ws, code) => void (ws.closed = code),
  };
  const { gw } = createGateway(loadConfig({ WSGATE_LOG_LEVEL: "error", ...env }), transport);
  await gw.broker.start();
  const open = (user: string, envelope: boolean) => {
    const conn = gw.admit({ svc: "s", user }, envelope) as Conn;
    const ws: Sock = { sent: [] };
    gw.open(conn, ws);
    return { conn, ws, frames: () => ws.sent.map((f) => JSON.parse(f)) };
  };
  type Maps = { watches: Map<string, unknown>; links: Map<Conn, unknown>; pending: Map<string, unknown>; calls: Map<string, unknown> };
  const rpc = gw.rpc as unknown as { requests: Maps; calls: Maps };
  const internals = { watches: rpc.requests.watches, links: rpc.requests.links, pending: rpc.requests.pending, calls: rpc.calls.calls };
  return { gw, open, internals };
}

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

test("raw connections hold no request interest; envelope ones hold one per user, dropped with the last", async () => {
  const { gw, open, internals } = await setup();
  const raw = open("u1", false);
  expect(internals.watches.size).toBe(0);
  expect(await gw.rpc.requestUser("s", "u1", bytes("?"), undefined, 1_000)).toMatchObject({ ok: false, code: "no_responders" });
  const a = open("u1", true);
  const b = open("u1", true);
  expect(internals.watches.size).toBe(1);
  gw.close(a.conn);
  expect(internals.watches.size).toBe(1);
  gw.close(b.conn);
  expect(internals.watches.size).toBe(0);
  gw.close(raw.conn);
  // A raw frame never reaches the envelope parser.
  const r = open("u2", false);
  gw.message(r.conn, "not json", false);
  expect(r.ws.sent).toEqual([]);
  expect(gw.metrics.envelopeErrors).toBe(0);
});

test("requests take turns over a user's envelope sockets and leave nothing behind once answered", async () => {
  const { gw, open, internals } = await setup();
  const a = open("u", true);
  const b = open("u", true);
  const answers = [0, 1, 2, 3].map((i) => gw.rpc.requestUser("s", "u", bytes(`q${i}`), undefined, 1_000));
  await Promise.resolve();
  await Promise.resolve();
  const ra = a.frames().filter((f) => f.type === "request");
  const rb = b.frames().filter((f) => f.type === "request");
  expect(ra.length).toBe(2);
  expect(rb.length).toBe(2);
  for (const [s, reqs] of [[a, ra], [b, rb]] as const) {
    for (const r of reqs) gw.message(s.conn, JSON.stringify({ type: "reply", id: r.id, data: `re:${r.data}` }), false);
  }
  const got = await Promise.all(answers);
  expect(got.map((x) => (x.ok ? text(x.data) : x.code)).sort()).toEqual(["re:q0", "re:q1", "re:q2", "re:q3"]);
  expect(internals.links.size).toBe(0);
  expect(internals.pending.size).toBe(0);
  expect(internals.calls.size).toBe(0);
  expect(gw.metrics.rpcPending).toBe(0);
  expect(gw.metrics.requests.answered).toBe(4);
});

test("pending requests are bounded per connection; past it the requester hears `overloaded` at once", async () => {
  const { gw, open } = await setup({ WSGATE_MAX_REQUESTS_PER_CONN: "2" });
  const a = open("u", true);
  const first = [gw.rpc.requestUser("s", "u", bytes("1"), undefined, 5_000), gw.rpc.requestUser("s", "u", bytes("2"), undefined, 5_000)];
  const third = await gw.rpc.requestUser("s", "u", bytes("3"), undefined, 5_000);
  expect(third).toMatchObject({ ok: false, code: "overloaded" });
  const reqs = a.frames().filter((f) => f.type === "request");
  expect(reqs.length).toBe(2);
  gw.message(a.conn, JSON.stringify({ type: "reply", id: reqs[0].id, data: "one" }), false);
  gw.message(a.conn, JSON.stringify({ type: "error", id: reqs[1].id, code: "busy", message: "later" }), false);
  const [r1, r2] = await Promise.all(first);
  expect(r1.ok && text(r1.data)).toBe("one");
  expect(r2).toEqual({ ok: false, code: "busy", message: "later" });
});

test("timeouts are swept without a timer per request; late replies are dropped; a close fails what is pending", async () => {
  const { gw, open, internals } = await setup();
  const a = open("u", true);
  const t0 = performance.now();
  const expired = await gw.rpc.requestUser("s", "u", bytes("slow"), undefined, 60);
  expect(expired).toMatchObject({ ok: false, code: "timeout" });
  expect(performance.now() - t0).toBeGreaterThanOrEqual(55);
  // The gateway's own copy of the request expires with its requester's: the sweep drops it.
  await waitFor("the expired request swept", () => internals.pending.size === 0 && internals.links.size === 0);
  const id = a.frames().find((f) => f.type === "request").id;
  gw.message(a.conn, JSON.stringify({ type: "reply", id, data: "too late" }), false);
  expect(gw.metrics.requests.answered).toBe(0);

  const waiting = gw.rpc.requestUser("s", "u", bytes("x"), undefined, 5_000);
  await Promise.resolve();
  await Promise.resolve();
  gw.close(a.conn);
  expect(await waiting).toMatchObject({ ok: false, code: "connection_closed" });
  expect(internals.links.size).toBe(0);
  expect(gw.metrics.rpcPending).toBe(0);
});

test("a reply is only taken from the socket the request went to", async () => {
  const { gw, open } = await setup();
  const a = open("u", true);
  const other = open("v", true);
  const answer = gw.rpc.requestUser("s", "u", bytes("x"), undefined, 200);
  await Promise.resolve();
  await Promise.resolve();
  const id = a.frames().find((f) => f.type === "request").id;
  gw.message(other.conn, JSON.stringify({ type: "reply", id, data: "forged" }), false);
  gw.message(a.conn, JSON.stringify({ type: "reply", id, data: "real" }), false);
  const r = await answer;
  expect(r.ok && text(r.data)).toBe("real");
});
