// What operators install: the binary, run the way packaging/wsgate@.service and
// packaging/Containerfile run it. No systemd (as PID 1) and no container engine here: the
// unit's command line and environment and the image's health check are run directly.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, type Gateway, ROOT, startGateway, waitFor } from "./helpers/procs.ts";

const UNIT = readFileSync(join(ROOT, "packaging", "wsgate@.service"), "utf8");
const CONTAINERFILE = readFileSync(join(ROOT, "packaging", "Containerfile"), "utf8");
let dir: string;
let bin: string;

beforeAll(() => {
  const build = Bun.spawnSync(["npm", "run", "--silent", "build"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  if (build.exitCode !== 0) throw new Error(`npm run build failed:\n${build.stderr}`);
  // An empty directory with a .env and a bunfig.toml that must both be ignored.
  dir = mkdtempSync(join(tmpdir(), "wsgate-pkg-"));
  bin = join(dir, "wsgate");
  copyFileSync(join(ROOT, "dist", "wsgate"), bin);
  Bun.spawnSync(["chmod", "+x", bin]);
  writeFileSync(join(dir, ".env"), "WSGATE_LOG_LEVEL=loud\nPORT=nope\n");
  writeFileSync(join(dir, "bunfig.toml"), 'preload = ["./missing.ts"]\n');
}, 120_000);
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string> = {}) {
  const r = Bun.spawnSync([bin, ...args], { cwd: dir, env: { PATH: process.env.PATH!, ...env }, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

/** systemd's specifiers for instance 1 of the template on this host. */
function expand(s: string): string {
  return s.replaceAll("%i", "1").replaceAll("%l", hostname().split(".")[0]);
}

function unitDirectives(key: string): string[] {
  return UNIT.split("\n")
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => expand(l.slice(key.length + 1)));
}

test("the binary answers --help, --version and check-config, and ignores .env and bunfig.toml in its directory", () => {
  expect(run(["--help"])).toMatchObject({ code: 0, out: expect.stringContaining("check-config") });
  expect(run(["--version"]).out).toBe(`wsgate ${JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version}\n`);
  expect(run(["check-config"])).toMatchObject({ code: 0, out: expect.stringContaining("config ok") });
  expect(run(["check-config"], { WSGATE_MAX_CONNECTIONS: "-1" })).toMatchObject({ code: 2, err: expect.stringContaining("WSGATE_MAX_CONNECTIONS") });
});

test("the image is built with the same flags as npm run build", () => {
  const npmBuild = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts.build as string;
  for (const flag of npmBuild.split(" ").filter((w) => w.startsWith("--") && w !== "--outfile")) expect(CONTAINERFILE).toContain(flag);
  expect(CONTAINERFILE).toMatch(/^STOPSIGNAL SIGTERM$/m);
  expect(CONTAINERFILE).toMatch(/^USER nonroot$/m);
  expect(CONTAINERFILE).toMatch(/^EXPOSE 8080$/m);
});

test("the systemd unit's command line and environment serve, report ready, and drain on its stop signal", async () => {
  const [execStart] = unitDirectives("ExecStart");
  const env: Record<string, string> = {};
  for (const line of unitDirectives("Environment")) {
    const eq = line.indexOf("=");
    env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  expect(unitDirectives("KillSignal")).toEqual(["SIGTERM"]);
  expect(unitDirectives("RestartPreventExitStatus")).toEqual(["2"]);
  // The unit's port is 8080; here a free one stands in so as not to collide with anything.
  const port = await freePort();
  delete env.PORT;
  const cmd = execStart.split(" ").map((w) => (w === "/usr/local/bin/wsgate" ? bin : w));
  const gw: Gateway = await startGateway("bun", { cmd, port, env });
  try {
    expect((await gw.fetch("/readyz")).status).toBe(200);
    const listening = gw.output().split("\n").find((l) => l.includes('"wsgate listening"'))!;
    expect(JSON.parse(listening)).toMatchObject({ node: `${hostname().split(".")[0]}-w1`, worker: 1, port });
    // The container's HEALTHCHECK, as written in the Containerfile, against this process.
    const health = JSON.parse(/^HEALTHCHECK .* CMD (\[.*\])$/m.exec(CONTAINERFILE)![1]) as string[];
    const hc = () => Bun.spawnSync([bin, ...health.slice(1)], { env: { PATH: process.env.PATH!, PORT: String(port) } }).exitCode;
    expect(hc()).toBe(0);
    const stopSeconds = Number(unitDirectives("TimeoutStopSec")[0]);
    expect(stopSeconds * 1000).toBeGreaterThan(10_000); // the default drain bound
    expect(await gw.stop(unitDirectives("KillSignal")[0] as NodeJS.Signals)).toBe(0);
    expect(gw.output()).toContain('"drained; exiting"');
    await waitFor("health check failing once stopped", () => hc() === 1);
  } finally {
    await gw.stop("SIGKILL");
  }
}, 60_000);
