// The cluster modules, several nodes in one process over one embedded broker.
import { afterEach, describe, expect, test } from "bun:test";
import { EmbeddedBroker } from "../../app/broker/embedded.ts";
import { FakeNode } from "../cluster-fake.ts";
import { waitFor } from "../helpers/procs.ts";

const noop = () => {};
let nodes: FakeNode[] = [];

function bus() {
  const broker = new EmbeddedBroker({ deliver: noop, rewatchAll: noop, onState: noop });
  const events: Record<string, unknown>[] = [];
  broker.tap("ws.events.", (_s, data) => events.push(JSON.parse(new TextDecoder().decode(data))));
  return { broker, events };
}

function start(broker: EmbeddedBroker, ...ids: string[]): FakeNode[] {
  const made = ids.map((id) => new FakeNode(id));
  for (const n of made) n.join(broker);
  nodes.push(...made);
  return made;
}

/**
 * Resolves once `node` has announced itself `n` times after `since` (epoch ms). A node publishes
 * in order, and its membership loop announces at the start of a tick: whatever the node
 * published in an earlier tick (a node-down event) came before that announce.
 */
async function announced(broker: EmbeddedBroker, node: string, since: number, n = 1) {
  let heard = 0;
  const stop = broker.listen("ws.nodes.announce", (_s, data) => {
    const a = JSON.parse(new TextDecoder().decode(data)) as { node: string; at: number };
    if (a.node === node && a.at > since) heard++;
  });
  try {
    await waitFor(`${n} announces of ${node}`, () => heard >= n);
  } finally {
    stop();
  }
}

const allSee = (ns: FakeNode[], count: number) => waitFor(`every node sees ${count}`, () => ns.every((n) => n.cluster.members.live().length === count));

afterEach(() => {
  for (const n of nodes) n.cluster.leave();
  nodes = [];
});

describe("membership", () => {
  test("membership - three nodes learn the whole set from announces", async () => {
    const { broker } = bus();
    const ns = start(broker, "a", "b", "c");
    await allSee(ns, 3);
    expect(ns[2].cluster.members.live()).toEqual(["a", "b", "c"]);
    expect(ns[0].cluster.members.nodes().map((n) => n.node)).toEqual(["a", "b", "c"]);
  });

  test("membership - a silent node drops out within the bound and exactly one node-down event is published", async () => {
    const { broker, events } = bus();
    const ns = start(broker, "a", "b", "c");
    ns[1].open("s", "u1");
    await allSee(ns, 3);
    await waitFor("b's counts announced", () => ns[0].cluster.members.nodes().find((n) => n.node === "b")?.connections === 1);
    // b stops answering and announcing, as after kill -9: no goodbye
    const b = ns[1].cluster as unknown as { members: { stop(): void }; scatter: { stop(): void } };
    b.members.stop();
    b.scatter.stop();
    const t0 = Date.now();
    await waitFor("b dropped by a and c", () => !ns[0].cluster.members.isLive("b") && !ns[2].cluster.members.isLive("b"));
    expect(Date.now() - t0).toBeLessThan(ns[0].cluster.members.downAfterMs + 1_000);
    await waitFor("node-down event", () => events.some((e) => e.event === "node-down"));
    // Sentinel: a and c each drop b in one tick and publish (or not) in it; an announce of each
    // from a later tick comes after anything that tick published.
    const since = Date.now();
    await Promise.all([announced(broker, "a", since), announced(broker, "c", since)]);
    const down = events.filter((e) => e.event === "node-down");
    expect(down.length).toBe(1);
    expect(down[0]).toMatchObject({ node: "b", connections: 1, users: 1, reportedBy: "a" });
  });

  test("membership - a node that leaves with a goodbye is dropped at once without a node-down event", async () => {
    const { broker, events } = bus();
    const ns = start(broker, "a", "b");
    await allSee(ns, 2);
    ns[1].cluster.leave();
    const left = Date.now();
    await waitFor("b gone", () => !ns[0].cluster.members.isLive("b"), 100);
    // Sentinel: had a kept b, a tick past b's silence bound would report it. The second announce
    // of a after that bound comes from a later tick than the first one past it.
    await announced(broker, "a", left + ns[0].cluster.members.downAfterMs, 2);
    expect(events.filter((e) => e.event === "node-down")).toEqual([]);
  });
});

