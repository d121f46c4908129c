// One node's groups: broker interest per group and per service, fan-out through topics,
// envelope frames naming the group, membership changes reaching open sockets, token claims.
import { expect, test } from "bun:test";
import { EmbeddedBroker } from "../../app/broker/embedded.ts";
import { LoopTopics } from "../../app/groups/fanout.ts";
import { Groups } from "../../app/groups/groups.ts";
import type { Member } from "../../app/groups/interest.ts";
import { MemoryMembershipStore } from "../../app/groups/store.ts";
import { groupSubjects } from "../../app/groups/subjects.ts";

type Sock = { name: string; got: (string | Uint8Array)[] };
type M = Member & { ws: Sock; svc: string; user: string };

function setup(opts: { maxBroadcastsPerSec?: number; textAsString?: boolean } = {}) {
  const open = new Set<M>();
  let groups: Groups | null = null;
  const broker = new EmbeddedBroker({
    deliver: (subject, data, hint) => void groups!.deliver(subject, data, hint),
    rewatchAll: () => {},
    onState: () => {},
  });
  const topics = new LoopTopics<Sock>((ws, data) => (ws.got.push(data), 1));
  groups = new Groups(
    {
      topics,
      textAsString: opts.textAsString ?? true,
      subjects: groupSubjects("ws"),
      maxBroadcastsPerSec: opts.maxBroadcastsPerSec ?? 0,
      store: (changed) => new MemoryMembershipStore({ maxGroupsPerUser: 0, maxGroupMembers: 0 }, changed),
    },
    {
      broker,
      eachConn: (svc, user, fn) => {
        for (const m of open) if (m.svc === svc && m.user === user) fn(m);
      },
      eachOfService: (svc, fn) => {
        for (const m of open) if (m.svc === svc) fn(m);
      },
    },
  );
  const g = groups;
  const connect = (svc: string, user: string, envelope = false, claims?: string[]) => {
    const m: M = { ws: { name: `${svc}.${user}`, got: [] }, envelope, svc, user };
    open.add(m);
    g.opened(m, svc, user, claims);
    return m;
  };
  const disconnect = (m: M) => {
    open.delete(m);
    g.closed(m, `${m.svc}.${m.user}`);
  };
  const interest = () => [...(broker as unknown as { interest: Map<string, number> }).interest.keys()].sort();
  const publish = (subject: string, text: string) => broker.publish(subject, new TextEncoder().encode(text));
  return { groups: g, broker, topics, connect, disconnect, interest, publish };
}

test("interest - a group is subscribed with its first member socket here and dropped with the last", async () => {
  const t = setup();
  await t.groups.store.add("s1", "room", "u1");
  await t.groups.store.add("s1", "room", "u2");
  expect(t.interest()).toEqual([]);
  const a = t.connect("s1", "u1");
  const b = t.connect("s1", "u2");
  expect(t.interest()).toEqual(["ws.bcast.s1", "ws.group.s1.room"]);
  t.disconnect(a);
  expect(t.interest()).toEqual(["ws.bcast.s1", "ws.group.s1.room"]);
  t.disconnect(b);
  expect(t.interest()).toEqual([]);
  expect(t.groups.stats.groupSubscriptions).toBe(0);
});

test("fan-out - raw sockets get the bare payload, envelope sockets a message frame naming the group", async () => {
  const t = setup();
  await t.groups.store.add("s1", "room", "u1");
  await t.groups.store.add("s1", "room", "u2");
  const raw = t.connect("s1", "u1");
  const env = t.connect("s1", "u2", true);
  const outsider = t.connect("s1", "u3");
  t.publish("ws.group.s1.room", "hi");
  expect(raw.ws.got).toEqual(["hi"]);
  expect(env.ws.got).toEqual(['{"type":"message","group":"room","data":"hi"}']);
  expect(outsider.ws.got).toEqual([]);
  expect(t.groups.stats.groupDeliveries).toBe(2);
});

test("fan-out - a binary group message reaches envelope sockets as base64", async () => {
  const t = setup();
  await t.groups.store.add("s1", "room", "u1");
  const env = t.connect("s1", "u1", true);
  t.broker.publish("ws.group.s1.room", new Uint8Array([0xff, 0x00]));
  expect(JSON.parse(env.ws.got[0] as string)).toEqual({ type: "message", group: "room", data: "/wA=", encoding: "base64" });
});

test("broadcast - reaches every socket of the service and none of another service", () => {
  const t = setup();
  const a = t.connect("s1", "u1");
  const b = t.connect("s1", "u2", true);
  const other = t.connect("s2", "u1");
  t.publish("ws.bcast.s1", "all");
  expect(a.ws.got).toEqual(["all"]);
  expect(b.ws.got).toEqual(['{"type":"message","broadcast":true,"data":"all"}']);
  expect(other.ws.got).toEqual([]);
});

