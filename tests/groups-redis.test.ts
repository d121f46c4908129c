// Groups with Redis as the broker (REDIS_URL): membership stored in Redis and known by every
// node at once, caps exact under concurrent adds, membership back after gateway and Redis
// restarts, broadcast across nodes. Two nodes of each runtime on one redis-server.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { Redis as IORedis } from "ioredis";
import { bunClient, type Client, cookie } from "./helpers/clients.ts";
import { type Gateway, RUNTIMES, startGateway, waitFor } from "./helpers/procs.ts";
import { type Redis, startRedis } from "./helpers/redis.ts";

const ENV = { WSGATE_MAILBOX: "off", WSGATE_MAX_GROUPS_PER_USER: "3", WSGATE_MAX_GROUP_MEMBERS: "4" };
const text = (c: Client) => c.received.map((m) => (typeof m.data === "string" ? m.data : `<binary ${m.data.length}>`));

for (const runtime of RUNTIMES) describe(`groups on Redis on ${runtime}`, () => {
  let redis: Redis;
  let nodes: Gateway[] = [];
  const clients: Client[] = [];
  const env = () => ({ REDIS_URL: redis.url, ...ENV });

  beforeAll(async () => {
    redis = await startRedis({ aof: true });
    nodes = await Promise.all([0, 1].map(() => startGateway(runtime, { env: env() })));
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all(nodes.map((n) => n.stop("SIGKILL")));
    await redis?.clean();
  });

  const raw = async (node: Gateway, svc: string, user: string) => {
    const c = await bunClient(node.ws, { Cookie: cookie(svc, user) });
    clients.push(c);
    return c;
  };
  const api = async (node: Gateway, method: string, path: string, body?: string) => {
    const r = await node.fetch(path, { method, body });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  /** Redis shows subscriptions per channel, not per node: how many connections hold the channel. */
  const holders = (channel: string, n: number) =>
    waitFor(`${n} subscriptions to ${channel}`, async () => (await redis.cli("PUBSUB", "NUMSUB", channel)).split("\n")[1] === String(n), 15_000);
  const members = (node: Gateway, svc: string, group: string) => api(node, "GET", `/v1/groups/${svc}/${group}/members`).then((r) => r.body.members as string[]);
  const publish = (svc: string, user: string, msg: string) => redis.cli("PUBLISH", `ws.recv.${svc}.${user}`, msg);

  test("a member added on one node gets the group on every node, joined before or after connecting; non-members do not", async () => {
    const [a, b] = nodes;
    expect((await api(a, "PUT", "/v1/groups/chat/room/members/u1")).body).toMatchObject({ member: true, changed: true, groups: ["room"] });
    const u1a = await raw(a, "chat", "u1");
    const u1b = await raw(b, "chat", "u1");
    const u2b = await raw(b, "chat", "u2");
    const u3a = await raw(a, "chat", "u3");
    await holders("ws.group.chat.room", 2);
    expect((await api(a, "PUT", "/v1/groups/chat/room/members/u2")).body).toMatchObject({ member: true, changed: true });
    expect((await api(b, "PUT", "/v1/groups/chat/room/members/u2")).body).toMatchObject({ member: true, changed: false, groups: ["room"] });
    await waitFor("b lists u2", async () => (await members(b, "chat", "room")).length === 2);
    expect((await api(b, "POST", "/v1/groups/chat/room", "hello room")).status).toBe(202);
    for (const cl of [u1a, u1b, u2b]) expect((await cl.waitFor(1)).map((m) => m.data)).toEqual(["hello room"]);
    await publish("chat", "u3", "direct");
    await u3a.waitFor(1);
    expect(text(u3a)).toEqual(["direct"]);
    expect(await members(a, "chat", "room")).toEqual(["u1", "u2"]);
    expect((await api(a, "GET", "/v1/users/chat/u2/groups")).body.groups).toEqual(["room"]);
    expect(await redis.cli("SMEMBERS", "ws.groups.user.chat.u1")).toBe("room");
  });

  test("a member removed on one node stops getting the group on the other at once, which drops the channel with its last member", async () => {
    const [a, b] = nodes;
    await api(a, "PUT", "/v1/groups/chat/leave/members/l1");
    await api(a, "PUT", "/v1/groups/chat/leave/members/l2");
    const l1 = await raw(a, "chat", "l1");
    const l2 = await raw(b, "chat", "l2");
    await holders("ws.group.chat.leave", 2);
    expect((await api(a, "DELETE", "/v1/groups/chat/leave/members/l2")).body).toMatchObject({ member: false, changed: true, groups: [] });
    await holders("ws.group.chat.leave", 1);
    await api(b, "POST", "/v1/groups/chat/leave", "after");
    await l1.waitFor(1);
    await publish("chat", "l2", "marker");
    await l2.waitFor(1);
    expect(text(l2)).toEqual(["marker"]);
    expect(text(l1)).toEqual(["after"]);
    expect(await members(b, "chat", "leave")).toEqual(["l1"]);
  });

  test("the caps answer 409 naming the setting, and hold exactly when both nodes add at the same time", async () => {
    const [a, b] = nodes;
    for (const g of ["c1", "c2", "c3"]) expect((await api(a, "PUT", `/v1/groups/caps/${g}/members/u1`)).status).toBe(200);
    const perUser = await api(b, "PUT", "/v1/groups/caps/c4/members/u1");
    expect(perUser.status).toBe(409);
    expect(String(perUser.body.error)).toContain("WSGATE_MAX_GROUPS_PER_USER=3");
    const tries = await Promise.all(Array.from({ length: 12 }, (_, i) => api(nodes[i % 2], "PUT", `/v1/groups/caps/race/members/r${i}`)));
    expect(tries.filter((t) => t.status === 200).length).toBe(4);
    const refused = tries.filter((t) => t.status === 409);
    expect(refused.length).toBe(8);
    expect(String(refused[0].body.error)).toContain("WSGATE_MAX_GROUP_MEMBERS=4");
    await waitFor("both nodes list 4 members", async () => (await members(a, "caps", "race")).length === 4 && (await members(b, "caps", "race")).length === 4);
  });

  test("membership survives a client reconnect, a gateway restart and a Redis restart", async () => {
    const [a, b] = nodes;
    await api(b, "PUT", "/v1/groups/chat/durable/members/u7");
    const first = await raw(a, "chat", "u7");
    first.close();
    await first.closed;
    await a.stop("SIGTERM");
    nodes[0] = await startGateway(runtime, { port: a.port, env: env() });
    const back = await raw(nodes[0], "chat", "u7");
    await holders("ws.group.chat.durable", 1);
    await api(b, "POST", "/v1/groups/chat/durable", "one");
    expect((await back.waitFor(1)).map((m) => m.data)).toEqual(["one"]);
    // Redis restarts (its AOF keeps the sets): the nodes read the membership again and resubscribe.
    await redis.kill();
    await redis.start();
    await holders("ws.group.chat.durable", 1);
    await waitFor("a change after the restart reaches both nodes", async () => (await api(b, "PUT", "/v1/groups/chat/durable/members/u8")).status === 200, 15_000, 200);
    await waitFor("a lists u7 and u8", async () => (await members(nodes[0], "chat", "durable")).join() === "u7,u8");
    await waitFor("the member gets the group again", async () => {
      await api(b, "POST", "/v1/groups/chat/durable", "two");
      return back.received.length > 1;
    }, 15_000, 200);
    expect(back.received[1].data).toBe("two");
    // Both nodes hear membership changes again (each store's own subscription came back too).
    await holders("ws.groups.changed", 2);
  });

  test("a Redis that lost its data leaves every node with no stored membership, and a change after it applies on every node though its revision starts over", async () => {
    const [a, b] = nodes;
    await api(a, "PUT", "/v1/groups/lost/room/members/x1");
    await api(a, "PUT", "/v1/groups/lost/room/members/x2");
    await waitFor("b lists both", async () => (await members(b, "lost", "room")).length === 2);
    await redis.kill();
    rmSync(`${redis.dir}/appendonlydir`, { recursive: true, force: true });
    await redis.start();
    await waitFor("a and b forget the old members", async () => (await members(a, "lost", "room")).length === 0 && (await members(b, "lost", "room")).length === 0, 15_000);
    await waitFor("an add after the loss", async () => (await api(b, "PUT", "/v1/groups/lost/room/members/x2")).status === 200, 15_000, 200);
    await waitFor("a lists the new member", async () => (await members(a, "lost", "room")).join() === "x2");
  });

  test("services change and read membership by PUBLISH with a Ws-Reply channel, one node answering each", async () => {
    const sub = new IORedis(redis.url);
    const cmd = new IORedis(redis.url);
    const answers: Record<string, unknown>[] = [];
    sub.on("pmessage", (_p: string, _c: string, m: string) => void answers.push(JSON.parse(m)));
    await sub.psubscribe("svc.answers.*");
    let asked = 0;
    const ask = async (subject: string) => {
      const n = answers.length;
      // A fresh reply channel per request, as NATS inboxes are: the nodes claim the request by it.
      await cmd.publish(subject, `WSGATE/1\r\nWs-Reply: svc.answers.${asked++}\r\n\r\n`);
      await waitFor(`an answer to ${subject}`, () => answers.length > n);
      await cmd.ping(); // one more round trip, for a second answer to show up if there were one
      return answers.slice(n);
    };
    try {
      await waitFor("membership requests heard", async () => (await cmd.publish("ws.groups.members.chat.none", "x")) === nodes.length);
      expect(await ask("ws.groups.add.chat.byreq.q1")).toEqual([expect.objectContaining({ status: 200, member: true, changed: true, groups: ["byreq"] })]);
      await waitFor("the other node lists q1", async () => (await members(nodes[1], "chat", "byreq")).join() === "q1");
      expect(await ask("ws.groups.members.chat.byreq")).toEqual([{ status: 200, svc: "chat", group: "byreq", members: ["q1"] }]);
      expect(await ask("ws.groups.add.chat.byreq.q*")).toEqual([{ status: 400, error: "user must match ^[A-Za-z0-9_-]{1,64}$" }]);
    } finally {
      sub.disconnect();
      cmd.disconnect();
    }
  });

  test("a broadcast reaches both nodes' connections of the service", async () => {
    const cls = [await raw(nodes[0], "rnews", "r1"), await raw(nodes[1], "rnews", "r2")];
    await holders("ws.bcast.rnews", 2);
    expect((await nodes[0].fetch("/v1/broadcast/rnews", { method: "POST", body: "hello" })).status).toBe(202);
    for (const c of cls) expect((await c.waitFor(1)).map((m) => m.data)).toEqual(["hello"]);
  });
});
