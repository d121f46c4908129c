// The gateway as the cluster sees it: a real Gateway over a fake transport and the embedded
// broker, its events, its presence answers and the closes a service asks for.
import { expect, test } from "bun:test";
import type { EmbeddedBroker } from "../../app/broker/embedded.ts";
import type { Conn } from "../../app/core/conn.ts";
import type { Transport } from "../../app/core/transport.ts";
import { loadConfig } from "../../app/ops/config.ts";
import { createGateway } from "../../app/startup.ts";
import { waitFor } from "../helpers/procs.ts";

type Sock = { got: (string | Uint8Array)[]; closed: { code: number; reason: string } | null };

async function gateway(env: Record<string, string> = {}) {
  const transport: Transport<Sock> = {
    runtime: "bun",
    textAsString: true,
    send: (ws, data) => (ws.got.push(data), 1),
    close: (ws, code, reason) => void (ws.closed ??= { code, reason }),
  };
  const { gw } = createGateway(loadConfig({ WSGATE_LOG_LEVEL: "error", WSGATE_NODE_ID: "g1", ...env }), transport);
  const broker = gw.broker as EmbeddedBroker;
  await broker.start();
  const events: Record<string, unknown>[] = [];
  broker.tap("ws.events.", (_s, d) => events.push(JSON.parse(new TextDecoder().decode(d))));
  const open = (user: string, envelope = false) => {
    const conn = gw.admit({ svc: "s", user }, envelope) as Conn;
    const ws: Sock = { got: [], closed: null };
    gw.open(conn, ws);
    return { conn, ws };
  };
  /** the runtime reports the close back, as the adapters do */
  const closed = (c: { conn: Conn; ws: Sock }) => gw.close(c.conn, c.ws.closed?.code ?? 1000, c.ws.closed?.reason ?? "");
  return { gw, events, open, closed };
}

test("gateway events - ids, counters and who closed: client, limit, service, drain", async () => {
  const { gw, events, open, closed } = await gateway({ WSGATE_MAX_MSGS_PER_SEC: "1", WSGATE_MSG_BURST: "1" });
  const a = open("a");
  gw.message(a.conn, "one", false);
  gw.deliver("ws.recv.s.a", new TextEncoder().encode("down"), undefined, 0, 0);
  closed(a);
  const b = open("b");
  gw.message(b.conn, "one", false);
  gw.message(b.conn, "two", false); // over the rate: closed by the gateway
  closed(b);
  const c = open("c");
  expect((await gw.cluster!.control.disconnect("s", "c", null, "terminal")).closed).toBe(1);
  closed(c);
  const d = open("d");
  const drained = gw.shutdown();
  closed(d);
  await drained;
  await waitFor("four disconnects", () => events.filter((e) => e.event === "disconnect").length === 4);
  // each user's events are in order; different users' need not be
  const gone = events.filter((e) => e.event === "disconnect").sort((x, y) => String(x.user).localeCompare(String(y.user)));
  expect(gone.map((e) => [e.user, e.closedBy, e.code])).toEqual([
    ["a", "client", 1000],
    ["b", "limit", 4003],
    ["c", "service", 4101],
    ["d", "drain", 1001],
  ]);
  expect(gone[0]).toMatchObject({ conn: `g1.${a.conn.id}`, node: "g1", framesIn: 1, framesOut: 1 });
  await waitFor("every offline", () => events.filter((e) => e.event === "offline").length === 4);
  gw.deadlines.stop();
});

test("gateway presence - an envelope socket says hello first and is listed with its id and mode", async () => {
  const { gw, open } = await gateway();
  const e = open("u", true);
  const r = open("u");
  expect(JSON.parse(e.ws.got[0] as string)).toEqual({ type: "hello", conn: `g1.${e.conn.id}`, node: "g1" });
  expect(r.ws.got).toEqual([]); // raw sockets get no frame of the gateway's own
  const p = await gw.cluster!.presence.user("s", "u");
  expect(p.connections.map((c) => [c.conn, c.mode])).toEqual([
    [`g1.${e.conn.id}`, "envelope"],
    [`g1.${r.conn.id}`, "raw"],
  ]);
  expect(Math.abs(Date.parse(p.connections[0].since) - Date.now())).toBeLessThan(5_000);
  expect(await gw.cluster!.control.send("s", "u", `g1.${r.conn.id}`, new TextEncoder().encode("only raw"), undefined)).toBe(true);
  expect(r.ws.got).toEqual(["only raw"]);
  expect(e.ws.got.length).toBe(1);
  expect(await gw.cluster!.presence.service("s", "", 10)).toMatchObject({ users: 1, connections: 2, list: ["u"] });
  gw.deadlines.stop();
});
