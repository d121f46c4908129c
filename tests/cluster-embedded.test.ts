// The cluster routes on one node without NATS: production mode keeps every new route behind
// the service token, and the lifecycle events stream over Server-Sent Events.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { bunClient } from "./helpers/clients.ts";
import { type Gateway, startGateway, waitFor } from "./helpers/procs.ts";
import { claims, hsSigner, PUBLISH_TOKEN, SECRET, sign } from "./helpers/security.ts";

let gw: Gateway;
const auth = { Authorization: `Bearer ${PUBLISH_TOKEN}` };

beforeAll(async () => {
  gw = await startGateway("bun", { env: { WSGATE_JWT_SECRET: SECRET, WSGATE_PUBLISH_TOKEN: PUBLISH_TOKEN } });
});

afterAll(() => gw?.stop("SIGKILL"));

test("production mode - every cluster route answers 401 without the service token or with a wrong one", async () => {
  const routes: [string, string][] = [
    ["GET", "/v1/nodes"],
    ["GET", "/v1/presence/s"],
    ["GET", "/v1/presence/s/u"],
    ["DELETE", "/v1/connections/s/u"],
    ["DELETE", "/v1/connections/s/u/n.1"],
    ["POST", "/v1/connections/s/u/n.1"],
    ["GET", "/v1/events/s"],
  ];
  for (const [method, path] of routes) {
    expect([method, path, (await gw.fetch(path, { method })).status]).toEqual([method, path, 401]);
    const wrong = await gw.fetch(path, { method, headers: { Authorization: "Bearer not-the-token-at-all" } });
    expect([method, path, wrong.status]).toEqual([method, path, 401]);
  }
  expect((await gw.fetch("/v1/nodes", { headers: auth })).status).toBe(200);
});

test("embedded - the event stream of a service carries its users' connect, online, disconnect and offline", async () => {
  const ctl = new AbortController();
  const r = await gw.fetch("/v1/events/web", { headers: auth, signal: ctl.signal });
  expect(r.headers.get("content-type")).toContain("text/event-stream");
  let text = "";
  const reader = r.body!.getReader();
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      text += new TextDecoder().decode(value);
    }
  })().catch(() => {});
  await waitFor("ready", () => text.includes("event: ready"));
  const token = await sign(hsSigner(), claims("web", "alice"));
  const other = await sign(hsSigner(), claims("mobile", "bob"));
  const c = await bunClient(`${gw.ws}?access_token=${token}`, {});
  const o = await bunClient(`${gw.ws}?access_token=${other}`, {});
  c.close();
  await waitFor("offline", () => text.includes("event: offline"));
  const events = [...text.matchAll(/^data: (\{.*\})$/gm)].map((m) => JSON.parse(m[1])).filter((e) => e.event);
  expect(events.map((e) => e.event)).toEqual(["connect", "online", "disconnect", "offline"]);
  expect(events.every((e) => e.svc === "web" && e.user === "alice")).toBe(true);
  const presence = await (await gw.fetch("/v1/presence/mobile/bob", { headers: auth })).json();
  expect(presence.online).toBe(true);
  o.close();
  ctl.abort();
  await reader.cancel().catch(() => {});
  await pump;
});
