// Limits on the hot paths, against the core with a recording transport and the embedded broker.
import { expect, test } from "bun:test";
import { EmbeddedBroker } from "../../app/broker/embedded.ts";
import { loadConfig } from "../../app/ops/config.ts";
import { createGateway } from "../../app/startup.ts";
import { Deadlines } from "../../app/core/deadlines.ts";
import type { Conn } from "../../app/core/conn.ts";
import type { Transport } from "../../app/core/transport.ts";
import { RateGate, takeMessage } from "../../app/core/limits.ts";
import { waitFor } from "../helpers/procs.ts";

type Sock = { sent: (string | Uint8Array)[]; closed?: number; reason?: string; terminated?: boolean; buffered: number };

async function setup(env: Record<string, string> = {}) {
  const transport: Transport<Sock> = {
    runtime: "bun",
    textAsString: true,
    send: (ws, data) => (ws.closed ? 0 : (ws.sent.push(data), ws.buffered > 0 ? -1 : 1)),
    close: (ws, code, reason) => {
      ws.closed ??= code;
      ws.reason ??= reason;
    },
    buffered: (ws) => ws.buffered,
    terminate: (ws) => void (ws.terminated = true),
  };
  const { gw } = createGateway(loadConfig({ WSGATE_LOG_LEVEL: "error", ...env }), transport);
  const broker = gw.broker as EmbeddedBroker;
  await broker.start();
  const connect = (svc: string, user: string, exp?: number) => {
    const conn = gw.admit({ svc, user, exp });
    if ("error" in conn) return conn;
    const ws: Sock = { sent: [], buffered: 0 };
    gw.open(conn, ws);
    return { conn, ws };
  };
  return { gw, broker, connect };
}

/** The embedded broker's interest table (what a NATS server would show as subscriptions). */
function hasInterest(broker: EmbeddedBroker, subject: string): boolean {
  return (broker as unknown as { interest: Map<string, number> }).interest.has(subject);
}

function connOf(x: unknown) {
  return x as { conn: Conn; ws: Sock };
}

test("token bucket: a burst, then the refill rate per second, in two integer fields", () => {
  const conn = { budget: 5, budgetAt: 0 } as Conn;
  let ok = 0;
  for (let i = 0; i < 20; i++) if (takeMessage(conn, 3, 5, 0)) ok++;
  expect(ok).toBe(5);
  expect(takeMessage(conn, 3, 5, 1)).toBe(true);
  ok = 1;
  for (let i = 0; i < 20; i++) if (takeMessage(conn, 3, 5, 1)) ok++;
  expect(ok).toBe(3);
  // A long pause refills only up to the burst.
  ok = 0;
  for (let i = 0; i < 20; i++) if (takeMessage(conn, 3, 5, 100)) ok++;
  expect(ok).toBe(5);
  expect(Number.isInteger(conn.budget) && Number.isInteger(conn.budgetAt)).toBe(true);
  const unlimited = { budget: 0, budgetAt: 0 } as Conn;
  for (let i = 0; i < 1000; i++) expect(takeMessage(unlimited, 0, 1, 0)).toBe(true);
});

test("upgrade gate: at most the rate at once, then refuses", () => {
  const gate = new RateGate(10);
  let ok = 0;
  for (let i = 0; i < 100; i++) if (gate.take()) ok++;
  expect(ok).toBe(10);
  const open = new RateGate(0);
  for (let i = 0; i < 100; i++) expect(open.take()).toBe(true);
});

test("deadlines: O(1) removal keeps every other connection's slot right", () => {
  const d = new Deadlines(() => {});
  const conns = Array.from({ length: 6 }, (_, i) => ({ id: i, tick: 0, slot: -1 }) as Conn);
  for (const c of conns) d.set(c, 5);
  d.clear(conns[1]);
  d.clear(conns[4]);
  expect(d.pending()).toBe(4);
  for (const c of [conns[0], conns[2], conns[3], conns[5]]) {
    d.clear(c);
    expect(c.slot).toBe(-1);
  }
  expect(d.pending()).toBe(0);
  d.set(conns[0], 3);
  d.set(conns[0], 7); // moving a deadline leaves nothing behind
  expect(d.pending()).toBe(1);
  d.clear(conns[0]);
  d.stop();
});

