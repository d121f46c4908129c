// The admin console's HTTP routes on every runtime: off (404) without WSGATE_ADMIN_TOKEN,
// sign-in and its refusals, the live feed following a real client, and the token kept out
// of the gateway's output.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { bunClient, cookie } from "./helpers/clients.ts";
import { type Gateway, RUNTIMES, startGateway, startNats, stopNatsAndClean, waitFor } from "./helpers/procs.ts";

const TOKEN = "console-token-" + crypto.randomUUID();
const WRONG = "wrong-token-" + crypto.randomUUID();

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
const FORM = { "content-type": "application/x-www-form-urlencoded" };

/** Reads Server-Sent Events from a response, event by event. */
async function* sse(res: Response): AsyncGenerator<{ event: string; data: any }> {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let end: number;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? "message";
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      yield { event, data: JSON.parse(data) };
    }
  }
}

for (const runtime of RUNTIMES) {
  describe(`${runtime}: admin console routes`, () => {
    let gw: Gateway;
    let off: Gateway;
    beforeAll(async () => {
      [gw, off] = await Promise.all([startGateway(runtime, { env: { WSGATE_ADMIN_TOKEN: TOKEN } }), startGateway(runtime)]);
    });
    afterAll(async () => {
      await Promise.all([gw?.stop("SIGKILL"), off?.stop("SIGKILL")]);
    });

    test("every /admin route is 404 when WSGATE_ADMIN_TOKEN is unset", async () => {
      for (const path of ["/admin", "/admin/assets/console.js", "/admin/api/feed"]) expect((await off.fetch(path)).status).toBe(404);
      expect((await off.fetch("/admin/signin", { method: "POST", headers: FORM, body: form({ token: TOKEN }) })).status).toBe(404);
    });

    test("without a session: the API is 401, a cross-site post is 403, a wrong token is 401 and counted", async () => {
      expect((await gw.fetch("/admin/api/feed")).status).toBe(401);
      expect((await gw.fetch("/admin/api/user/s1/u1")).status).toBe(401);
      expect((await gw.fetch("/admin/api/act", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).status).toBe(401);
      const cross = await gw.fetch("/admin/signin", { method: "POST", redirect: "manual", headers: { ...FORM, origin: "http://evil.example" }, body: form({ token: TOKEN }) });
      expect(cross.status).toBe(403);
      const before = await gw.metric("wsgate_admin_signin_failures_total");
      const wrong = await gw.fetch("/admin/signin", { method: "POST", redirect: "manual", headers: FORM, body: form({ token: WRONG }) });
      expect(wrong.status).toBe(401);
      expect(await wrong.text()).toContain("Wrong token.");
      expect(await gw.metric("wsgate_admin_signin_failures_total")).toBe(before + 1);
    });

    test("sign-in sets an HttpOnly SameSite=Strict cookie; the feed then follows a client connecting and leaving", async () => {
      // As a browser posts it: with the page's own origin.
      const res = await gw.fetch("/admin/signin", { method: "POST", redirect: "manual", headers: { ...FORM, origin: gw.http }, body: form({ token: TOKEN }) });
      expect(res.status).toBe(303);
      const setCookie = res.headers.get("set-cookie")!;
      expect(setCookie).toMatch(/^wsgate_admin=[0-9a-f]{64}; Path=\/admin; HttpOnly; SameSite=Strict/);
      const session = setCookie.split(";")[0];
      const js = await gw.fetch("/admin/assets/uplot.js", { headers: { cookie: session } });
      expect(js.headers.get("content-type")).toStartWith("text/javascript");
      expect((await js.text()).length).toBeGreaterThan(40_000);

      const ac = new AbortController();
      const feed = await gw.fetch("/admin/api/feed", { headers: { cookie: session }, signal: ac.signal });
      expect(feed.headers.get("content-type")).toStartWith("text/event-stream");
      const events = sse(feed);
      const first = (await events.next()).value!;
      expect(first.event).toBe("history");
      const nextTick = async (want: (d: any) => boolean) => {
        for (;;) {
          const { value } = await events.next();
          if (value!.event === "tick" && want(value!.data)) return value!.data;
        }
      };
      const client = await bunClient(gw.ws, { Cookie: cookie("s1", `feed-${runtime}`) });
      const tick = await nextTick((d) => d.sample.connections === 1);
      expect(tick.nodes.nodes.find((n: any) => n.node === gw.nodeId)).toMatchObject({ runtime, connections: 1, users: 1, draining: false, broker: "connected" });
      client.close();
      await nextTick((d) => d.sample.connections === 0);
      ac.abort();
    });

    test("the admin token never appears in the gateway's output", async () => {
      await waitFor("the sign-in log lines", () => gw.output().includes("admin console: signed in"));
      expect(gw.output()).toContain('"adminConsole":"on at /admin"');
      expect(gw.output()).not.toContain(TOKEN);
      expect(gw.output()).not.toContain(WRONG);
    });
  });
}

describe("bun: the mailbox count the console's user view shows", () => {
  test("GET /v1/mailbox/<svc>/<user> counts what waits past the user's cursor; 404 naming why when the mailbox is off", async () => {
    const nats = await startNats({ jetstream: true });
    const gw = await startGateway("bun", { env: { NATS_URL: nats.url, WSGATE_MAILBOX_CURSOR_FLUSH_MS: "50" } });
    try {
      const count = async () => (await (await gw.fetch("/v1/mailbox/s1/away")).json()) as { pending: number; stored: number };
      expect(await count()).toMatchObject({ pending: 0, stored: 0 });
      for (let i = 0; i < 3; i++) expect((await gw.fetch("/v1/publish/s1/away", { method: "POST", body: `m${i}` })).status).toBe(202);
      expect(await count()).toMatchObject({ pending: 3, stored: 3 });
      const c = await bunClient(gw.ws, { Cookie: cookie("s1", "away") });
      await c.waitFor(3);
      c.close();
      await waitFor("the cursor past the delivered messages", async () => (await count()).pending === 0);
      expect((await count()).stored).toBe(3);
      expect((await gw.fetch("/v1/mailbox/s1/a.b")).status).toBe(400);
    } finally {
      await gw.stop("SIGKILL");
      await stopNatsAndClean(nats);
    }
    const embedded = await startGateway("bun");
    try {
      const res = await embedded.fetch("/v1/mailbox/s1/u1");
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ error: "the mailbox is off (no NATS_URL, or WSGATE_MAILBOX=off)" });
    } finally {
      await embedded.stop("SIGKILL");
    }
  });
});