describe("presence", () => {
  test("presence - one user on two nodes is online with every connection listed", async () => {
    const { broker } = bus();
    const ns = start(broker, "a", "b", "c");
    await allSee(ns, 3);
    const ca = ns[0].open("s", "u1");
    const cb = ns[1].open("s", "u1", true);
    const p = await ns[2].cluster.presence.user("s", "u1");
    expect(p.online).toBe(true);
    expect(p.missing).toEqual([]);
    expect(p.connections.map((c) => [c.conn, c.node, c.mode]).sort()).toEqual([
      [ca.id, "a", "raw"],
      [cb.id, "b", "envelope"],
    ]);
    expect((await ns[2].cluster.presence.user("s", "nobody")).online).toBe(false);
  });

  test("presence - service counts add up over nodes and pages walk every user once", async () => {
    const { broker } = bus();
    const ns = start(broker, "a", "b", "c");
    await allSee(ns, 3);
    const names = Array.from({ length: 25 }, (_, i) => `u${String(i).padStart(2, "0")}`);
    names.forEach((u, i) => ns[i % 3].open("s", u));
    ns[0].open("s", "u01"); // a second socket of a user on another node
    ns[0].open("other", "x");
    const first = await ns[1].cluster.presence.service("s", "", 10);
    expect(first.connections).toBe(26);
    expect(first.users).toBe(26); // u01 counts once per node it is on
    const seen: string[] = [];
    let after = "";
    for (let page = 0; page < 10; page++) {
      const r = await ns[1].cluster.presence.service("s", after, 10);
      seen.push(...r.list);
      if (!r.next) break;
      after = r.next;
    }
    expect(seen).toEqual(names);
  });

  test("presence - a node that just died is named as missing and the answer comes within the bound", async () => {
    const { broker } = bus();
    const ns = start(broker, "a", "b", "c");
    await allSee(ns, 3);
    ns[0].open("s", "u1");
    const c = ns[2].cluster as unknown as { members: { stop(): void }; scatter: { stop(): void } };
    c.members.stop();
    c.scatter.stop();
    const t0 = performance.now();
    const p = await ns[1].cluster.presence.user("s", "u1");
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(p.online).toBe(true);
    expect(p.missing).toEqual(["c"]);
  });
});

describe("events", () => {
  test("events - connect and disconnect carry the connection, node, close code and counters", async () => {
    const { broker, events } = bus();
    const [a] = start(broker, "a");
    const c = a.open("s", "u1", true);
    c.framesIn = 3;
    c.framesOut = 5;
    a.drop(c, 1000, "bye", "client");
    await waitFor("offline", () => events.some((e) => e.event === "offline"));
    expect(events.map((e) => e.event)).toEqual(["connect", "online", "disconnect", "offline"]);
    expect(events[0]).toMatchObject({ svc: "s", user: "u1", conn: c.id, node: "a", envelope: true });
    expect(events[2]).toMatchObject({ conn: c.id, code: 1000, reason: "bye", closedBy: "client", framesIn: 3, framesOut: 5 });
    expect(typeof events[2].openMs).toBe("number");
    expect(Date.parse(events[2].time as string)).toBeGreaterThan(0);
  });

  test("events - two first connections at once on two nodes give exactly one online", async () => {
    const { broker, events } = bus();
    const ns = start(broker, "a", "b", "c");
    await allSee(ns, 3);
    for (let i = 0; i < 20; i++) {
      ns[0].open("s", `r${i}`);
      ns[1].open("s", `r${i}`);
    }
    await waitFor("onlines", () => events.filter((e) => e.event === "online").length >= 20);
    // An online is published by the check that decides it: with none in flight on either node, all are in.
    await Promise.all([ns[0].cluster.settled(), ns[1].cluster.settled()]);
    for (let i = 0; i < 20; i++) expect(events.filter((e) => e.event === "online" && e.user === `r${i}`).length).toBe(1);
  });

  test("events - offline comes only after the user's last socket anywhere closed", async () => {
    const { broker, events } = bus();
    const ns = start(broker, "a", "b");
    await allSee(ns, 2);
    const ca = ns[0].open("s", "u1");
    await waitFor("online", () => events.some((e) => e.event === "online"));
    const cb = ns[1].open("s", "u1");
    // b's online check sees a's earlier socket (a last close racing b's first open may give a second online: README)
    await ns[1].cluster.settled();
    ns[0].drop(ca);
    await waitFor("a's disconnect", () => events.filter((e) => e.event === "disconnect").length === 1);
    // a's offline check (asking b) has decided once nothing is in flight on a.
    await ns[0].cluster.settled();
    expect(events.filter((e) => e.event === "offline")).toEqual([]);
    expect(events.filter((e) => e.event === "online").length).toBe(1);
    ns[1].drop(cb);
    await waitFor("offline", () => events.some((e) => e.event === "offline"));
    expect(events.filter((e) => e.event === "offline")[0]).toMatchObject({ user: "u1", node: "b", conn: cb.id });
  });

  test("events - a burst of 1,000 first connections asks the cluster in a handful of batches, not once per user", async () => {
    const { broker, events } = bus();
    const ns = start(broker, "a", "b");
    await allSee(ns, 2);
    let queries = 0;
    broker.listen("ws.cluster.query", () => void queries++);
    for (let i = 0; i < 1_000; i++) ns[0].open("burst", `b${i}`);
    await waitFor("1,000 onlines", () => events.filter((e) => e.event === "online").length === 1_000);
    expect(queries).toBeLessThanOrEqual(10);
  });

  test("events - WSGATE_EVENTS=off publishes nothing", async () => {
    const { broker, events } = bus();
    const a = new FakeNode("a");
    a.join(broker, { events: false });
    nodes.push(a);
    a.drop(a.open("s", "u1"));
    await a.cluster.settled();
    // Sentinel: an event published after the connection's; the tap hears it, and nothing before it.
    broker.publish("ws.events.s.u1", new TextEncoder().encode('{"event":"sentinel"}'));
    await waitFor("the sentinel", () => events.length > 0);
    expect(events).toEqual([{ event: "sentinel" }]);
  });
});

