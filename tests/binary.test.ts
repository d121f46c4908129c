// `npm run build` makes one executable; it must serve without Bun, npm or node_modules beside it.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bunClient, cookie } from "./helpers/clients.ts";
import { type Gateway, ROOT, startGateway } from "./helpers/procs.ts";

let dir: string;
let gw: Gateway;

beforeAll(async () => {
  const build = Bun.spawnSync(["npm", "run", "--silent", "build"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  if (build.exitCode !== 0) throw new Error(`npm run build failed:\n${build.stderr}`);
  // Run it from an empty directory so nothing from the checkout can be picked up.
  dir = mkdtempSync(join(tmpdir(), "wsgate-bin-"));
  copyFileSync(join(ROOT, "dist", "wsgate"), join(dir, "wsgate"));
  Bun.spawnSync(["chmod", "+x", join(dir, "wsgate")]);
  gw = await startGateway("bun", { cmd: [join(dir, "wsgate")], env: { WSGATE_ADMIN_TOKEN: "binary-admin-token-0123" } });
});

afterAll(async () => {
  await gw?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the compiled binary serves the admin console's page, script and chart library from inside itself", async () => {
  expect(await (await fetch(`${gw.http}/admin`)).text()).toContain('action="/admin/signin"');
  for (const [asset, size] of [["console.js", 5_000], ["uplot.js", 40_000], ["uplot.css", 1_000]] as const) {
    const res = await fetch(`${gw.http}/admin/assets/${asset}`);
    expect(res.status).toBe(200);
    expect((await res.text()).length).toBeGreaterThan(size);
  }
});

test("the compiled binary serves WebSockets and the publish API", async () => {
  expect(statSync(join(dir, "wsgate")).size).toBeGreaterThan(1_000_000);
  const c = await bunClient(gw.ws, { Cookie: cookie("bin", "u1") });
  const r = await fetch(`${gw.http}/v1/publish/bin/u1`, { method: "POST", body: "from the binary" });
  expect(r.status).toBe(202);
  expect((await c.waitFor(1))[0].data).toBe("from the binary");
  expect(await gw.metric("wsgate_open_files_limit")).toBeGreaterThan(0);
  c.close();
  expect(await gw.stop("SIGTERM")).toBe(0);
});
