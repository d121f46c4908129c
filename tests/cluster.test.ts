// The cluster modules over a real nats-server: three nodes, each with its own NATS
// connection, and a service that speaks only NATS (presence, disconnect, send, events).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { NatsBroker } from "../app/broker/nats.ts";
import { loadNatsLink } from "../app/broker/nats-link.ts";
import { loadConfig } from "../app/ops/config.ts";
import { FakeNode } from "./cluster-fake.ts";
import { type Nats, startNats, stopNatsAndClean, waitFor } from "./helpers/procs.ts";

let nats: Nats;
let svc: NatsConnection;
const nodes: { node: FakeNode; broker: NatsBroker }[] = [];
const events: Record<string, unknown>[] = [];
const enc = new TextEncoder();
const dec = new TextDecoder();

async function node(id: string) {
  const n = new FakeNode(id);
  const broker = new NatsBroker(loadNatsLink(loadConfig({ NATS_URL: nats.url }).nats!), `wsgate ${id}`, { deliver() {}, rewatchAll() {}, onState() {} });
  await broker.start();
  n.join(broker, { timing: { intervalMs: 100, missed: 3 } });
  await waitFor(`${id} connected`, () => broker.state() === "connected");
  nodes.push({ node: n, broker });
  return n;
}

async function ask(subject: string, body = "", h?: Record<string, string>) {
  let hdrs;
  if (h) {
    hdrs = headers();
    for (const k in h) hdrs.set(k, h[k]);
  }
  const m = await svc.request(subject, enc.encode(body), { timeout: 3_000, headers: hdrs });
  return JSON.parse(dec.decode(m.data));
}

beforeAll(async () => {
  nats = await startNats();
  svc = await connect({ servers: nats.url });
  svc.subscribe("ws.events.>", { callback: (_e, m) => void events.push(JSON.parse(dec.decode(m.data))) });
  await svc.flush();
  await Promise.all(["na", "nb", "nc"].map(node));
  await waitFor("three live nodes everywhere", () => nodes.every((n) => n.node.cluster.members.live().length === 3));
});

afterAll(async () => {
  for (const { node, broker } of nodes) {
    node.cluster.leave();
    await broker.close();
  }
  await svc?.close();
  if (nats) await stopNatsAndClean(nats);
});

test("nats - presence over request/reply lists one user's sockets on two nodes", async () => {
  const [a, b] = nodes.map((n) => n.node);
  const ca = a.open("chat", "alice");
  const cb = b.open("chat", "alice", true);
  const p = await ask("ws.api.presence.chat.alice");
  expect(p.online).toBe(true);
  expect(p.missing).toEqual([]);
  expect(p.connections.map((c: { conn: string }) => c.conn).sort()).toEqual([ca.id, cb.id].sort());
  const s = await ask("ws.api.presence.chat", JSON.stringify({ limit: 10 }));
  expect(s).toMatchObject({ svc: "chat", users: 2, connections: 2, list: ["alice"], next: null });
  expect(await ask("ws.api.presence.chat", JSON.stringify({ limit: 5000 }))).toEqual({ error: "limit must be at most 1000", status: 400 });
  expect((await ask("ws.api.presence.chat.a*b")).status).toBe(400);
  a.drop(ca);
  b.drop(cb);
});

test("nats - events: connect, one online across two nodes, disconnect, one offline after the last socket", async () => {
  const [a, b] = nodes.map((n) => n.node);
  const ca = a.open("ev", "bob");
  await waitFor("online", () => events.some((e) => e.event === "online" && e.user === "bob"));
  const cb = b.open("ev", "bob");
  await b.cluster.settled();
  a.drop(ca, 1001, "node draining", "drain");
  await a.cluster.settled();
  b.drop(cb, 4101, "disconnected by the service", "service");
  await waitFor("offline", () => events.some((e) => e.event === "offline" && e.user === "bob"));
  const mine = events.filter((e) => e.user === "bob");
  expect(mine.map((e) => e.event)).toEqual(["connect", "online", "connect", "disconnect", "disconnect", "offline"]);
  expect(mine[3]).toMatchObject({ conn: ca.id, node: "na", closedBy: "drain", code: 1001 });
  expect(mine[4]).toMatchObject({ conn: cb.id, node: "nb", closedBy: "service", code: 4101 });
});

test("nats - disconnect over request/reply closes every socket of the user, or one; an unknown one is 404", async () => {
  const [a, b, c] = nodes.map((n) => n.node);
  const s1 = a.open("ctl", "carol");
  const s2 = b.open("ctl", "carol");
  const s3 = c.open("ctl", "carol");
  expect(await ask(`ws.api.disconnect.ctl.carol.${s3.id}`, JSON.stringify({ mode: "reconnect" }))).toEqual({ closed: 1, missing: [] });
  expect(s3.closedWith?.code).toBe(4004);
  expect(await ask(`ws.api.disconnect.ctl.carol.${s3.id}`)).toMatchObject({ status: 404 });
  expect(await ask("ws.api.disconnect.ctl.carol", JSON.stringify({ mode: "terminal" }))).toEqual({ closed: 2, missing: [] });
  expect([s1.closedWith?.code, s2.closedWith?.code]).toEqual([4101, 4101]);
  expect(await ask("ws.api.disconnect.ctl.carol", JSON.stringify({ mode: "later" }))).toEqual({ error: "mode must be terminal or reconnect", status: 400 });
});

test("nats - a send to one connection reaches that socket only, and 404 once it is gone", async () => {
  const [a, b] = nodes.map((n) => n.node);
  const t1 = a.open("tab", "dave");
  const t2 = b.open("tab", "dave");
  expect(await ask(`ws.api.sendto.tab.dave.${t2.id}`, "for tab 2", { "Ws-Frame": "text" })).toEqual({ sent: true });
  expect(t2.got).toEqual([{ data: "for tab 2", hint: "text" }]);
  expect(t1.got).toEqual([]);
  b.drop(t2);
  expect(await ask(`ws.api.sendto.tab.dave.${t2.id}`, "late")).toMatchObject({ status: 404 });
  a.drop(t1);
});

test("nats - a node whose connection dies leaves the set within the bound; presence keeps answering", async () => {
  const [a, , c] = nodes.map((n) => n.node);
  const gone = nodes[1];
  gone.node.open("live", "erin");
  a.open("live", "erin");
  await waitFor("nb counted", () => a.cluster.members.nodes().find((n) => n.node === "nb")?.connections === 1);
  // as after kill -9: no goodbye, the broker connection just ends
  (gone.node.cluster as unknown as { members: { stop(): void } }).members.stop();
  await gone.broker.close();
  const t0 = Date.now();
  const during = await ask("ws.api.presence.live.erin");
  expect(during.online).toBe(true);
  await waitFor("nb dropped", () => !a.cluster.members.isLive("nb") && !c.cluster.members.isLive("nb"), 5_000);
  expect(Date.now() - t0).toBeLessThan(a.cluster.members.downAfterMs + 1_000);
  await waitFor("node-down", () => events.some((e) => e.event === "node-down" && e.node === "nb"));
  const after = await ask("ws.api.presence.live.erin");
  expect(after.connections.map((x: { node: string }) => x.node)).toEqual(["na"]);
  expect(after.missing).toEqual([]);
  nodes.splice(1, 1);
});
