// Groups and broadcast across three gateway nodes on one nats-server (JetStream for the
// membership bucket), on each runtime: membership before and after connect, leave,
// reconnects and restarts, broadcast scope, order, envelope frames, caps, bad ids.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { bunClient, type Client, cookie, wsPackageClient } from "./helpers/clients.ts";
import { type Gateway, type Nats, RUNTIMES, startGateway, startNats, stopNatsAndClean, waitFor } from "./helpers/procs.ts";
import { claims, hsSigner, PUBLISH_TOKEN, SECRET, sign } from "./helpers/security.ts";

const ENV = {
  WSGATE_MAILBOX: "off",
  WSGATE_MAX_GROUPS_PER_USER: "3",
  WSGATE_MAX_GROUP_MEMBERS: "4",
  WSGATE_MAX_BROADCASTS_PER_SEC: "20",
};
const text = (c: Client) => c.received.map((m) => (typeof m.data === "string" ? m.data : `<binary ${m.data.length}>`));

for (const runtime of RUNTIMES) {
  describe(`groups on ${runtime}`, () => {
    let nats: Nats;
    let nc: NatsConnection;
    let nodes: Gateway[] = [];
    const clients: Client[] = [];

    beforeAll(async () => {
      nats = await startNats({ jetstream: true });
      nc = await connect({ servers: nats.url });
      nodes = await Promise.all([0, 1, 2].map(() => startGateway(runtime, { env: { NATS_URL: nats.url, ...ENV } })));
      // Ready for sockets comes before the membership bucket is open (changes answer 503 until
      // then): wait until each node takes a change.
      for (const [i, node] of nodes.entries()) {
        await waitFor(`${node.nodeId} membership store open`, async () => (await node.fetch(`/v1/groups/warm/up/members/w${i}`, { method: "PUT" })).status === 200, 30_000);
      }
    });

    afterAll(async () => {
      for (const c of clients) c.close();
      await Promise.all(nodes.map((n) => n.stop("SIGKILL")));
      await nc?.close();
      if (nats) await stopNatsAndClean(nats);
    });

    const raw = async (node: Gateway, svc: string, user: string) => {
      const c = await bunClient(node.ws, { Cookie: cookie(svc, user) });
      clients.push(c);
      return c;
    };
    const envelope = async (node: Gateway, svc: string, user: string) => {
      const c = await wsPackageClient(node.ws, { Cookie: cookie(svc, user) }, "wsgate.v1");
      clients.push(c);
      return c;
    };
    const api = async (node: Gateway, method: string, path: string, body?: string) => {
      const r = await node.fetch(path, { method, body });
      return { status: r.status, body: (await r.json()) as Record<string, unknown>, headers: r.headers };
    };
    const subscribed = (node: Gateway, subject: string, present = true) =>
      waitFor(`${node.nodeId} ${present ? "holds" : "drops"} ${subject}`, async () => (await nats.subsOf(node.nodeId)).includes(subject) === present, 15_000);

    test("a group message reaches every connection of every member on all three nodes, joined before or after connecting, and no one else", async () => {
      const [a, b, c] = nodes;
      expect((await api(a, "PUT", "/v1/groups/chat/room/members/u1")).status).toBe(200);
      const u1a = await raw(a, "chat", "u1");
      const u1c = await raw(c, "chat", "u1");
      const u2b = await raw(b, "chat", "u2");
      const u3c = await raw(c, "chat", "u3");
      await subscribed(a, "ws.group.chat.room");
      await subscribed(c, "ws.group.chat.room");
      expect((await api(c, "PUT", "/v1/groups/chat/room/members/u2")).body).toMatchObject({ member: true, changed: true });
      await subscribed(b, "ws.group.chat.room");
      expect((await api(b, "POST", "/v1/groups/chat/room", "hello room")).status).toBe(202);
      for (const cl of [u1a, u1c, u2b]) expect((await cl.waitFor(1)).map((m) => m.data)).toEqual(["hello room"]);
      nc.publish("ws.recv.chat.u3", new TextEncoder().encode("direct"));
      await u3c.waitFor(1);
      expect(text(u3c)).toEqual(["direct"]); // the group message never reached a non-member
      expect((await api(a, "GET", "/v1/groups/chat/room/members")).body.members).toEqual(["u1", "u2"]);
      expect((await api(b, "GET", "/v1/users/chat/u2/groups")).body.groups).toEqual(["room"]);
    });

    test("a member who leaves stops getting the group at once on every node, and the node drops the subscription with its last member", async () => {
      const [a, b] = nodes;
      await api(a, "PUT", "/v1/groups/chat/leave/members/u1");
      await api(a, "PUT", "/v1/groups/chat/leave/members/u2");
      const u1 = await raw(a, "chat", "u1");
      const u2 = await raw(b, "chat", "u2");
      await subscribed(b, "ws.group.chat.leave");
      expect((await api(a, "DELETE", "/v1/groups/chat/leave/members/u2")).body).toMatchObject({ member: false, changed: true });
      await subscribed(b, "ws.group.chat.leave", false);
      await api(b, "POST", "/v1/groups/chat/leave", "after");
      await u1.waitFor(1);
      nc.publish("ws.recv.chat.u2", new TextEncoder().encode("marker"));
      await u2.waitFor(1);
      expect(text(u2)).toEqual(["marker"]);
      expect(text(u1)).toEqual(["after"]);
    });

    test("membership survives a reconnect and a gateway restart", async () => {
      const [a, b] = nodes;
      await api(b, "PUT", "/v1/groups/chat/durable/members/u7");
      const first = await raw(a, "chat", "u7");
      first.close();
      await first.closed;
      const again = await raw(b, "chat", "u7");
      await subscribed(b, "ws.group.chat.durable");
      await api(a, "POST", "/v1/groups/chat/durable", "one");
      expect((await again.waitFor(1)).map((m) => m.data)).toEqual(["one"]);
      again.close();
      await again.closed;
      // A restarted node reads membership back from the bucket.
      await a.stop("SIGTERM");
      const restarted = await startGateway(runtime, { port: a.port, env: { NATS_URL: nats.url, ...ENV } });
      nodes[0] = restarted;
      const back = await raw(restarted, "chat", "u7");
      await subscribed(restarted, "ws.group.chat.durable");
      await api(b, "POST", "/v1/groups/chat/durable", "two");
      expect((await back.waitFor(1)).map((m) => m.data)).toEqual(["two"]);
    });

    test("a broadcast reaches every connection of the service on every node and none of another service", async () => {
      const [a, b, c] = nodes;
      const mine = [await raw(a, "news", "x1"), await raw(b, "news", "x2"), await raw(c, "news", "x3"), await raw(c, "news", "x1")];
      const other = await raw(b, "sports", "x1");
      for (const n of [a, b, c]) await subscribed(n, "ws.bcast.news");
      expect((await api(c, "POST", "/v1/broadcast/news", "extra")).body).toEqual({ subject: "ws.bcast.news", bytes: 5 });
      for (const cl of mine) expect((await cl.waitFor(1)).map((m) => m.data)).toEqual(["extra"]);
      nc.publish("ws.recv.sports.x1", new TextEncoder().encode("marker"));
      await other.waitFor(1);
      expect(text(other)).toEqual(["marker"]);
    });

    test("group messages from one publisher arrive in publish order on every node", async () => {
      const [a, b, c] = nodes;
      await api(a, "PUT", "/v1/groups/chat/order/members/o1");
      await api(a, "PUT", "/v1/groups/chat/order/members/o2");
      const cls = [await raw(a, "chat", "o1"), await raw(b, "chat", "o2"), await raw(c, "chat", "o1")];
      for (const n of [a, b, c]) await subscribed(n, "ws.group.chat.order");
      const want = Array.from({ length: 300 }, (_, i) => `m${i}`);
      for (const m of want) nc.publish("ws.group.chat.order", new TextEncoder().encode(m));
      for (const cl of cls) expect((await cl.waitFor(300, 20_000)).map((m) => m.data)).toEqual(want);
    });

    test("envelope clients get message frames naming the group or the broadcast; binary as base64", async () => {
      const [a, b] = nodes;
      await api(a, "PUT", "/v1/groups/env/lobby/members/e1");
      const e1 = await envelope(b, "env", "e1");
      await subscribed(b, "ws.group.env.lobby");
      await subscribed(b, "ws.bcast.env");
      await api(a, "POST", "/v1/groups/env/lobby", "hi");
      await e1.waitFor(2); // the hello frame, then the message
      await api(a, "POST", "/v1/broadcast/env", "all");
      await e1.waitFor(3);
      nc.publish("ws.group.env.lobby", new Uint8Array([0xff, 0xfe]));
      const got = (await e1.waitFor(4)).map((m) => JSON.parse(m.data as string)).filter((f) => f.type !== "hello");
      expect(got).toEqual([
        { type: "message", group: "lobby", data: "hi" },
        { type: "message", broadcast: true, data: "all" },
        { type: "message", group: "lobby", data: "//4=", encoding: "base64" },
      ]);
    });

    test("services change membership over NATS requests and get the HTTP answers", async () => {
      const [, b] = nodes;
      const ask = async (s: string) => (await nc.request(s, new Uint8Array(), { timeout: 5_000 })).json<Record<string, unknown>>();
      expect(await ask("ws.groups.add.chat.natsroom.n1")).toMatchObject({ status: 200, member: true, changed: true });
      const n1 = await raw(b, "chat", "n1");
      await subscribed(b, "ws.group.chat.natsroom");
      nc.publish("ws.group.chat.natsroom", new TextEncoder().encode("via nats"));
      expect((await n1.waitFor(1)).map((m) => m.data)).toEqual(["via nats"]);
      expect(await ask("ws.groups.members.chat.natsroom")).toEqual({ status: 200, svc: "chat", group: "natsroom", members: ["n1"] });
      expect(await ask("ws.groups.add.chat.natsroom.n*")).toEqual({ status: 400, error: "user must match ^[A-Za-z0-9_-]{1,64}$" });
    });

    test("the caps answer 409 naming the setting and broadcasts past the rate get 429", async () => {
      const [a, b] = nodes;
      for (const g of ["c1", "c2", "c3"]) expect((await api(a, "PUT", `/v1/groups/caps/${g}/members/u1`)).status).toBe(200);
      const perUser = await api(b, "PUT", "/v1/groups/caps/c4/members/u1");
      expect(perUser.status).toBe(409);
      expect(String(perUser.body.error)).toContain("WSGATE_MAX_GROUPS_PER_USER=3");
      for (const u of ["u2", "u3", "u4"]) expect((await api(a, "PUT", `/v1/groups/caps/c1/members/${u}`)).status).toBe(200);
      await waitFor("b sees 4 members", async () => ((await api(b, "GET", "/v1/groups/caps/c1/members")).body.members as string[]).length === 4);
      const perGroup = await api(b, "PUT", "/v1/groups/caps/c1/members/u5");
      expect(perGroup.status).toBe(409);
      expect(String(perGroup.body.error)).toContain("WSGATE_MAX_GROUP_MEMBERS=4");
      const statuses: number[] = [];
      for (let i = 0; i < 25; i++) statuses.push((await api(a, "POST", "/v1/broadcast/caps", `b${i}`)).status);
      expect(statuses.filter((s) => s === 202).length).toBeGreaterThanOrEqual(20);
      expect(statuses).toContain(429);
    });

    test("/metrics counts group messages, deliveries and the subscriptions held", async () => {
      const [a] = nodes;
      await api(a, "PUT", "/v1/groups/met/room/members/m1");
      const m1 = await raw(a, "met", "m1");
      await subscribed(a, "ws.group.met.room");
      const before = await a.metric("wsgate_group_deliveries_total");
      await api(a, "POST", "/v1/groups/met/room", "counted");
      await m1.waitFor(1);
      expect(await a.metric("wsgate_group_deliveries_total")).toBe(before + 1);
      expect(await a.metric("wsgate_group_subscriptions")).toBeGreaterThanOrEqual(2); // the group and the service's broadcast
    });

    test("a bad id in any route is a 400 naming the part", async () => {
      const [a] = nodes;
      const cases: [string, string, string][] = [
        ["POST", "/v1/groups/chat/ro.om", "group"],
        ["POST", "/v1/broadcast/ch*at", "svc"],
        ["PUT", "/v1/groups/chat/room/members/u%3E", "user"],
        ["DELETE", "/v1/groups/c%20hat/room/members/u1", "svc"],
        ["GET", "/v1/groups/chat/r..m/members", "group"],
        ["GET", "/v1/users/chat/u.1/groups", "user"],
      ];
      for (const [method, path, part] of cases) {
        const r = await api(a, method, path, method === "POST" ? "x" : undefined);
        expect([path, r.status, r.body.error]).toEqual([path, 400, `${part} must match ^[A-Za-z0-9_-]{1,64}$`]);
      }
    });
  });
}

