// The admin console in headless Chromium (Debian's, through playwright-core) against a Bun
// gateway: sign-in and its refusals, the overview following real clients, the user view and
// its actions reaching a real client, sign-out. Screenshots go to .tmp/ (not committed).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { bunClient, type Client, cookie } from "./helpers/clients.ts";
import { type Gateway, ROOT, startGateway, startNats, stopNatsAndClean } from "./helpers/procs.ts";

const CHROMIUM = "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const TOKEN = "browser-console-token-" + crypto.randomUUID();
const SHOTS = join(ROOT, ".tmp");
const LAPTOP = { width: 1366, height: 900 };
const PHONE = { width: 390, height: 844 };

let gw: Gateway;
let browser: Browser;
/** A page on another site (localhost vs 127.0.0.1) that posts a form to the console. */
let evil: ReturnType<typeof Bun.serve>;
const clients: Client[] = [];

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  [gw, browser] = await Promise.all([
    startGateway("bun", { env: { WSGATE_ADMIN_TOKEN: TOKEN, WSGATE_NODE_ID: "gw-console" } }),
    chromium.launch({ executablePath: CHROMIUM, args: FLAGS }),
  ]);
  evil = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: () =>
      new Response(
        `<!doctype html><form id="f" method="post" action="${gw.http}/admin/api/act" enctype="text/plain">` +
          `<input name='{"kind":"disconnect-user","svc":"s1","user":"victim","mode":"terminal","x":"' value='"}'></form>` +
          `<script>document.getElementById("f").submit()</script>`,
        { headers: { "content-type": "text/html" } },
      ),
  });
});

afterAll(async () => {
  for (const c of clients) c.close();
  await browser?.close();
  evil?.stop(true);
  await gw?.stop("SIGKILL");
});

async function signIn(page: Page, token = TOKEN) {
  await page.goto(`${gw.http}/admin`);
  await page.fill("#token", token);
  return Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]).then(([res]) => res!);
}

async function open(): Promise<Page> {
  const page = await browser.newPage({ viewport: LAPTOP });
  page.on("dialog", (d) => void d.accept());
  return page;
}

describe("bun: the admin console in headless Chromium", () => {
  test("a wrong token is refused: 401 and the sign-in form again", async () => {
    const page = await open();
    const res = await signIn(page, "not-the-admin-token");
    expect(res.status()).toBe(401);
    await page.waitForSelector("text=Wrong token.");
    expect(await page.locator("#token").count()).toBe(1);
    await page.close();
  });

  test("signed in, the overview's connection count follows clients connecting and leaving", async () => {
    const page = await open();
    expect((await signIn(page)).status()).toBe(200);
    const conns = page.locator('[data-node-connections="gw-console"]');
    await conns.waitFor();
    const base = Number(await conns.textContent());
    const a = await bunClient(gw.ws, { Cookie: cookie("s1", "alice") });
    const b = await bunClient(gw.ws, { Cookie: cookie("s1", "bob") });
    clients.push(a, b);
    await page.waitForFunction((n) => document.querySelector("#t-conns")?.textContent === String(n), base + 2, { timeout: 5000 });
    b.close();
    await page.waitForFunction((n) => document.querySelector("#t-conns")?.textContent === String(n), base + 1, { timeout: 5000 });
    // A little traffic so the charts have something to show in the screenshots.
    for (let i = 0; i < 20; i++) {
      await gw.fetch("/v1/publish/s1/alice", { method: "POST", body: `tick ${i}` });
      if (i % 5 === 0) a.send(`hello ${i}`);
      await Bun.sleep(100); // spread over two of the charts' one-second samples: a line, not a dot
    }
    await page.waitForFunction(() => Number(document.querySelector("#t-out")?.textContent) > 0, undefined, { timeout: 5000 });
    await page.screenshot({ path: join(SHOTS, "admin-overview.png"), fullPage: true });
    await page.setViewportSize(PHONE);
    // Usable on a phone: nothing wider than the screen except the tables' own scroll boxes.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width);
    await page.screenshot({ path: join(SHOTS, "admin-overview-phone.png"), fullPage: true });
    await page.close();
  });

  test("the user view shows a client's connection within 2 s; messages sent from it (user, connection, group, broadcast) arrive; a terminal disconnect closes it with 4101", async () => {
    const page = await open();
    await signIn(page);
    await page.waitForSelector("#feed-state.ok");
    await page.fill("#find input[name=svc]", "s1");
    await page.fill("#find input[name=user]", "carol");
    await page.click("#find button");
    await page.waitForSelector("#user-summary:has-text('offline')");
    const client = await bunClient(gw.ws, { Cookie: cookie("s1", "carol") });
    clients.push(client);
    const shownAt = Date.now();
    const row = page.locator("#conns tbody tr");
    await row.first().waitFor({ timeout: 2000 });
    expect(Date.now() - shownAt).toBeLessThan(2000);
    const conn = (await row.first().getAttribute("data-conn"))!;
    expect(conn).toStartWith("gw-console.");
    await expect(page.locator("#user-summary").textContent()).resolves.toContain("online: 1 connection");

    await page.fill("#send textarea", "hello from the console");
    await page.click("#send button");
    expect((await client.waitFor(1))[0].data).toBe("hello from the console");
    await page.waitForSelector("#answer:has-text('POST /v1/publish/s1/carol → 202')");
    await page.selectOption("#send select[name=target]", "conn");
    await page.fill("#send textarea", "only to this connection");
    await page.click("#send button");
    expect((await client.waitFor(2))[1].data).toBe("only to this connection");
    await page.waitForSelector(`#answer:has-text('POST /v1/connections/s1/carol/${conn} → 200')`);
    // Frames counted by the gateway show up in the table at the next lookup.
    await page.waitForFunction(() => document.querySelector("#conns tbody tr td:nth-child(6)")?.textContent === "2", undefined, { timeout: 10_000 });

    // Groups: the view lists the user's groups; a message to the group and a service broadcast reach the client.
    expect((await gw.fetch("/v1/groups/s1/team/members/carol", { method: "PUT" })).status).toBe(200);
    await page.waitForSelector("#user-groups:has-text('team')", { timeout: 10_000 });
    await page.selectOption("#send select[name=target]", "group");
    await page.fill("#send input[name=group]", "team");
    await page.fill("#send textarea", "to the team");
    await page.click("#send button");
    expect((await client.waitFor(3))[2].data).toBe("to the team");
    await page.waitForSelector("#answer:has-text('POST /v1/groups/s1/team → 202')");
    await page.selectOption("#send select[name=target]", "broadcast");
    await page.fill("#send textarea", "to all of s1");
    await page.click("#send button");
    expect((await client.waitFor(4))[3].data).toBe("to all of s1");
    await page.waitForSelector("#answer:has-text('POST /v1/broadcast/s1 → 202')");
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(SHOTS, "admin-user.png"), fullPage: true });
    await page.setViewportSize(PHONE);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width);
    await page.screenshot({ path: join(SHOTS, "admin-user-phone.png"), fullPage: true });
    await page.locator("#user").screenshot({ path: join(SHOTS, "admin-user-phone-section.png") });
    await page.setViewportSize(LAPTOP);

    await page.click(`#conns button[data-conn="${conn}"]`);
    expect((await client.closed).code).toBe(4101);
    await page.waitForSelector("#answer:has-text('→ 200')");
    await page.waitForSelector("#event-list li.ev-disconnect:has-text('s1/carol')");
    await page.fill("#filter input[name=user]", "nobody");
    expect(await page.locator("#event-list li").count()).toBe(0);
    await page.close();
  });

  test("a cross-site form post to the console is refused (403) and changes nothing", async () => {
    const page = await open();
    await signIn(page);
    const victim = await bunClient(gw.ws, { Cookie: cookie("s1", "victim") });
    clients.push(victim);
    const refused = page.waitForResponse((r) => r.url().endsWith("/admin/api/act"));
    await page.goto(`http://localhost:${evil.port}/`);
    expect((await refused).status()).toBe(403);
    // Sentinel: a message for the victim published after the refused post. Had the post
    // disconnected it, the close would come first and this message never.
    let closed = false;
    void victim.closed.then(() => (closed = true));
    expect((await gw.fetch("/v1/publish/s1/victim", { method: "POST", body: "still here" })).status).toBe(202);
    expect((await victim.waitFor(1))[0].data).toBe("still here");
    expect(closed).toBe(false);
    await page.close();
  });

  test("sign-out ends the session: the page is the sign-in form and the API answers 401", async () => {
    const page = await open();
    await signIn(page);
    await page.waitForSelector("#feed-state.ok");
    await Promise.all([page.waitForNavigation(), page.click("#signout button")]);
    await page.waitForSelector("#token");
    const status = await page.evaluate(async () => (await fetch("/admin/api/user/s1/u1")).status);
    expect(status).toBe(401);
    await page.close();
  });
});

