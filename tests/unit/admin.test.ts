// The admin console's pieces without a process: the generated assets, the ring buffer,
// sessions, and the routes through an in-process app (embedded broker, no sockets).
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { generate } from "../../scripts/admin-assets.ts";
import { createGateway } from "../../app/startup.ts";
import { loadConfig } from "../../app/ops/config.ts";
import { Metrics } from "../../app/ops/metrics.ts";
import { Series } from "../../app/admin/series.ts";
import { EVENTS_KEPT, EVENTS_PER_SECOND, Feed, type FeedMessage, type TailEvent } from "../../app/admin/feed.ts";
import { Sessions } from "../../app/admin/session.ts";
import { parseAction, routeOf } from "../../app/admin/actions.ts";
import type { Transport } from "../../app/core/transport.ts";

const TOKEN = "admin-token-for-unit-tests";
const transport: Transport = { runtime: "bun", textAsString: true, send: () => 1, close: () => {} };

function app(env: Record<string, string> = { WSGATE_ADMIN_TOKEN: TOKEN }) {
  return createGateway(loadConfig({ WSGATE_NODE_ID: "unit", ...env }), transport);
}
const form = (fields: Record<string, string>) => ({ "content-type": "application/x-www-form-urlencoded", body: new URLSearchParams(fields).toString() });
async function signIn(a: ReturnType<typeof app>["app"]) {
  const f = form({ token: TOKEN });
  const res = await a.request("/admin/signin", { method: "POST", headers: { "content-type": f["content-type"], origin: "http://localhost", host: "localhost" }, body: f.body });
  expect(res.status).toBe(303);
  const cookie = res.headers.get("set-cookie")!.split(";")[0];
  const page = await (await a.request("/admin", { headers: { cookie } })).text();
  const csrf = /name="csrf" content="([0-9a-f]+)"/.exec(page)![1];
  return { cookie, csrf };
}

test("admin assets - assets.gen.ts is what scripts/admin-assets.ts writes from app/admin/ui and uPlot (run it after editing the page)", () => {
  expect(readFileSync(join(import.meta.dir, "../../app/admin/assets.gen.ts"), "utf8")).toBe(generate());
});

test("admin series - keeps the last `size` seconds oldest first and turns counters into per-second rates", () => {
  const m = new Metrics();
  const s = new Series(m, 3);
  s.sample(1_000_000);
  for (let i = 1; i <= 4; i++) {
    m.connections = i;
    m.messagesIn += 10 * i;
    m.refused.origin += 1;
    const { sample, refusals } = s.sample(1_000_000 + i * 1000);
    expect(sample.msgsIn).toBe(10 * i);
    expect(refusals).toEqual([{ reason: "origin", count: 1 }]);
  }
  const cols = s.columns();
  expect(cols.connections).toEqual([2, 3, 4]);
  expect(cols.t).toEqual([1002, 1003, 1004]);
  expect(cols.refused).toEqual([1, 1, 1]);
});

test("admin sessions - the right token matches, others do not; a session ends at its expiry and at sign-out", async () => {
  let now = 0;
  const s = new Sessions(TOKEN, () => now);
  expect(await s.tokenMatches(TOKEN)).toBe(true);
  expect(await s.tokenMatches(TOKEN + "x")).toBe(false);
  expect(await s.tokenMatches("")).toBe(false);
  const a = s.create();
  expect(s.fromCookie(`x=1; wsgate_admin=${a.id}`)).toBe(a);
  now += 8 * 3600_000;
  expect(s.fromCookie(`wsgate_admin=${a.id}`)).toBeNull();
  const b = s.create();
  s.end(b);
  expect(s.fromCookie(`wsgate_admin=${b.id}`)).toBeNull();
  expect(s.cookie(b, true)).toContain("HttpOnly; SameSite=Strict");
  expect(s.cookie(b, true)).toEndWith("; Secure");
  expect(s.cookie(b, false)).not.toContain("Secure");
});

test("admin actions - bad input is refused naming the field; each action maps to its service API route", () => {
  expect(parseAction({ kind: "send-user", svc: "s1", user: "a.b", text: "x" })).toEqual({ error: "user must match ^[A-Za-z0-9_-]{1,64}$" });
  expect(parseAction({ kind: "zap" })).toHaveProperty("error");
  expect(parseAction({ kind: "disconnect-user", svc: "s1", user: "u1", mode: "forever" })).toEqual({ error: "mode must be terminal or reconnect" });
  expect(parseAction({ kind: "send-conn", svc: "s1", user: "u1", conn: "n1", text: "x" })).toHaveProperty("error");
  const ok = parseAction({ kind: "disconnect-conn", svc: "s1", user: "u1", conn: "n1.17", mode: "terminal" });
  expect(routeOf(ok as never)).toEqual({ method: "DELETE", path: "/v1/connections/s1/u1/n1.17?mode=terminal" });
});

test("admin routes - 404 everywhere under /admin when WSGATE_ADMIN_TOKEN is unset", async () => {
  const { app: a } = app({});
  for (const [method, path] of [["GET", "/admin"], ["GET", "/admin/assets/console.js"], ["POST", "/admin/signin"], ["GET", "/admin/api/feed"]]) {
    expect((await a.request(path, { method })).status).toBe(404);
  }
});