test("broadcast - sockets join the service's topic only with its first broadcast here; later ones at open", () => {
  const t = setup();
  const a = t.connect("s1", "u1");
  const b = t.connect("s1", "u2", true);
  const other = t.connect("s2", "u1");
  expect(t.interest()).toEqual(["ws.bcast.s1", "ws.bcast.s2"]); // the broker subscription is there from the first socket
  expect(t.topics.size("b:s1:raw") + t.topics.size("b:s1:env")).toBe(0);
  t.publish("ws.bcast.s1", "first");
  expect([t.topics.size("b:s1:raw"), t.topics.size("b:s1:env"), t.topics.size("b:s2:raw")]).toEqual([1, 1, 0]);
  const late = t.connect("s1", "u3");
  expect(t.topics.size("b:s1:raw")).toBe(2);
  t.publish("ws.bcast.s1", "second");
  expect(a.ws.got).toEqual(["first", "second"]);
  expect(b.ws.got).toEqual(['{"type":"message","broadcast":true,"data":"first"}', '{"type":"message","broadcast":true,"data":"second"}']);
  expect(late.ws.got).toEqual(["second"]);
  expect(other.ws.got).toEqual([]);
  t.disconnect(a);
  t.disconnect(late);
  expect(t.topics.size("b:s1:raw")).toBe(0);
  t.disconnect(b);
  expect(t.interest()).toEqual(["ws.bcast.s2"]);
  // the service's last socket went with its slot: the next ones wait for a broadcast again
  const again = t.connect("s1", "u4");
  expect(t.topics.size("b:s1:raw")).toBe(0);
  t.publish("ws.bcast.s1", "third");
  expect(again.ws.got).toEqual(["third"]);
});

test("broadcast - a socket that left before the first broadcast is not joined by it", () => {
  const t = setup();
  const a = t.connect("s1", "u1");
  const gone = t.connect("s1", "u2");
  t.disconnect(gone);
  t.publish("ws.bcast.s1", "x");
  expect(a.ws.got).toEqual(["x"]);
  expect(gone.ws.got).toEqual([]);
  expect(t.topics.size("b:s1:raw")).toBe(1);
});

test("broadcast - past WSGATE_MAX_BROADCASTS_PER_SEC a node drops and counts, and the HTTP publish gets 429", () => {
  const t = setup({ maxBroadcastsPerSec: 3 });
  const a = t.connect("s1", "u1");
  for (let i = 0; i < 5; i++) t.publish("ws.bcast.s1", `m${i}`);
  expect(a.ws.got).toEqual(["m0", "m1", "m2"]);
  expect(t.groups.stats.broadcastsDropped).toBe(2);
  const results = [1, 2, 3, 4].map(() => t.groups.publishBroadcast("s2", new Uint8Array([1])));
  expect(results.map((r) => (r.ok ? 202 : r.status))).toEqual([202, 202, 202, 429]);
  const last = results[3];
  expect(!last.ok && last.error).toContain("WSGATE_MAX_BROADCASTS_PER_SEC");
});

test("membership - joining and leaving apply at once to the user's open sockets", async () => {
  const t = setup();
  const a = t.connect("s1", "u1");
  const a2 = t.connect("s1", "u1", true);
  await t.groups.store.add("s1", "room", "u1");
  expect(t.interest()).toContain("ws.group.s1.room");
  t.publish("ws.group.s1.room", "one");
  await t.groups.store.remove("s1", "room", "u1");
  t.publish("ws.group.s1.room", "two");
  expect(a.ws.got).toEqual(["one"]);
  expect(a2.ws.got).toEqual(['{"type":"message","group":"room","data":"one"}']);
  expect(t.interest()).not.toContain("ws.group.s1.room");
});

test("membership - a socket opened later joins the user's stored groups", async () => {
  const t = setup();
  await t.groups.store.add("s1", "room", "u1");
  const a = t.connect("s1", "u1");
  t.publish("ws.group.s1.room", "late");
  expect(a.ws.got).toEqual(["late"]);
});

test("claims - a token's groups join that socket only, for its lifetime, and survive a stored leave", async () => {
  const t = setup();
  const claimed = t.connect("s1", "u1", false, ["vip"]);
  const plain = t.connect("s1", "u1");
  t.publish("ws.group.s1.vip", "x");
  expect(claimed.ws.got).toEqual(["x"]);
  expect(plain.ws.got).toEqual([]);
  await t.groups.store.add("s1", "vip", "u1");
  await t.groups.store.remove("s1", "vip", "u1");
  t.publish("ws.group.s1.vip", "y");
  expect(claimed.ws.got).toEqual(["x", "y"]);
  t.disconnect(claimed);
  t.disconnect(plain);
  expect(t.interest()).toEqual([]);
});

test("order - group messages from one publisher arrive in publish order", async () => {
  const t = setup();
  await t.groups.store.add("s1", "room", "u1");
  const a = t.connect("s1", "u1");
  for (let i = 0; i < 100; i++) t.publish("ws.group.s1.room", String(i));
  expect(a.ws.got).toEqual(Array.from({ length: 100 }, (_, i) => String(i)));
});
