// WSGATE_WORKERS: several processes share one port, each its own node on NATS.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { bunClient, cookie, type Client } from "./helpers/clients.ts";
import { freePort, type Gateway, type Nats, RUNTIMES, startGateway, startNats, stopNatsAndClean, waitFor } from "./helpers/procs.ts";

let nats: Nats;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
});
afterAll(async () => {
  await nc?.close();
  if (nats) await stopNatsAndClean(nats);
});

for (const runtime of RUNTIMES) {
  test(`${runtime}: two workers on one port share the connections and drain together`, async () => {
    const port = await freePort();
    const gw: Gateway = await startGateway(runtime, {
      port,
      env: { NATS_URL: nats.url, WSGATE_MAILBOX: "off", WSGATE_WORKERS: "2" },
    });
    try {
      await waitFor("both workers listening", () => gw.output().split('"wsgate listening"').length - 1 === 2, 30_000);
      await waitFor("both workers connected to NATS", () => gw.output().split('"nats connected"').length - 1 === 2, 30_000);
      const clients: Client[] = [];
      for (let i = 0; i < 40; i++) clients.push(await bunClient(gw.ws, { Cookie: cookie("wk", `u${i}`) }));
      // Each worker is a NATS client of its own holding the subscriptions of its users.
      const conns = await waitFor("both workers subscribed", async () => {
        const r = await (await fetch(`http://127.0.0.1:${nats.monitor}/connz?subs=1`)).json();
        const mine = (r.connections ?? []).filter((c: { name?: string }) => c.name?.includes(gw.nodeId));
        const total = mine.reduce((n: number, c: { subscriptions_list?: string[] }) => n + (c.subscriptions_list?.filter((s) => s.startsWith("ws.recv.wk.")).length ?? 0), 0);
        return mine.length === 2 && total === 40 && mine;
      });
      for (const c of conns) expect(c.subscriptions_list.filter((s: string) => s.startsWith("ws.recv.wk.")).length).toBeGreaterThan(0);
      for (let i = 0; i < 40; i++) nc.publish(`ws.recv.wk.u${i}`, `for u${i}`);
      for (let i = 0; i < 40; i++) expect((await clients[i].waitFor(1))[0].data).toBe(`for u${i}`);
      const code = await gw.stop("SIGTERM");
      expect(code).toBe(0);
      for (const c of clients) expect((await c.closed).code).toBe(1001);
    } finally {
      await gw.stop("SIGKILL");
    }
  });
}

test("more than one worker without NATS is a config error", async () => {
  const gw = await startGateway("bun", { env: { WSGATE_WORKERS: "2" }, waitListening: false });
  expect(await gw.finished()).toBe(2);
  expect(gw.output()).toContain("WSGATE_WORKERS");
  expect(gw.output()).toContain("needs NATS_URL");
});