test("a flood closes the connection with 4003, counts it once, and publishes only the burst", async () => {
  const { gw, broker, connect } = await setup({ WSGATE_MAX_MSGS_PER_SEC: "10", WSGATE_MSG_BURST: "10" });
  const seen: string[] = [];
  broker.tap("ws.send.", (s) => seen.push(s));
  const a = connOf(connect("s", "flood"));
  for (let i = 0; i < 100; i++) gw.message(a.conn, `m${i}`, false);
  expect(a.ws.closed).toBe(4003);
  expect(a.ws.reason).toBe("message rate over limit");
  expect(seen.length).toBe(10);
  expect(gw.metrics.rateLimited).toBe(1);
  gw.deadlines.stop();
});

test("connections per user: refused at admission with 429, and at open when upgrades raced", async () => {
  const { gw, connect } = await setup({ WSGATE_MAX_CONNS_PER_USER: "2" });
  connect("s", "u");
  connect("s", "u");
  expect(connect("s", "u")).toMatchObject({ status: 429, reason: "user_full" });
  expect(connect("s", "other")).toHaveProperty("conn");
  // Two upgrades admitted before either opened.
  const { gw: gw2 } = await setup({ WSGATE_MAX_CONNS_PER_USER: "1" });
  const x = gw2.admit({ svc: "s", user: "r" }) as Conn;
  const y = gw2.admit({ svc: "s", user: "r" }) as Conn;
  const wx: Sock = { sent: [], buffered: 0 };
  const wy: Sock = { sent: [], buffered: 0 };
  gw2.open(x, wx);
  gw2.open(y, wy);
  expect(wx.closed).toBeUndefined();
  expect(wy.closed).toBe(4100);
  expect(gw2.metrics.connections).toBe(1);
  expect(gw.metrics.refused.user_full).toBe(1);
});

test("a reader over the buffer limit is closed with 4002, its user's interest released, then cut after the grace", async () => {
  const { gw, broker, connect } = await setup({ WSGATE_MAX_BUFFERED_BYTES: String(64 * 1024) });
  const slow = connOf(connect("s", "slow"));
  const peer = connOf(connect("s", "peer"));
  broker.publish("ws.recv.s.slow", new TextEncoder().encode("one"));
  expect(slow.ws.sent.length).toBe(1);
  slow.ws.buffered = 64 * 1024 + 1; // the runtime now holds more than the limit for this socket
  broker.publish("ws.recv.s.slow", new TextEncoder().encode("two"));
  expect(slow.ws.closed).toBe(4002);
  expect(gw.metrics.slowConsumers).toBe(1);
  // Nothing more is read from the broker for a user whose sockets are all closing.
  expect(hasInterest(broker, "ws.recv.s.slow")).toBe(false);
  broker.publish("ws.recv.s.slow", new TextEncoder().encode("three"));
  expect(slow.ws.sent.length).toBe(2);
  broker.publish("ws.recv.s.peer", new TextEncoder().encode("unaffected"));
  expect(peer.ws.sent).toEqual(["unaffected"]);
  // A new socket of that user brings the interest back.
  const again = connOf(connect("s", "slow"));
  broker.publish("ws.recv.s.slow", new TextEncoder().encode("four"));
  expect(again.ws.sent).toEqual(["four"]);
  // The peer never finished the close: it is cut after the grace period.
  await waitFor("slow socket cut", () => slow.ws.terminated, 5_000, 100);
  expect(gw.metrics.closeTimeouts).toBe(1);
  gw.close(slow.conn);
  expect(hasInterest(broker, "ws.recv.s.slow")).toBe(true);
  gw.close(again.conn);
  expect(hasInterest(broker, "ws.recv.s.slow")).toBe(false);
  gw.deadlines.stop();
});

test("a token's exp closes the connection with 4001 when it passes", async () => {
  const { gw, connect } = await setup({ WSGATE_JWT_LEEWAY_S: "0" });
  const a = connOf(connect("s", "exp", Math.floor(Date.now() / 1000) + 1));
  const b = connOf(connect("s", "noexp"));
  await waitFor("token expiry", () => a.ws.closed === 4001, 5_000, 50);
  expect(a.ws.reason).toBe("token expired");
  expect(b.ws.closed).toBeUndefined();
  expect(gw.metrics.tokenExpired).toBe(1);
  gw.close(a.conn);
  expect(gw.deadlines.pending()).toBe(0);
  gw.deadlines.stop();
});