for (const runtime of RUNTIMES) {
  describe(`groups in production mode on ${runtime}`, () => {
    let gw: Gateway;
    const clients: Client[] = [];
    const bearer = { Authorization: `Bearer ${PUBLISH_TOKEN}` };

    beforeAll(async () => {
      gw = await startGateway(runtime, { env: { WSGATE_JWT_SECRET: SECRET, WSGATE_PUBLISH_TOKEN: PUBLISH_TOKEN } });
    });

    afterAll(async () => {
      for (const c of clients) c.close();
      await gw?.stop("SIGKILL");
    });

    test("the group routes need the service bearer token", async () => {
      expect((await gw.fetch("/v1/groups/prod/room/members/u1", { method: "PUT" })).status).toBe(401);
      expect((await gw.fetch("/v1/broadcast/prod", { method: "POST", body: "x" })).status).toBe(401);
      expect((await gw.fetch("/v1/users/prod/u1/groups")).status).toBe(401);
      expect((await gw.fetch("/v1/groups/prod/room/members/u1", { method: "PUT", headers: bearer })).status).toBe(200);
    });

    test("a token's groups claim joins that connection only, not the user's other connections", async () => {
      const token = await sign(hsSigner(), claims("prod", "p1", { groups: ["vip"] }));
      const withClaim = await bunClient(gw.ws, { Authorization: `Bearer ${token}` });
      const plain = await bunClient(gw.ws, { Authorization: `Bearer ${await sign(hsSigner(), claims("prod", "p1"))}` });
      clients.push(withClaim, plain);
      expect((await gw.fetch("/v1/groups/prod/vip", { method: "POST", body: "for vips", headers: bearer })).status).toBe(202);
      expect((await withClaim.waitFor(1)).map((m) => m.data)).toEqual(["for vips"]);
      await gw.fetch("/v1/publish/prod/p1", { method: "POST", body: "marker", headers: bearer });
      await plain.waitFor(1);
      expect(text(plain)).toEqual(["marker"]);
    });

    test("a groups claim that is not a list of ids refuses the upgrade with 403", async () => {
      const token = await sign(hsSigner(), claims("prod", "p2", { groups: ["a.b"] }));
      const r = await gw.fetch("/ws", { headers: { Authorization: `Bearer ${token}`, Upgrade: "websocket", Connection: "Upgrade", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==" } });
      expect(r.status).toBe(403);
      expect(await r.text()).toContain("token claim groups is invalid");
    });
  });
}

for (const runtime of RUNTIMES) {
  test(`groups on ${runtime} without JetStream: publishing and broadcast work, membership changes answer 503`, async () => {
    const nats = await startNats();
    const gw = await startGateway(runtime, { env: { NATS_URL: nats.url, WSGATE_MAILBOX: "off" } });
    try {
      const c = await bunClient(gw.ws, { Cookie: cookie("nojs", "u1") });
      await waitFor("broadcast subscription", async () => (await nats.subsOf(gw.nodeId)).includes("ws.bcast.nojs"));
      expect((await gw.fetch("/v1/broadcast/nojs", { method: "POST", body: "still here" })).status).toBe(202);
      expect((await c.waitFor(1)).map((m) => m.data)).toEqual(["still here"]);
      const r = await gw.fetch("/v1/groups/nojs/room/members/u1", { method: "PUT" });
      expect(r.status).toBe(503);
      expect(((await r.json()) as { error: string }).error).toContain("not connected");
      c.close();
    } finally {
      await gw.stop("SIGKILL");
      await stopNatsAndClean(nats);
    }
  });
}
