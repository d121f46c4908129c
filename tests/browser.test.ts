// The SDK in a real browser: Debian's Chromium, headless, driven by playwright-core. The
// SDK is bundled for the browser with `bun build` here, served from a page on another
// port, and identifies itself with the cookies the browser holds (development mode).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { type Browser, chromium } from "playwright-core";
import { join } from "node:path";
import { type Gateway, type Nats, ROOT, RUNTIMES, startGateway, startNats, stopNatsAndClean } from "./helpers/procs.ts";
import { waitForSub } from "./helpers/sdk.ts";

const CHROMIUM = "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>wsgate SDK</title>
<script type="module">
  import { connect } from "/client.js";
  const events = (window.events = []);
  const client = (window.client = connect(new URLSearchParams(location.search).get("gw")));
  client.on("state", (s) => events.push("state:" + s));
  client.onMessage((data, info) => events.push("message:" + data + ":" + info.seq));
  client.onRequest(async (data) => {
    events.push("request:" + data);
    return "browser answers " + data;
  });
</script>`;

let nats: Nats;
let nc: NatsConnection;
let browser: Browser;
let site: ReturnType<typeof Bun.serve>;

beforeAll(async () => {
  const built = await Bun.build({ entrypoints: [join(ROOT, "sdk", "client.ts")], target: "browser", format: "esm" });
  if (!built.success) throw new Error(`bun build of the SDK failed: ${built.logs.join("\n")}`);
  const bundle = await built.outputs[0].text();
  site = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const path = new URL(req.url).pathname;
      if (path === "/client.js") return new Response(bundle, { headers: { "content-type": "text/javascript" } });
      return new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } });
    },
  });
  nats = await startNats({ jetstream: true });
  nc = await connect({ servers: nats.url });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
});

afterAll(async () => {
  await browser?.close();
  await nc?.close();
  if (nats) await stopNatsAndClean(nats);
  site?.stop(true);
});

for (const runtime of RUNTIMES) {
  describe(`${runtime}: the SDK in headless Chromium`, () => {
    let gw: Gateway;
    beforeAll(async () => {
      gw = await startGateway(runtime, { env: { NATS_URL: nats.url } });
    });
    afterAll(async () => {
      await gw?.stop("SIGKILL");
    });

    test("connects with the browser's cookies, answers a service request, receives messages and calls a service", async () => {
      const user = `browser-${runtime}`;
      const context = await browser.newContext();
      try {
        // Cookies are scoped by host, not port: the page's cookies go to the gateway too.
        await context.addCookies([
          { name: "service", value: "web", url: "http://127.0.0.1" },
          { name: "user", value: user, url: "http://127.0.0.1" },
        ]);
        const page = await context.newPage();
        await page.goto(`http://127.0.0.1:${site.port}/?gw=${encodeURIComponent(gw.ws)}`);
        await page.waitForFunction(() => (window as any).events.includes("state:open"), undefined, { timeout: 15_000 });

        await waitForSub(() => nats.subsOf(gw.nodeId), `ws.req.web.${user}`);
        const answer = await nc.request(`ws.req.web.${user}`, "are you there?", { timeout: 5_000 });
        expect(answer.string()).toBe("browser answers are you there?");

        for (let i = 1; i <= 5; i++) nc.publish(`ws.recv.web.${user}`, `note ${i}`);
        await page.waitForFunction(() => (window as any).events.filter((e: string) => e.startsWith("message:")).length >= 5, undefined, { timeout: 10_000 });
        const events: string[] = await page.evaluate(() => (window as any).events);
        const messages = events.filter((e) => e.startsWith("message:")).map((e) => e.split(":"));
        expect(messages.map((m) => m[1])).toEqual(["note 1", "note 2", "note 3", "note 4", "note 5"]);
        const seqs = messages.map((m) => Number(m[2]));
        for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 1] + 1);
        expect(events).toContain("request:are you there?");

        const clock = nc.subscribe("ws.call.web.clock", {
          callback: (_e, m) => {
            m.respond(`tick for ${m.headers?.get("Ws-User")}`);
          },
        });
        await nc.flush();
        const reply = await page.evaluate(() => (window as any).client.request("clock", "now"));
        expect(reply).toBe(`tick for ${user}`);
        clock.unsubscribe();
      } finally {
        await context.close();
      }
    });
  });
}