describe("control", () => {
  test("control - disconnect closes the user's sockets on every node with the chosen code", async () => {
    const { broker } = bus();
    const ns = start(broker, "a", "b", "c");
    await allSee(ns, 3);
    const ca = ns[0].open("s", "u1");
    const cb = ns[1].open("s", "u1");
    const other = ns[1].open("s", "u2");
    expect(await ns[2].cluster.control.disconnect("s", "u1", null, "terminal")).toEqual({ closed: 2, missing: [] });
    expect(ca.closedWith?.code).toBe(4101);
    expect(cb.closedWith?.code).toBe(4101);
    expect(other.closedWith).toBeNull();
    const c2 = ns[0].open("s", "u2");
    expect((await ns[2].cluster.control.disconnect("s", "u2", c2.id, "reconnect")).closed).toBe(1);
    expect(c2.closedWith?.code).toBe(4004);
    expect(other.closedWith).toBeNull();
    expect((await ns[2].cluster.control.disconnect("s", "u2", c2.id, "reconnect")).closed).toBe(0);
    expect((await ns[2].cluster.control.disconnect("s", "u2", "zz.1-1", "reconnect")).closed).toBe(0);
  });

  test("control - a send to one connection reaches that tab only and a gone connection answers false", async () => {
    const { broker } = bus();
    const ns = start(broker, "a", "b");
    await allSee(ns, 2);
    const t1 = ns[0].open("s", "u1");
    const t2 = ns[0].open("s", "u1");
    const t3 = ns[1].open("s", "u1");
    expect(await ns[1].cluster.control.send("s", "u1", t2.id, new TextEncoder().encode("hi"), "text")).toBe(true);
    expect(await ns[0].cluster.control.send("s", "u1", t3.id, new TextEncoder().encode("yo"), undefined)).toBe(true);
    expect(t1.got).toEqual([]);
    expect(t2.got).toEqual([{ data: "hi", hint: "text" }]);
    expect(t3.got).toEqual([{ data: "yo", hint: undefined }]);
    ns[0].drop(t2);
    expect(await ns[1].cluster.control.send("s", "u1", t2.id, new Uint8Array([1]), "binary")).toBe(false);
    expect(await ns[1].cluster.control.send("s", "u1", "nonode.x-1", new Uint8Array([1]), "binary")).toBe(false);
  });
});
