// The groups service API over HTTP, against an in-memory store and the embedded broker.
import { expect, test } from "bun:test";
import { Hono } from "hono";
import { EmbeddedBroker } from "../../app/broker/embedded.ts";
import { LoopTopics } from "../../app/groups/fanout.ts";
import { Groups } from "../../app/groups/groups.ts";
import { MemoryMembershipStore } from "../../app/groups/store.ts";
import { groupSubjects } from "../../app/groups/subjects.ts";
import { groupRoutes } from "../../app/http/group-routes.ts";
import { groupsFactory } from "../../app/groups/setup.ts";

function setup() {
  const seen: [string, string][] = [];
  const broker = new EmbeddedBroker({ deliver: () => {}, rewatchAll: () => {}, onState: () => {} });
  broker.tap("ws.", (subject, data) => void seen.push([subject, new TextDecoder().decode(data)]));
  const groups = new Groups(
    {
      topics: new LoopTopics(() => 1),
      textAsString: true,
      subjects: groupSubjects("ws"),
      maxBroadcastsPerSec: 2,
      store: (changed) => new MemoryMembershipStore({ maxGroupsPerUser: 2, maxGroupMembers: 2 }, changed),
    },
    { broker, eachConn: () => {}, eachOfService: () => {} },
  );
  const app = new Hono();
  groupRoutes(app, groups);
  const call = async (method: string, path: string, body?: string, headers?: Record<string, string>) => {
    const r = await app.request(path, { method, body, headers });
    return { status: r.status, body: (await r.json()) as Record<string, unknown>, headers: r.headers };
  };
  return { call, seen };
}

test("routes - PUT and DELETE change membership, the listings show it", async () => {
  const t = setup();
  expect((await t.call("PUT", "/v1/groups/s1/room/members/u1")).body).toMatchObject({ member: true, changed: true, groups: ["room"] });
  expect((await t.call("PUT", "/v1/groups/s1/room/members/u1")).body).toMatchObject({ changed: false });
  await t.call("PUT", "/v1/groups/s1/room/members/u2");
  expect((await t.call("GET", "/v1/groups/s1/room/members")).body).toEqual({ svc: "s1", group: "room", members: ["u1", "u2"] });
  expect((await t.call("GET", "/v1/users/s1/u1/groups")).body).toEqual({ svc: "s1", user: "u1", groups: ["room"] });
  const del = await t.call("DELETE", "/v1/groups/s1/room/members/u1");
  expect(del.status).toBe(200);
  expect(del.body).toMatchObject({ member: false, changed: true, groups: [] });
  expect((await t.call("GET", "/v1/groups/s1/room/members")).body.members).toEqual(["u2"]);
});

test("routes - a group publish goes to <prefix>.group.<svc>.<group> with 202", async () => {
  const t = setup();
  const r = await t.call("POST", "/v1/groups/s1/room", "hello");
  expect(r.status).toBe(202);
  expect(r.body).toEqual({ subject: "ws.group.s1.room", bytes: 5 });
  expect(t.seen).toEqual([["ws.group.s1.room", "hello"]]);
});

test("routes - broadcast goes to <prefix>.bcast.<svc>; past the rate it is 429 with Retry-After", async () => {
  const t = setup();
  expect((await t.call("POST", "/v1/broadcast/s1", "a")).status).toBe(202);
  expect((await t.call("POST", "/v1/broadcast/s1", "b")).status).toBe(202);
  const over = await t.call("POST", "/v1/broadcast/s1", "c");
  expect(over.status).toBe(429);
  expect(over.headers.get("retry-after")).toBe("1");
  expect(String(over.body.error)).toContain("WSGATE_MAX_BROADCASTS_PER_SEC");
  expect(t.seen.map((s) => s[0])).toEqual(["ws.bcast.s1", "ws.bcast.s1"]);
});

test("routes - the caps answer 409 naming the setting", async () => {
  const t = setup();
  await t.call("PUT", "/v1/groups/s1/a/members/u1");
  await t.call("PUT", "/v1/groups/s1/b/members/u1");
  const perUser = await t.call("PUT", "/v1/groups/s1/c/members/u1");
  expect(perUser.status).toBe(409);
  expect(String(perUser.body.error)).toContain("WSGATE_MAX_GROUPS_PER_USER");
  await t.call("PUT", "/v1/groups/s1/a/members/u2");
  const perGroup = await t.call("PUT", "/v1/groups/s1/a/members/u3");
  expect(perGroup.status).toBe(409);
  expect(String(perGroup.body.error)).toContain("WSGATE_MAX_GROUP_MEMBERS");
});

test("routes - a bad id in any path is 400 naming the part, and nothing is published or stored", async () => {
  const t = setup();
  const cases: [string, string, string][] = [
    ["POST", "/v1/groups/s.1/room", "svc"],
    ["POST", "/v1/groups/s1/ro*om", "group"],
    ["POST", "/v1/broadcast/s%3E1", "svc"],
    ["PUT", "/v1/groups/s1/room/members/u%2E1", "user"],
    ["DELETE", "/v1/groups/s1/r%20m/members/u1", "group"],
    ["GET", "/v1/groups/s1/room.x/members", "group"],
    ["GET", "/v1/users/s1/u>/groups", "user"],
    ["GET", `/v1/users/${"x".repeat(65)}/u1/groups`, "svc"],
  ];
  for (const [method, path, part] of cases) {
    const r = await t.call(method, path, method === "POST" ? "x" : undefined);
    expect([path, r.status]).toEqual([path, 400]);
    expect(r.body.error).toBe(`${part} must match ^[A-Za-z0-9_-]{1,64}$`);
  }
  expect(t.seen).toEqual([]);
});

test("routes - a Ws-Frame header other than text or binary is 400", async () => {
  const t = setup();
  const r = await t.call("POST", "/v1/groups/s1/room", "x", { "Ws-Frame": "json" });
  expect(r.status).toBe(400);
});

test("routes - with Redis as the broker, a change before the store has its connection is 503 naming Redis; publishing still works", async () => {
  const broker = new EmbeddedBroker({ deliver: () => {}, rewatchAll: () => {}, onState: () => {} });
  const make = groupsFactory(
    { prefix: "ws", nats: null, redis: {}, groups: { maxGroupsPerUser: 0, maxGroupMembers: 0, maxBroadcastsPerSec: 0, bucket: "B", replicas: 1 } },
    new LoopTopics(() => 1),
    true,
  );
  const app = new Hono();
  groupRoutes(app, make({ broker, eachConn: () => {}, eachOfService: () => {} }));
  const put = await app.request("/v1/groups/s1/room/members/u1", { method: "PUT" });
  expect(put.status).toBe(503);
  expect(((await put.json()) as { error: string }).error).toContain("not connected yet (Redis)");
  expect((await app.request("/v1/groups/s1/room", { method: "POST", body: "x" })).status).toBe(202);
});