test("admin routes - without a session the API answers 401 and the page is the sign-in form", async () => {
  const { app: a } = app();
  expect((await a.request("/admin/api/feed")).status).toBe(401);
  expect((await a.request("/admin/api/user/s1/u1")).status).toBe(401);
  expect((await a.request("/admin/api/act", { method: "POST", body: "{}" })).status).toBe(401);
  expect((await a.request("/admin/api/user/s1/u1", { headers: { cookie: "wsgate_admin=" + "0".repeat(64) } })).status).toBe(401);
  const page = await a.request("/admin");
  expect(await page.text()).toContain('action="/admin/signin"');
  expect(page.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
});

test("admin routes - a wrong token is refused with 401 and counted; a cross-site sign-in is refused with 403", async () => {
  const { app: a, gw } = app();
  const f = form({ token: "not-the-token-at-all" });
  const res = await a.request("/admin/signin", { method: "POST", headers: { "content-type": f["content-type"] }, body: f.body });
  expect(res.status).toBe(401);
  expect(res.headers.get("set-cookie")).toBeNull();
  expect(gw.metrics.render("unit", "bun")).toContain("wsgate_admin_signin_failures_total 1");
  const g = form({ token: TOKEN });
  const cross = await a.request("/admin/signin", { method: "POST", headers: { "content-type": g["content-type"], origin: "http://evil.example", host: "localhost" }, body: g.body });
  expect(cross.status).toBe(403);
});

test("admin routes - a state change needs the session's CSRF token and the same origin (403 otherwise)", async () => {
  const { app: a } = app();
  const { cookie, csrf } = await signIn(a);
  const body = JSON.stringify({ kind: "send-user", svc: "s1", user: "u1", text: "hi" });
  const post = (headers: Record<string, string>) => a.request("/admin/api/act", { method: "POST", headers: { cookie, "content-type": "application/json", host: "localhost", ...headers }, body });
  expect((await post({})).status).toBe(403);
  expect((await post({ "x-wsgate-csrf": "f".repeat(64) })).status).toBe(403);
  expect((await post({ "x-wsgate-csrf": csrf, origin: "http://localhost:9999" })).status).toBe(403);
  expect((await post({ "x-wsgate-csrf": csrf, "sec-fetch-site": "cross-site" })).status).toBe(403);
  expect((await post({ "x-wsgate-csrf": csrf, origin: "https://admin.example.com", "x-forwarded-host": "admin.example.com" })).status).toBe(200);
  const ok = await post({ "x-wsgate-csrf": csrf, origin: "http://localhost" });
  expect(ok.status).toBe(200);
  expect(await ok.json()).toEqual({ route: "POST /v1/publish/s1/u1", status: 202, body: { subject: "ws.recv.s1.u1", bytes: 2 } });
  const bad = await a.request("/admin/api/act", { method: "POST", headers: { cookie, "x-wsgate-csrf": csrf, "content-type": "application/json" }, body: JSON.stringify({ kind: "broadcast", svc: "a b", text: "x" }) });
  expect(bad.status).toBe(400);
  expect(await bad.json()).toEqual({ error: "svc must match ^[A-Za-z0-9_-]{1,64}$" });
});

test("admin routes - sign-out (with the CSRF form field) ends the session and clears the cookie", async () => {
  const { app: a } = app();
  const { cookie, csrf } = await signIn(a);
  const f = form({ csrf });
  const out = await a.request("/admin/signout", { method: "POST", headers: { cookie, "content-type": f["content-type"] }, body: f.body });
  expect(out.status).toBe(303);
  expect(out.headers.get("set-cookie")).toContain("Max-Age=0");
  expect((await a.request("/admin/api/user/s1/u1", { headers: { cookie } })).status).toBe(401);
});

test("admin feed - listens to events only while a console is open, keeps the last 200 and counts what it skips over 100/s", async () => {
  let listening = 0;
  let emit: (json: string) => void = () => {};
  const feed = new Feed({
    series: new Series(new Metrics(), 10),
    nodeId: "n1",
    nodes: async () => ({ source: "local", nodes: [] }),
    events: (fn) => {
      listening++;
      emit = fn;
      return () => listening--;
    },
  });
  const seen: FeedMessage[] = [];
  const off = feed.subscribe((m) => seen.push(m));
  expect(listening).toBe(1);
  for (let i = 0; i < 150; i++) emit(JSON.stringify({ event: "connect", svc: "s1", user: `u${i}`, time: "t" }));
  emit("not json");
  await feed.tick();
  const events = seen.filter((m) => m.type === "event").map((m) => (m as { event: TailEvent }).event);
  expect(events.filter((e) => e.event === "connect")).toHaveLength(EVENTS_PER_SECOND);
  expect(events.at(-1)).toMatchObject({ event: "skipped", count: 51 });
  expect(seen.at(-1)!.type).toBe("tick");
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < 100; i++) emit(JSON.stringify({ event: "connect", svc: "s1", user: `v${i}`, time: "t" }));
    await feed.tick();
  }
  expect(feed.history().events).toHaveLength(EVENTS_KEPT);
  off();
  expect(listening).toBe(0);
});
