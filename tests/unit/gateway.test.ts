// The core against a recording transport and the embedded broker: fan-out, lifecycle,
// limits, without any runtime in between.
import { expect, test } from "bun:test";
import { EmbeddedBroker } from "../../app/broker/embedded.ts";
import { loadConfig } from "../../app/ops/config.ts";
import { createGateway } from "../../app/startup.ts";
import type { Conn } from "../../app/core/conn.ts";
import type { Gateway } from "../../app/core/gateway.ts";
import type { Transport } from "../../app/core/transport.ts";
import { Users } from "../../app/core/users.ts";

type Sock = { sent: (string | Uint8Array)[]; closed?: number };

function setup(env: Record<string, string> = {}) {
  const transport: Transport<Sock> = {
    runtime: "bun",
    textAsString: true,
    send: (ws, data) => (ws.closed ? 0 : (ws.sent.push(data), 1)),
    close: (ws, code) => void (ws.closed = code),
  };
  const { gw } = createGateway(loadConfig({ WSGATE_LOG_LEVEL: "error", ...env }), transport);
  const broker = gw.broker as EmbeddedBroker;
  return { gw, broker };
}

async function connectAs(gw: Gateway, svc: string, user: string) {
  const conn = gw.admit({ svc, user }) as Conn;
  const ws: Sock = { sent: [] };
  gw.open(conn, ws);
  return { conn, ws };
}

test("fans a user's message out to each of the user's sockets only", async () => {
  const { gw, broker } = setup();
  await broker.start();
  const a = await connectAs(gw, "s", "u1");
  const b = await connectAs(gw, "s", "u1");
  const c = await connectAs(gw, "s", "u2");
  broker.publish("ws.recv.s.u1", new TextEncoder().encode("hi"));
  expect(a.ws.sent).toEqual(["hi"]);
  expect(b.ws.sent).toEqual(["hi"]);
  expect(c.ws.sent).toEqual([]);
  expect(gw.metrics.users).toBe(2);
  gw.close(a.conn);
  gw.close(b.conn);
  expect(gw.metrics.users).toBe(1);
  expect(gw.metrics.connections).toBe(1);
});

test("users - renewed keys find the same entries, in the same order, and each is handed on once", async () => {
  const users = new Users((svc, user) => `ws.recv.${svc}.${user}`);
  const conn = {} as Conn;
  for (const u of ["a", "b", "c"]) users.add({ key: `ws.recv.s.${u}`, conns: conn, handle: u, lastSeq: -1, safeSeq: 0, held: null });
  const before = [...users.values()];
  const handed: unknown[] = [];
  users.renewKeys((e) => handed.push(e.handle));
  expect(handed).toEqual(["a", "b", "c"]);
  expect([...users.values()]).toEqual(before);
  expect(users.get("ws.recv.s.b")).toBe(before[1]);
  expect(users.svcUser(before[2])).toBe("s.c");
});

test("refuses upgrades before the broker ever connected", () => {
  const { gw } = setup();
  expect(gw.admit({ svc: "s", user: "u" })).toMatchObject({ status: 503, reason: "broker_down" });
});

test("closes an oversized client frame with 1009 and publishes nothing", async () => {
  const { gw, broker } = setup({ WSGATE_MAX_MESSAGE_BYTES: "16" });
  await broker.start();
  const seen: Uint8Array[] = [];
  broker.tap("ws.send.", (_s, d) => seen.push(d));
  const a = await connectAs(gw, "s", "u");
  gw.message(a.conn, "x".repeat(17), false);
  expect(a.ws.closed).toBe(1009);
  expect(seen.length).toBe(0);
  // Once closing, the socket's later frames are not published either.
  gw.message(a.conn, "small", false);
  expect(seen.length).toBe(0);
  const b = await connectAs(gw, "s", "u");
  gw.message(b.conn, "small", false);
  expect(seen.length).toBe(1);
});

test("a frame the runtime cut for size counts as too large by its close code 1009, never by reason text", async () => {
  const { gw, broker } = setup();
  await broker.start();
  const cut = await connectAs(gw, "s", "u1");
  gw.close(cut.conn, 1009, "");
  expect(gw.metrics.tooLarge).toBe(1);
  const dropped = await connectAs(gw, "s", "u2");
  gw.close(dropped.conn, 1006, "Received too big message");
  expect(gw.metrics.tooLarge).toBe(1);
  expect(gw.metrics.connections).toBe(0);
});

test("a full node opens then closes the socket with 1013", async () => {
  const { gw, broker } = setup({ WSGATE_MAX_CONNECTIONS: "1" });
  await broker.start();
  await connectAs(gw, "s", "u1");
  const second = await connectAs(gw, "s", "u2");
  expect(second.ws.closed).toBe(1013);
  expect(gw.metrics.refused.node_full).toBe(1);
  expect(gw.metrics.connections).toBe(1);
});
