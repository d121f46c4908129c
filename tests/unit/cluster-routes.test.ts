// The HTTP routes of the cluster features, over one node on the embedded broker.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Hono } from "hono";
import { EmbeddedBroker } from "../../app/broker/embedded.ts";
import { clusterRoutes } from "../../app/http/cluster-routes.ts";
import { FakeNode } from "../cluster-fake.ts";
import { waitFor } from "../helpers/procs.ts";

let node: FakeNode;
let app: Hono;

beforeAll(() => {
  const noop = () => {};
  const broker = new EmbeddedBroker({ deliver: noop, rewatchAll: noop, onState: noop });
  node = new FakeNode("solo");
  node.join(broker, { heard: (svc) => broker.hasTap(`ws.events.${svc}.`) });
  app = new Hono();
  clusterRoutes(app, node.cluster, broker);
});

afterAll(() => node.cluster.leave());

const req = (method: string, path: string, body?: string, headers?: Record<string, string>) => app.request(path, { method, body, headers });

test("routes - every bad id is a 400 naming the part", async () => {
  const cases: [string, string, string][] = [
    ["GET", "/v1/presence/a.b", "svc"],
    ["GET", "/v1/presence/s/u%2A", "user"],
    ["DELETE", "/v1/connections/s%20x/u", "svc"],
    ["DELETE", "/v1/connections/s/u/nodot", "conn"],
    ["POST", "/v1/connections/s/u/a.b.c", "conn"],
    ["GET", "/v1/events/a%3Eb", "svc"],
    ["GET", "/v1/presence/s?after=a.b", "after"],
  ];
  for (const [method, path, part] of cases) {
    const r = await req(method, path);
    expect(r.status).toBe(400);
    expect((await r.json()).error).toStartWith(`${part} must`);
  }
});

test("routes - a limit past the cap is a 400 saying the cap", async () => {
  const r = await req("GET", "/v1/presence/s?limit=1000000");
  expect(r.status).toBe(400);
  expect(await r.json()).toMatchObject({ error: "limit must be at most 1000" });
  expect((await req("GET", "/v1/presence/s?limit=ten")).status).toBe(400);
});

test("routes - an unknown service has no users, and its presence says so", async () => {
  const r = await req("GET", "/v1/presence/nosuchsvc");
  expect(await r.json()).toMatchObject({ users: 0, connections: 0, list: [], next: null, missing: [] });
  expect(await (await req("GET", "/v1/presence/nosuchsvc/u")).json()).toMatchObject({ online: false, connections: [] });
});

test("routes - nodes, presence, send to one connection and disconnect with counts and 404s", async () => {
  const c1 = node.open("web", "u1");
  const c2 = node.open("web", "u1", true);
  const nodes = await (await req("GET", "/v1/nodes")).json();
  expect(nodes.nodes).toHaveLength(1);
  expect(nodes.nodes[0]).toMatchObject({ node: "solo", runtime: "bun", version: "test", connections: 2, users: 1, draining: false });
  const p = await (await req("GET", "/v1/presence/web/u1")).json();
  expect(p.connections.map((c: { conn: string; mode: string }) => [c.conn, c.mode])).toEqual([
    [c1.id, "raw"],
    [c2.id, "envelope"],
  ]);
  const sent = await req("POST", `/v1/connections/web/u1/${c2.id}`, "only you", { "Ws-Frame": "text" });
  expect(sent.status).toBe(200);
  expect(c2.got).toEqual([{ data: "only you", hint: "text" }]);
  expect(c1.got).toEqual([]);
  expect((await req("POST", `/v1/connections/web/u1/${c2.id}`, "x", { "Ws-Frame": "jpeg" })).status).toBe(400);
  const one = await req("DELETE", `/v1/connections/web/u1/${c1.id}?mode=terminal`);
  expect(await one.json()).toMatchObject({ closed: 1, mode: "terminal" });
  expect(c1.closedWith?.code).toBe(4101);
  expect((await req("DELETE", `/v1/connections/web/u1/${c1.id}`)).status).toBe(404);
  expect((await req("POST", `/v1/connections/web/u1/${c1.id}`, "late")).status).toBe(404);
  expect((await req("DELETE", "/v1/connections/web/u1?mode=sometimes")).status).toBe(400);
  expect(await (await req("DELETE", "/v1/connections/web/u1")).json()).toMatchObject({ closed: 1, mode: "reconnect" });
  expect(c2.closedWith?.code).toBe(4004);
});

test("routes - the embedded event stream carries a service's events and no other service's", async () => {
  const ctl = new AbortController();
  const r = await app.request("/v1/events/sse", { signal: ctl.signal });
  const reader = r.body!.getReader();
  let text = "";
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      text += new TextDecoder().decode(value);
    }
  })();
  await waitFor("ready", () => text.includes("event: ready"));
  const c = node.open("sse", "u9");
  node.open("other", "u9");
  node.drop(c, 1000, "", "client");
  await waitFor("offline", () => text.includes("event: offline"));
  const events = [...text.matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1])).filter((e) => e.event);
  expect(events.map((e) => e.event)).toEqual(["connect", "online", "disconnect", "offline"]);
  expect(events.every((e) => e.svc === "sse")).toBe(true);
  ctl.abort();
  await reader.cancel();
  await pump.catch(() => {});
});
