// Group membership in NATS mode: the key-value store against a real nats-server with
// JetStream, two stores standing for two gateway nodes.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { NatsBroker } from "../app/broker/nats.ts";
import { loadNatsLink } from "../app/broker/nats-link.ts";
import { KvMembershipStore } from "../app/groups/kv-store.ts";
import { loadConfig } from "../app/ops/config.ts";
import { MembershipRequests } from "../app/groups/requests.ts";
import { groupSubjects } from "../app/groups/subjects.ts";
import { type Nats, startNats, stopNatsAndClean, waitFor } from "./helpers/procs.ts";

let nats: Nats;
const conns: NatsConnection[] = [];
const CAPS = { maxGroupsPerUser: 3, maxGroupMembers: 50 };

beforeAll(async () => {
  nats = await startNats({ jetstream: true });
});

afterAll(async () => {
  for (const nc of conns) await nc.close().catch(() => {});
  if (nats) await stopNatsAndClean(nats);
});

async function node(bucket: string, caps = CAPS) {
  const nc = await connect({ servers: nats.url });
  conns.push(nc);
  const changes: string[] = [];
  const store = new KvMembershipStore({ bucket, replicas: 1 }, caps, (svc, user, joined, left) => {
    for (const g of joined) changes.push(`+${svc}.${g}.${user}`);
    for (const g of left) changes.push(`-${svc}.${g}.${user}`);
  });
  await store.open(nc);
  return { nc, store, changes };
}

test("kv store - a change made on one node reaches the other node's index and hooks at once", async () => {
  const a = await node("G1");
  const b = await node("G1");
  expect(await a.store.add("s1", "room", "u1")).toEqual({ ok: true, changed: true, groups: ["room"] });
  expect(a.store.index.members("s1", "room")).toEqual(["u1"]); // the writer reads its own write
  await waitFor("b learns the join", () => b.changes.includes("+s1.room.u1"));
  expect(b.store.index.groupsOf("s1", "u1")).toEqual(["room"]);
  await b.store.remove("s1", "room", "u1");
  await waitFor("a learns the leave", () => a.changes.includes("-s1.room.u1"));
  expect(a.store.index.members("s1", "room")).toEqual([]);
});

test("kv store - membership outlives the node: a new store reads every record at start", async () => {
  const a = await node("G2");
  await a.store.add("s1", "x", "u1");
  await a.store.add("s1", "y", "u1");
  await a.store.add("s2", "x", "u9");
  await a.store.close();
  const restarted = await node("G2");
  await waitFor("records loaded", () => restarted.store.index.members("s2", "x").length === 1);
  expect(restarted.store.index.groupsOf("s1", "u1")).toEqual(["x", "y"]);
});

test("kv store - concurrent joins of one user from two nodes all land, and the per-user cap holds exactly", async () => {
  const a = await node("G3");
  const b = await node("G3");
  const results = await Promise.all(["g1", "g2", "g3", "g4", "g5", "g6"].map((g, i) => (i % 2 ? a : b).store.add("s1", g, "u1")));
  expect(results.filter((r) => r.ok).length).toBe(3);
  const refused = results.filter((r) => !r.ok);
  expect(refused.length).toBe(3);
  for (const r of refused) expect(!r.ok && r.status).toBe(409);
  await waitFor("both indexes agree", () => a.store.index.groupsOf("s1", "u1").length === 3 && b.store.index.groupsOf("s1", "u1").length === 3);
});

test("kv store - a record that is not a list of ids reads as no groups", async () => {
  const a = await node("G4");
  await a.store.add("s1", "g", "u1");
  const { Kvm } = await import("@nats-io/kv");
  const kv = await new Kvm(a.nc).open("G4");
  await kv.put("s1.u1", "not json");
  await waitFor("bad record read as empty", () => a.store.index.groupsOf("s1", "u1").length === 0);
  expect(await a.store.add("s1", "h", "u1")).toMatchObject({ ok: true, groups: ["h"] });
});

test("nats requests - services change and read membership over <prefix>.groups.<op>, with the HTTP answers", async () => {
  const a = await node("G5");
  const broker = new NatsBroker(loadNatsLink(loadConfig({ NATS_URL: nats.url }).nats!), "wsgate groups", { deliver() {}, rewatchAll() {}, onState() {} });
  await broker.start();
  await waitFor("broker connected", () => broker.state() === "connected");
  const requests = new MembershipRequests(a.store, groupSubjects("ws"), broker);
  requests.start();
  const svc = await connect({ servers: nats.url });
  conns.push(svc);
  const ask = async (subject: string) => (await svc.request(subject, new Uint8Array(), { timeout: 5_000 })).json<Record<string, unknown>>();
  expect(await ask("ws.groups.add.s1.room.u1")).toMatchObject({ status: 200, member: true, changed: true });
  expect(await ask("ws.groups.members.s1.room")).toEqual({ status: 200, svc: "s1", group: "room", members: ["u1"] });
  expect(await ask("ws.groups.user.s1.u1")).toEqual({ status: 200, svc: "s1", user: "u1", groups: ["room"] });
  expect(await ask("ws.groups.remove.s1.room.u1")).toMatchObject({ status: 200, member: false, changed: true });
  expect(await ask("ws.groups.add.s1.room.u*")).toEqual({ status: 400, error: "user must match ^[A-Za-z0-9_-]{1,64}$" });
  expect(await ask("ws.groups.frobnicate.s1")).toMatchObject({ status: 404 });
  requests.close();
  await broker.close();
});

test("kv store - after nats-server restarts, the watch resumes: a later change still reaches the other node", async () => {
  const a = await node("G6");
  const b = await node("G6");
  await a.store.add("s1", "before", "u1");
  await waitFor("b learns the first join", () => b.changes.includes("+s1.before.u1"));
  await nats.stop();
  await nats.start();
  await waitFor("a can write again", async () => (await a.store.add("s1", "after", "u1")).ok, 30_000);
  await waitFor("b learns the join made after the restart", () => b.changes.includes("+s1.after.u1"), 30_000);
  expect(b.store.index.groupsOf("s1", "u1")).toEqual(["before", "after"]);
});
