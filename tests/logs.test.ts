// WSGATE_LOG_LEVEL=debug: refusals and closes are logged, messages are not.
import { expect, test } from "bun:test";
import { bunClient, cookie, tryUpgrade } from "./helpers/clients.ts";
import { startGateway, waitFor } from "./helpers/procs.ts";

const lines = (out: string) =>
  out
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

test("debug level logs each refused upgrade with its reason and each close with its code, nothing per message", async () => {
  const gw = await startGateway("bun", { env: { WSGATE_LOG_LEVEL: "debug", WSGATE_ALLOWED_ORIGINS: "https://app.example.com" } });
  try {
    expect((await tryUpgrade(gw.http, {})).status).toBe(401);
    expect((await tryUpgrade(gw.http, { Cookie: cookie("s", "u"), Origin: "https://evil.example" })).status).toBe(403);
    const c = await bunClient(gw.ws, { Cookie: cookie("logs", "u1") });
    for (let i = 0; i < 20; i++) c.send(`frame ${i}`);
    await waitFor("frames counted", async () => (await gw.metric("wsgate_messages_in_total")) === 20);
    c.close(); // no code: the server sees 1005 "no status received"
    const closed = await waitFor("the close logged", () => lines(gw.output()).find((l) => l.msg === "connection closed"));
    expect(closed).toMatchObject({ level: "debug", user: "logs.u1", code: 1005, node: gw.nodeId });
    const refused = lines(gw.output()).filter((l) => l.msg === "upgrade refused");
    expect(refused).toHaveLength(2);
    expect(refused[0]).toMatchObject({ level: "debug", status: 401, reason: expect.stringContaining("cookie") });
    expect(refused[1]).toMatchObject({ status: 403, reason: expect.stringContaining("not allowed"), origin: "https://evil.example" });
    expect(gw.output()).not.toContain("frame 1");
  } finally {
    await gw.stop();
  }
});

test("at the default level neither refusals nor closes are logged", async () => {
  const gw = await startGateway("bun");
  try {
    expect((await tryUpgrade(gw.http, {})).status).toBe(401);
    const c = await bunClient(gw.ws, { Cookie: cookie("logs", "u2") });
    c.close();
    await waitFor("closed", async () => (await gw.metric("wsgate_connections")) === 0);
    expect(gw.output()).not.toContain("upgrade refused");
    expect(gw.output()).not.toContain("connection closed");
  } finally {
    await gw.stop();
  }
});

test("only a connection cap the operator set above the open-files limit is warned about at start", async () => {
  const start = (env: Record<string, string>) => startGateway("bun", { cmd: ["sh", "-c", "ulimit -n 300 && exec sh scripts/start.sh bun"], env });
  const quiet = await start({});
  const loud = await start({ WSGATE_MAX_CONNECTIONS: "1000" });
  try {
    expect(quiet.output()).not.toContain("open-files limit is below the connection cap");
    const warning = lines(loud.output()).find((l) => l.msg === "open-files limit is below the connection cap; upgrades past it will be refused");
    expect(warning).toMatchObject({ level: "warn", openFilesLimit: 300, maxConnections: 1000, effectiveCap: 236 });
  } finally {
    await quiet.stop();
    await loud.stop();
  }
});
