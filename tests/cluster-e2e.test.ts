// Cluster features end to end: three gateway nodes on one nats-server or one redis-server
// (WSGATE_TEST_BROKERS), real clients, the SDK, and a service that listens on the broker and
// calls the HTTP API and the service API over the broker.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { bunClient, cookie, wsPackageClient } from "./helpers/clients.ts";
import { type Gateway, RUNTIMES, startGateway, waitFor } from "./helpers/procs.ts";
import { sdkClient } from "./helpers/sdk.ts";
import { BROKERS, type ClusterEvent, type ServiceSide, serviceSide } from "./cluster-service.ts";

const sides: ServiceSide[] = [];

const json = async (gw: Gateway, path: string, init?: RequestInit) => {
  const r = await gw.fetch(path, init);
  return { status: r.status, body: await r.json() };
};

beforeAll(async () => {
  for (const b of BROKERS) sides.push(await serviceSide(b));
});

afterAll(async () => {
  for (const s of sides) await s.close();
});

for (const [bi, broker] of BROKERS.entries()) for (const RUNTIME of RUNTIMES) describe(`cluster on ${RUNTIME} over ${broker === "nats" ? "NATS" : "Redis"}`, () => {
  let gws: Gateway[] = [];
  let side: ServiceSide;
  let events: ClusterEvent[] = [];
  const env = () => side.env;
  const eventsOf = (user: string) => events.filter((e) => e.user === user);

  beforeAll(async () => {
    side = sides[bi];
    events = side.events;
    // the suites run one after the other: each sees only its own runtime's events
    events.length = 0;
    gws = await Promise.all([0, 1, 2].map(() => startGateway(RUNTIME, { env: env() })));
    await waitFor("every node sees three", async () => {
      for (const g of gws) if ((await json(g, "/v1/nodes")).body.nodes?.length !== 3) return false;
      return true;
    }, 20_000);
  });

  afterAll(async () => {
    await Promise.all(gws.map((g) => g.stop("SIGKILL")));
  });

  test("nodes - /v1/nodes lists every live node with runtime, version, uptime and counts", async () => {
    const { body } = await json(gws[0], "/v1/nodes");
    expect(body.nodes.map((n: { node: string }) => n.node).sort()).toEqual(gws.map((g) => g.nodeId).sort());
    for (const n of body.nodes) {
      expect(n.runtime).toBe(RUNTIME);
      expect(typeof n.version).toBe("string");
      expect(n.uptimeS).toBeGreaterThanOrEqual(0);
      expect(n.connections).toBeGreaterThanOrEqual(0);
    }
  });

  test("events - connect and disconnect name the connection services see in Ws-Conn", async () => {
    const c = await bunClient(gws[0].ws, { Cookie: cookie("e2e", "ev1") });
    await waitFor("connect event", () => eventsOf("ev1").some((e) => e.event === "connect"));
    const connect = eventsOf("ev1").find((e) => e.event === "connect")!;
    expect(connect).toMatchObject({ svc: "e2e", user: "ev1", node: gws[0].nodeId, envelope: false });
    const frames = await side.frames("e2e");
    c.send("hello");
    c.send("again");
    await waitFor("client frames", () => frames.got.filter((f) => f.user === "ev1").length === 2);
    await frames.stop();
    expect(frames.got.find((f) => f.user === "ev1")!.conn).toBe(connect.conn as string);
    await side.publish("ws.recv.e2e.ev1", "down");
    await c.waitFor(1);
    c.close();
    await waitFor("offline", () => eventsOf("ev1").some((e) => e.event === "offline"));
    expect(eventsOf("ev1").map((e) => e.event)).toEqual(["connect", "online", "disconnect", "offline"]);
    expect(eventsOf("ev1")[2]).toMatchObject({ conn: connect.conn, closedBy: "client", code: 1005, framesIn: 2, framesOut: 1 });
    expect(eventsOf("ev1")[2].openMs).toBeGreaterThanOrEqual(0);
  });

  test("events - one user on two nodes: one online, offline only after the last socket anywhere", async () => {
    const a = await bunClient(gws[0].ws, { Cookie: cookie("e2e", "ev2") });
    await waitFor("online", () => eventsOf("ev2").some((e) => e.event === "online"));
    const b = await bunClient(gws[1].ws, { Cookie: cookie("e2e", "ev2") });
    await waitFor("two connects", () => eventsOf("ev2").filter((e) => e.event === "connect").length === 2);
    // b's online check has to have seen a's earlier socket before a goes. Sentinel: a node sends
    // a user's events in order, behind the user's online check; a second socket's connect on b's
    // node comes after that check has decided.
    const b2 = await bunClient(gws[1].ws, { Cookie: cookie("e2e", "ev2") });
    await waitFor("the sentinel's connect", () => eventsOf("ev2").filter((e) => e.event === "connect").length === 3);
    b2.close();
    await waitFor("the sentinel's disconnect", () => eventsOf("ev2").some((e) => e.event === "disconnect"));
    a.close();
    await waitFor("a's disconnect", () => eventsOf("ev2").some((e) => e.event === "disconnect" && e.node === gws[0].nodeId));
    await waitFor("a gone from presence", async () => (await json(gws[2], "/v1/presence/e2e/ev2")).body.connections.length === 1);
    expect(eventsOf("ev2").filter((e) => e.event === "offline")).toEqual([]);
    b.close();
    await waitFor("offline", () => eventsOf("ev2").some((e) => e.event === "offline"));
    expect(eventsOf("ev2").filter((e) => e.event === "online").length).toBe(1);
    expect(eventsOf("ev2").filter((e) => e.event === "offline").length).toBe(1);
  });

  test("envelope - the first frame is hello with the connection id, and the SDK exposes it", async () => {
    const c = await wsPackageClient(gws[1].ws, { Cookie: cookie("e2e", "hello1") }, "wsgate.v1");
    const [first] = await c.waitFor(1);
    const hello = JSON.parse(first.data as string);
    expect(hello).toMatchObject({ type: "hello", node: gws[1].nodeId });
    const p = await json(gws[0], "/v1/presence/e2e/hello1");
    expect(p.body.connections).toEqual([expect.objectContaining({ conn: hello.conn, node: gws[1].nodeId, mode: "envelope" })]);
    c.close();
    const s = sdkClient(gws[2].ws, "e2e", "hello2");
    await waitFor("sdk connection id", () => s.client.connectionId);
    expect(s.client.connectionId!.startsWith(gws[2].nodeId + ".")).toBe(true);
    s.client.close();
  });

  test("presence - every connection of a user on every node, service counts, pages", async () => {
    const a = await bunClient(gws[0].ws, { Cookie: cookie("pres", "p1") });
    const b = await wsPackageClient(gws[1].ws, { Cookie: cookie("pres", "p1") }, "wsgate.v1");
    const c = await bunClient(gws[2].ws, { Cookie: cookie("pres", "p2") });
    // a client sees its socket open a moment before the server has registered it
    await waitFor("three sockets registered", async () => (await json(gws[0], "/v1/presence/pres")).body.connections === 3);
    const p = await json(gws[2], "/v1/presence/pres/p1");
    expect(p.body.online).toBe(true);
    expect(p.body.missing).toEqual([]);
    expect(p.body.connections.map((x: { node: string; mode: string }) => [x.node, x.mode]).sort()).toEqual([
      [gws[0].nodeId, "raw"],
      [gws[1].nodeId, "envelope"],
    ]);
    const s = await json(gws[0], "/v1/presence/pres?limit=1");
    expect(s.body).toMatchObject({ users: 3, connections: 3, list: ["p1"], next: "p1" });
    expect((await json(gws[0], "/v1/presence/pres?limit=1&after=p1")).body).toMatchObject({ list: ["p2"] });
    expect((await json(gws[0], "/v1/presence/nosuch")).body).toMatchObject({ users: 0, connections: 0, list: [] });
    // the same questions over the broker, for services without HTTP
    const overNats = (await side.request("ws.api.presence.pres.p1", "")) as { connections: { conn: string }[] };
    expect(overNats.connections.map((x: { conn: string }) => x.conn).sort()).toEqual(p.body.connections.map((x: { conn: string }) => x.conn).sort());
    const counts = await side.request("ws.api.presence.pres", JSON.stringify({ limit: 5 }));
    expect(counts).toMatchObject({ users: 3, connections: 3, list: ["p1", "p2"], next: null });
    const closed = await side.request("ws.api.disconnect.pres.p2", JSON.stringify({ mode: "reconnect" }));
    expect(closed).toEqual({ closed: 1, missing: [] });
    expect((await c.closed).code).toBe(4004);
    for (const x of [a, b, c]) x.close();
  });

  test("send - a message for one connection reaches that tab only; a gone one is 404", async () => {
    const t1 = await bunClient(gws[0].ws, { Cookie: cookie("tabs", "t") });
    const t2 = await bunClient(gws[1].ws, { Cookie: cookie("tabs", "t") });
    await waitFor("both tabs registered", async () => (await json(gws[2], "/v1/presence/tabs/t")).body.connections.length === 2);
    const conns = (await json(gws[2], "/v1/presence/tabs/t")).body.connections as { conn: string; node: string }[];
    const second = conns.find((c) => c.node === gws[1].nodeId)!.conn;
    const r = await gws[0].fetch(`/v1/connections/tabs/t/${second}`, { method: "POST", body: "only tab 2" });
    expect(r.status).toBe(200);
    expect((await t2.waitFor(1))[0].data).toBe("only tab 2");
    // Sentinel: a message to the user from the same node, after; a stray copy for tab 1 came first.
    expect((await gws[0].fetch("/v1/publish/tabs/t", { method: "POST", body: "to both tabs" })).status).toBe(202);
    await t1.waitFor(1);
    await t2.waitFor(2);
    expect(t1.received.map((m) => m.data)).toEqual(["to both tabs"]);
    expect(t2.received.map((m) => m.data)).toEqual(["only tab 2", "to both tabs"]);
    t2.close();
    await waitFor("tab 2 gone", async () => (await json(gws[2], "/v1/presence/tabs/t")).body.connections.length === 1);
    const gone = await gws[0].fetch(`/v1/connections/tabs/t/${second}`, { method: "POST", body: "late" });
    expect(gone.status).toBe(404);
    t1.close();
  });

  test("disconnect - terminal stops the SDK on every node, reconnect lets it come back, one connection alone, unknown 404", async () => {
    const a = sdkClient(gws[0].ws, "ctl", "u");
    const b = sdkClient(gws[1].ws, "ctl", "u");
    await waitFor("both open", () => a.opens === 1 && b.opens === 1);
    await waitFor("both registered", async () => (await json(gws[2], "/v1/presence/ctl/u")).body.connections.length === 2);
    const r = await json(gws[2], "/v1/connections/ctl/u?mode=reconnect", { method: "DELETE" });
    expect(r.body).toMatchObject({ closed: 2, mode: "reconnect" });
    // The id comes in the hello frame, just after the socket opens.
    await waitFor("both back", () => a.opens === 2 && b.opens === 2 && a.client.connectionId !== null && b.client.connectionId !== null, 10_000);
    const one = await json(gws[2], `/v1/connections/ctl/u/${a.client.connectionId}?mode=terminal`, { method: "DELETE" });
    expect(one.body).toMatchObject({ closed: 1 });
    await waitFor("a closed for good", () => a.client.state === "closed");
    expect(b.client.state).toBe("open");
    const all = await json(gws[0], "/v1/connections/ctl/u?mode=terminal", { method: "DELETE" });
    expect(all.body.closed).toBe(1);
    await waitFor("b closed for good", () => b.client.state === "closed");
    // A reconnect would be a timer of at most the backoff ceiling (sdkClient: 500 ms) set at the
    // close; timers fire in deadline order, so it would have started before this one ends.
    await Bun.sleep(501);
    expect([a.client.state, b.client.state]).toEqual(["closed", "closed"]);
    expect([a.opens, b.opens]).toEqual([2, 2]);
    const unknown = await gws[0].fetch(`/v1/connections/ctl/u/${gws[1].nodeId}.zzz-9`, { method: "DELETE" });
    expect(unknown.status).toBe(404);
    const term = eventsOf("u").filter((e) => e.event === "disconnect" && e.code === 4101);
    expect(term.every((e) => e.closedBy === "service")).toBe(true);
  });

  test("bad input - every new path refuses a bad id with a 400 naming the part; a huge limit is a 400", async () => {
    const cases: [string, string, string][] = [
      ["GET", "/v1/presence/a.b", "svc"],
      ["GET", "/v1/presence/s/u*", "user"],
      ["DELETE", "/v1/connections/s/u%3E", "user"],
      ["DELETE", "/v1/connections/s/u/x", "conn"],
      ["POST", "/v1/connections/s/u/a.b.c", "conn"],
      ["GET", "/v1/presence/s?limit=1&after=%2A", "after"],
    ];
    for (const [method, path, part] of cases) {
      const r = await json(gws[0], path, { method });
      expect([path, r.status]).toEqual([path, 400]);
      expect(r.body.error).toStartWith(`${part} must`);
    }
    expect((await json(gws[0], "/v1/presence/s?limit=100000")).body.error).toBe("limit must be at most 1000");
  });

  test("drain - SIGTERM gives every socket a disconnect event closed by drain, and the node leaves the set at once", async () => {
    const extra = await startGateway(RUNTIME, { env: env() });
    gws.push(extra);
    await waitFor("four nodes", async () => (await json(gws[0], "/v1/nodes")).body.nodes.length === 4, 20_000);
    const c1 = await bunClient(extra.ws, { Cookie: cookie("drain", "d1") });
    const c2 = await bunClient(extra.ws, { Cookie: cookie("drain", "d2") });
    await waitFor("connects", () => events.filter((e) => e.svc === "drain" && e.event === "connect").length === 2);
    expect(await extra.stop("SIGTERM")).toBe(0);
    gws.pop();
    const gone = events.filter((e) => e.svc === "drain" && e.event === "disconnect");
    expect(gone.map((e) => [e.user, e.closedBy, e.code]).sort()).toEqual([
      ["d1", "drain", 1001],
      ["d2", "drain", 1001],
    ]);
    await waitFor("offline for both", () => events.filter((e) => e.svc === "drain" && e.event === "offline").length === 2);
    expect((await json(gws[0], "/v1/nodes")).body.nodes.length).toBe(3);
    await Promise.all([c1.closed, c2.closed]);
  });

  test("kill -9 - the node leaves /v1/nodes within the bound, presence answers meanwhile and after", async () => {
    const victim = await startGateway(RUNTIME, { env: env() });
    gws.push(victim);
    await waitFor("four nodes", async () => (await json(gws[0], "/v1/nodes")).body.nodes.length === 4, 20_000);
    await bunClient(victim.ws, { Cookie: cookie("kill", "k") });
    const k2 = await bunClient(gws[0].ws, { Cookie: cookie("kill", "k") });
    await waitFor("both registered", async () => (await json(gws[1], "/v1/presence/kill/k")).body.connections.length === 2);
    await victim.stop("SIGKILL");
    gws.pop();
    const t0 = Date.now();
    const during = await json(gws[1], "/v1/presence/kill/k");
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(during.body.online).toBe(true);
    const { downAfterMs } = (await json(gws[0], "/v1/nodes")).body;
    const gone = async () => {
      for (const g of gws) if ((await json(g, "/v1/nodes")).body.nodes.some((n: { node: string }) => n.node === victim.nodeId)) return false;
      return true;
    };
    await waitFor("victim gone from every node's set", gone, downAfterMs + 3_000, 200);
    expect(Date.now() - t0).toBeLessThan(15_000);
    await waitFor("node-down event", () => events.some((e) => e.event === "node-down" && e.node === victim.nodeId));
    const after = await json(gws[1], "/v1/presence/kill/k");
    expect(after.body.connections.map((c: { node: string }) => c.node)).toEqual([gws[0].nodeId]);
    expect(after.body.missing).toEqual([]);
    k2.close();
  }, 40_000);

  test("events off - WSGATE_EVENTS=off publishes nothing", async () => {
    const quiet = await startGateway(RUNTIME, { env: { ...env(), WSGATE_EVENTS: "off" } });
    try {
      const c = await bunClient(quiet.ws, { Cookie: cookie("quiet", "q") });
      c.close();
      await c.closed;
      // a node with events on, for the same service, shows events still flow where they are on
      const d = await bunClient(gws[0].ws, { Cookie: cookie("quiet", "q2") });
      d.close();
      await waitFor("q2's offline", () => events.some((e) => e.user === "q2" && e.event === "offline"));
      expect(events.filter((e) => e.user === "q")).toEqual([]);
    } finally {
      await quiet.stop("SIGKILL");
    }
  });
});
