// The command line: what an operator types before and around `serve`.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { jwtVerify } from "jose";
import { bunClient } from "./helpers/clients.ts";
import { freePort, type Nats, ROOT, startGateway, startNats, stopNatsAndClean, waitFor } from "./helpers/procs.ts";
import { PUBLISH_TOKEN, SECRET } from "./helpers/security.ts";

const BUN = join(ROOT, "node_modules", ".bin", "bun");
const ENTRY = join(ROOT, "adapters", "bun.ts");
let dir: string;
let nats: Nats;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "wsgate-cli-"));
  nats = await startNats();
});
afterAll(async () => {
  if (nats) await stopNatsAndClean(nats);
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the gateway's command line with exactly this environment (plus PATH). */
function cli(args: string[], env: Record<string, string> = {}, cwd = dir) {
  const r = Bun.spawnSync([BUN, "--no-env-file", ENTRY, ...args], { cwd, env: { PATH: process.env.PATH!, ...env }, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

test("--help and --version answer and exit without starting a gateway", () => {
  const version = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
  const help = cli(["--help"]);
  expect(help.code).toBe(0);
  for (const cmd of ["serve", "check-config", "token", "publish", "--env-file"]) expect(help.out).toContain(cmd);
  expect(help.out).not.toContain("wsgate listening");
  expect(cli(["--version"])).toMatchObject({ code: 0, out: `wsgate ${version}\n` });
  expect(cli(["frobnicate"])).toMatchObject({ code: 2, err: expect.stringContaining('unknown command "frobnicate"') });
  expect(cli(["--port", "1"])).toMatchObject({ code: 2, err: expect.stringContaining("--port") });
});

test("npm start passes arguments through to the command line", () => {
  const r = Bun.spawnSync(["npm", "start", "--silent", "--", "--version"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  expect(r.exitCode).toBe(0);
  expect(r.stdout.toString()).toStartWith("wsgate ");
});

test("check-config prints every problem at once and exits 2; a clean environment exits 0", () => {
  const bad = cli(["check-config"], { PORT: "http", WSGATE_TLS_CERT: "/c.pem", WSGATE_JWT_SECRET: "short", WSGATE_MAX_CONECTIONS: "5" });
  expect(bad.code).toBe(2);
  const lines = bad.err.trim().split("\n");
  expect(lines).toEqual([
    "config: WSGATE_MAX_CONECTIONS is not a wsgate setting and is ignored; did you mean WSGATE_MAX_CONNECTIONS?",
    expect.stringContaining("config: WSGATE_JWT_SECRET=<hidden> rejected"),
    'config: PORT="http" rejected: PORT must be a whole number',
    "config: WSGATE_TLS_KEY is required when WSGATE_TLS_CERT is set",
  ]);
  const missing = cli(["check-config"], { WSGATE_TLS_CERT: join(dir, "none.pem"), WSGATE_TLS_KEY: join(dir, "none.key") });
  expect(missing).toMatchObject({ code: 2, err: expect.stringMatching(/^config: WSGATE_TLS_CERT=.* rejected: cannot read the file/) });
  const ok = cli(["check-config"], { PORT: "9000", WSGATE_JWT_SECRET: SECRET });
  expect(ok).toMatchObject({ code: 0, out: expect.stringContaining("config ok: production mode") });
});

test("no .env is read from the working directory; --env-file reads the named file", () => {
  writeFileSync(join(dir, ".env"), "WSGATE_LOG_LEVEL=loud\n");
  expect(cli(["check-config"]).code).toBe(0);
  const explicit = cli(["--env-file", join(dir, ".env"), "check-config"]);
  expect(explicit.code).toBe(2);
  expect(explicit.err).toContain('WSGATE_LOG_LEVEL="loud" rejected');
  // The environment wins over the file.
  expect(cli(["--env-file", join(dir, ".env"), "check-config"], { WSGATE_LOG_LEVEL: "debug" }).code).toBe(0);
  expect(cli(["--env-file", join(dir, "missing.env"), "check-config"])).toMatchObject({ code: 2, err: expect.stringContaining("no such file") });
});

test("token makes a JWT the gateway accepts, and publish over HTTP reaches that user", async () => {
  const env = { WSGATE_JWT_SECRET: SECRET, WSGATE_PUBLISH_TOKEN: PUBLISH_TOKEN, WSGATE_JWT_ISSUER: "ops" };
  const t = cli(["token", "--svc", "s1", "--user", "alice", "--ttl", "15m"], env);
  expect(t.code).toBe(0);
  const jwt = t.out.trim();
  const { payload } = await jwtVerify(jwt, new TextEncoder().encode(SECRET), { issuer: "ops" });
  expect(payload).toMatchObject({ sub: "alice", svc: "s1" });
  expect(payload.exp! - Math.floor(Date.now() / 1000)).toBeWithin(890, 901);
  expect(cli(["token", "--svc", "a.b", "--user", "u"], env)).toMatchObject({ code: 2, err: expect.stringContaining("--svc must match") });
  expect(cli(["token", "--svc", "s", "--user", "u"])).toMatchObject({ code: 2, err: expect.stringContaining("needs WSGATE_JWT_SECRET") });

  const gw = await startGateway("bun", { env });
  try {
    const c = await bunClient(gw.ws, { Authorization: `Bearer ${jwt}` });
    const p = cli(["publish", "s1", "alice", "hello from the shell", "--url", gw.http], env);
    expect(p).toMatchObject({ code: 0, out: expect.stringContaining("published") });
    expect((await c.waitFor(1))[0].data).toBe("hello from the shell");
    // Without the token the gateway refuses, and the command says so.
    expect(cli(["publish", "s1", "alice", "x", "--url", gw.http], { WSGATE_JWT_SECRET: SECRET })).toMatchObject({ code: 1, err: expect.stringContaining("answered 401") });
    c.close();
  } finally {
    await gw.stop();
  }
  expect(cli(["publish", "s1", "alice", "x", "--url", `http://127.0.0.1:${await freePort()}`])).toMatchObject({ code: 1, err: expect.stringContaining("no gateway answered") });
}, 60_000);

test("publish goes through NATS when NATS_URL is set", async () => {
  const nc = await connect({ servers: nats.url });
  try {
    const sub = nc.subscribe("ws.recv.s2.bob", { max: 1 });
    await nc.flush();
    const got = (async () => {
      for await (const m of sub) return { data: m.string(), frame: m.headers?.get("Ws-Frame") };
    })();
    const p = cli(["publish", "s2", "bob", "via nats", "--binary"], { NATS_URL: nats.url });
    expect(p).toMatchObject({ code: 0, out: "published to ws.recv.s2.bob\n" });
    expect(await got).toEqual({ data: "via nats", frame: "binary" });
    expect(cli(["publish", "s2", "b*", "x"], { NATS_URL: nats.url })).toMatchObject({ code: 2, err: expect.stringContaining("USER must match") });
  } finally {
    await nc.close();
  }
});

test("publish uses the gateway's NATS credentials, and a refusal never shows the password", async () => {
  const secured = await startNats({ config: "authorization { user: alice, password: s3cretpw }\n" });
  try {
    const nc = await connect({ servers: secured.url, user: "alice", pass: "s3cretpw" });
    const sub = nc.subscribe("ws.recv.s3.carol", { max: 1 });
    await nc.flush();
    const url = `nats://alice:s3cretpw@127.0.0.1:${secured.port}`;
    expect(cli(["publish", "s3", "carol", "authenticated"], { NATS_URL: url })).toMatchObject({ code: 0 });
    for await (const m of sub) expect(m.string()).toBe("authenticated");
    await nc.close();
    const refused = cli(["publish", "s3", "carol", "x"], { NATS_URL: url.replace("s3cretpw", "wrongpw1") });
    expect(refused.code).toBe(1);
    expect(refused.err).toContain("alice:***@");
    expect(refused.err + refused.out).not.toContain("wrongpw1");
  } finally {
    await stopNatsAndClean(secured);
  }
});

test("SIGTERM to `npm start` reaches the gateway: it drains and exits", async () => {
  const port = await freePort();
  const npm = Bun.spawn(["npm", "start"], { cwd: ROOT, env: { ...process.env, PORT: String(port), HOST: "127.0.0.1" }, stdout: "pipe", stderr: "pipe" });
  let out = "";
  let err = "";
  void (async () => {
    for await (const chunk of npm.stdout as ReadableStream<Uint8Array>) out += new TextDecoder().decode(chunk);
  })();
  void (async () => {
    for await (const chunk of npm.stderr as ReadableStream<Uint8Array>) err += new TextDecoder().decode(chunk);
  })();
  try {
    await waitFor("listening", () => out.includes('"wsgate listening"'), 60_000);
    const gateway = Number(readFileSync(`/proc/${npm.pid}/task/${npm.pid}/children`, "utf8").trim().split(/\s+/)[0]);
    expect(readFileSync(`/proc/${gateway}/cmdline`, "utf8")).toContain("adapters/bun.ts");
    npm.kill("SIGTERM");
    await waitFor("the gateway gone", () => {
      try {
        process.kill(gateway, 0);
        return false;
      } catch {
        return true;
      }
    }, 15_000);
    // The gateway writes to the pipe itself; its last line can still be in flight when it is gone.
    await waitFor("the drain logged", () => out.includes('"drained; exiting"'), 5_000).catch((e) => {
      throw new Error(`${e.message}\nstdout:\n${out.slice(-2000)}\nstderr:\n${err.slice(-2000)}`);
    });
  } finally {
    npm.kill("SIGKILL");
  }
}, 90_000);