describe("bun: the admin console over a NATS cluster of two gateways", () => {
  test("lists both nodes, shows what waits in a user's mailbox, and shows a node killed with SIGKILL as not answering", async () => {
    const nats = await startNats({ jetstream: true });
    const env = { NATS_URL: nats.url, WSGATE_ADMIN_TOKEN: TOKEN };
    const [a, b] = await Promise.all([startGateway("bun", { env: { ...env, WSGATE_NODE_ID: "gw-a" } }), startGateway("bun", { env: { ...env, WSGATE_NODE_ID: "gw-b" } })]);
    const page = await open();
    try {
      await page.goto(`${a.http}/admin`);
      await page.fill("#token", TOKEN);
      await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
      await page.waitForFunction(() => document.querySelector("#t-nodes")?.textContent === "2", undefined, { timeout: 15_000 });
      // The user view reads the mailbox: two messages for a user who is away wait there.
      for (const m of ["one", "two"]) expect((await a.fetch("/v1/publish/s1/away", { method: "POST", body: m })).status).toBe(202);
      await page.fill("#find input[name=svc]", "s1");
      await page.fill("#find input[name=user]", "away");
      await page.click("#find button");
      await page.waitForSelector("#user-mailbox:has-text('2 message(s) waiting')");
      const c = await bunClient(b.ws, { Cookie: cookie("s1", "on-b") });
      await page.waitForSelector('[data-node-connections="gw-b"]:has-text("1")', { timeout: 10_000 });
      c.close();
      await b.stop("SIGKILL");
      // Silent for 3 announce periods (12 s): late first, then dropped from the set.
      await page.waitForSelector("#nodes tr.bad:has-text('gw-b')", { timeout: 20_000 });
      await page.waitForSelector("#nodes tr.bad:has-text('not answering')", { timeout: 20_000 });
      expect(await page.locator("#t-nodes").textContent()).toBe("1");
      expect(await page.locator("#nodes tr.ok:has-text('gw-a')").count()).toBe(1);
    } finally {
      await page.close();
      await Promise.all([a.stop("SIGKILL"), b.stop("SIGKILL")]);
      await stopNatsAndClean(nats);
    }
  });
});
