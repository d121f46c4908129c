// The SDK on Node 20, which has no global WebSocket: bundled for Node with `bun build`
// and handed the `ws` package's class through the `WebSocket` option.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cookie } from "./helpers/clients.ts";
import { type Gateway, ROOT, RUNTIMES, startGateway, waitFor } from "./helpers/procs.ts";

// Inside the repo so that `import "ws"` resolves from node_modules; .tmp/ is git-ignored.
const dir = join(ROOT, ".tmp", `sdk-node-${process.pid}`);

const RUNNER = `
import WebSocket from "ws";
import { connect } from "./client.mjs";
const [url, cookie] = process.argv.slice(2);
// Development mode identifies the user by cookies; ws takes headers as a third argument.
class CookieWebSocket extends WebSocket {
  constructor(u, protocols) { super(u, protocols, { headers: { Cookie: cookie } }); }
}
const client = connect(url, { WebSocket: CookieWebSocket });
client.onRequest((data) => "node " + process.versions.node.split(".")[0] + " answers " + data);
client.onMessage((data) => console.log("message " + data));
await client.opened();
console.log("open");
`;

beforeAll(async () => {
  mkdirSync(dir, { recursive: true });
  const built = await Bun.build({ entrypoints: [join(ROOT, "sdk", "client.ts")], target: "node", format: "esm" });
  if (!built.success) throw new Error(`bun build of the SDK failed: ${built.logs.join("\n")}`);
  writeFileSync(join(dir, "client.mjs"), await built.outputs[0].text());
  writeFileSync(join(dir, "runner.mjs"), RUNNER);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

for (const runtime of RUNTIMES) {
  describe(`${runtime}: the SDK on Node`, () => {
    let gw: Gateway;
    beforeAll(async () => {
      gw = await startGateway(runtime);
    });
    afterAll(async () => {
      await gw?.stop("SIGKILL");
    });

    test("connects with the ws package's WebSocket, answers a request and receives a message", async () => {
      const user = `node-${runtime}`;
      const proc = Bun.spawn(["node", join(dir, "runner.mjs"), gw.ws, cookie("sdk", user)], { cwd: dir, stdout: "pipe", stderr: "pipe" });
      let out = "";
      void (async () => {
        for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) out += new TextDecoder().decode(chunk);
      })();
      try {
        await waitFor("the Node client open", () => {
          if (proc.exitCode !== null) throw new Error(`node exited ${proc.exitCode}: ${out}`);
          return out.includes("open");
        });
        const major = (await new Response(Bun.spawn(["node", "-p", "process.versions.node.split('.')[0]"]).stdout).text()).trim();
        const res = await fetch(`${gw.http}/v1/request/sdk/${user}?timeout=3000`, { method: "POST", body: "ping" });
        expect(res.status).toBe(200);
        expect(await res.text()).toBe(`node ${major} answers ping`);
        expect((await fetch(`${gw.http}/v1/publish/sdk/${user}`, { method: "POST", body: "hello node" })).status).toBe(202);
        await waitFor("the message printed", () => out.includes("message hello node"));
      } finally {
        proc.kill("SIGTERM");
        await proc.exited;
      }
    });
  });
}
