// The gateway against nats-servers that demand credentials or TLS, each configured the
// way an operator would: user/password, token, NKey, TLS with a private CA (with and
// without client certificates), accounts with a .creds file. Every case ends with a
// message crossing both ways, and no secret in anything the gateway printed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ConnectionOptions, connect, credsAuthenticator, nkeyAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { type Account, createAccount, createOperator, createUser, encodeAccount, encodeOperator, encodeUser, fmtCreds } from "@nats-io/jwt";
import { createUser as createUserKey } from "@nats-io/nkeys";
import { bunClient, cookie } from "./helpers/clients.ts";
import { type Gateway, type Nats, RUNTIMES, type Runtime, startGateway, startNats, stopNatsAndClean, waitFor } from "./helpers/procs.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
let dir: string;
let caseNo = 0;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "wsgate-nats-auth-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function openssl(...args: string[]) {
  const r = Bun.spawnSync(["openssl", ...args], { cwd: dir, stderr: "pipe", stdout: "ignore" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.toString()}`);
}

/** A private CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
function makePki() {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl("req", "-x509", ...ec, "-days", "1", "-subj", "/CN=wsgate test CA", "-keyout", "ca.key", "-out", "ca.pem");
  file("server.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  file("client.ext", "extendedKeyUsage=clientAuth\n");
  for (const [who, ext] of [["server", "server.ext"], ["client", "client.ext"]]) {
    openssl("req", ...ec, "-subj", `/CN=wsgate test ${who}`, "-keyout", `${who}.key`, "-out", `${who}.csr`);
    openssl("x509", "-req", "-in", `${who}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", `${who}.pem`);
  }
  return { ca: join(dir, "ca.pem"), serverCert: join(dir, "server.pem"), serverKey: join(dir, "server.key"), clientCert: join(dir, "client.pem"), clientKey: join(dir, "client.key") };
}

type Setup = { nats: Nats; admin: NatsConnection; gw: Gateway };
const running: Setup[] = [];
afterAll(async () => {
  for (const s of running) {
    await s.gw.stop("SIGKILL");
    await s.admin.close();
    await stopNatsAndClean(s.nats);
  }
});

/** nats-server with `config`, the test's own connection with `adminOpts`, and a Bun gateway with `env(url)`. */
async function setup(config: string, adminOpts: Partial<ConnectionOptions>, env: (port: number) => Record<string, string>, runtime: Runtime = "bun"): Promise<Setup> {
  const nats = await startNats({ config });
  const admin = await connect({ servers: `127.0.0.1:${nats.port}`, ...adminOpts });
  const gw = await startGateway(runtime, { env: { WSGATE_MAILBOX: "off", ...env(nats.port) } });
  const s = { nats, admin, gw };
  running.push(s);
  return s;
}

/** A frame from a client reaches ws.send.<svc>.<user>, and a message on ws.recv.<svc>.<user> reaches the client. */
async function roundTrip({ nats, admin, gw }: Setup) {
  const user = `u${++caseNo}`;
  const sub = admin.subscribe(`ws.send.auth.${user}`, { max: 1 });
  await admin.flush();
  const c = await bunClient(gw.ws, { Cookie: cookie("auth", user) });
  await waitFor("the gateway's subscription for the user", async () => (await nats.subsOf(gw.nodeId)).includes(`ws.recv.auth.${user}`));
  admin.publish(`ws.recv.auth.${user}`, enc.encode("to the client"));
  expect((await c.waitFor(1))[0].data).toBe("to the client");
  c.send("to the service");
  for await (const m of sub) expect(dec.decode(m.data)).toBe("to the service");
  c.close();
}

function expectNoSecret(gw: Gateway, ...secrets: string[]) {
  const out = gw.output();
  for (const s of secrets) expect(out.includes(s) ? `output contains ${s}` : "no secret").toBe("no secret");
}

describe("bun: NATS authentication", () => {
  const pw = "s3cret-pw-4711";

  test("user and password in NATS_URL: connected, and logged as nats://alice:***@", async () => {
    const s = await setup(`authorization { users = [ { user: alice, password: "${pw}" } ] }`, { user: "alice", pass: pw }, (port) => ({
      NATS_URL: `nats://alice:${pw}@127.0.0.1:${port}`,
    }));
    await roundTrip(s);
    expect(s.gw.output()).toContain(`nats://alice:***@127.0.0.1:${s.nats.port}`);
    expectNoSecret(s.gw, pw);
  });

  test("user and password in NATS_USER and NATS_PASSWORD: connected, password never printed", async () => {
    const s = await setup(`authorization { users = [ { user: bob, password: "${pw}" } ] }`, { user: "bob", pass: pw }, (port) => ({
      NATS_URL: `nats://127.0.0.1:${port}`,
      NATS_USER: "bob",
      NATS_PASSWORD: pw,
    }));
    await roundTrip(s);
    expect(s.gw.output()).toContain("user bob with password (NATS_USER)");
    expectNoSecret(s.gw, pw);
  });

  test("token in NATS_URL and in NATS_TOKEN: connected, token never printed", async () => {
    const token = "tok-0123456789abcdef";
    const a = await setup(`authorization { token: "${token}" }`, { token }, (port) => ({ NATS_URL: `nats://${token}@127.0.0.1:${port}` }));
    await roundTrip(a);
    expect(a.gw.output()).toContain(`nats://***@127.0.0.1:${a.nats.port}`);
    expectNoSecret(a.gw, token);
    const b = await setup(`authorization { token: "${token}" }`, { token }, (port) => ({ NATS_URL: `nats://127.0.0.1:${port}`, NATS_TOKEN: token }));
    await roundTrip(b);
    expectNoSecret(b.gw, token);
  });

  test("NKey seed file: connected by signing the server's nonce, seed never printed", async () => {
    const kp = createUserKey();
    const seed = dec.decode(kp.getSeed());
    const seedFile = file("gateway.nk", seed + "\n");
    const admin = createUserKey();
    const s = await setup(`authorization { users = [ { nkey: ${kp.getPublicKey()} }, { nkey: ${admin.getPublicKey()} } ] }`, { authenticator: nkeyAuthenticator(admin.getSeed()) }, (port) => ({
      NATS_URL: `nats://127.0.0.1:${port}`,
      NATS_NKEY_SEED_FILE: seedFile,
    }));
    await roundTrip(s);
    expectNoSecret(s.gw, seed);
  });

  test("a .creds file (operator, account and user JWTs): connected as the account's user", async () => {
    const operator = createOperator();
    const account = createAccount();
    const adminKey = createUser();
    const operatorJwt = await encodeOperator("wsgate-test-op", operator);
    // No limit on the account (the library's defaults allow no connection at all).
    const limits = { conn: -1, subs: -1, data: -1, payload: -1, imports: -1, exports: -1, leaf: -1, wildcards: true };
    const accountJwt = await encodeAccount("WSGATE", account, { limits: limits as unknown as Account["limits"] }, { signer: operator });
    const user = createUser();
    const creds = fmtCreds(await encodeUser("gateway", user, account), user);
    const credsFile = file("gateway.creds", creds);
    const adminCreds = fmtCreds(await encodeUser("admin", adminKey, account), adminKey);
    const config = `operator: ${operatorJwt}\nresolver: MEMORY\nresolver_preload: { ${account.getPublicKey()}: ${accountJwt} }\n`;
    const s = await setup(config, { authenticator: credsAuthenticator(adminCreds) }, (port) => ({ NATS_URL: `nats://127.0.0.1:${port}`, NATS_CREDS_FILE: credsFile }));
    await roundTrip(s);
    expect(s.gw.output()).toContain(`creds (${credsFile})`);
    expectNoSecret(s.gw, dec.decode(user.getSeed()));
  });

  test("a wrong password: one clear log line, /readyz 503, and the password in no output", async () => {
    const nats = await startNats({ config: `authorization { users = [ { user: alice, password: "${pw}" } ] }` });
    const wrong = "not-the-pw-9931";
    const gw = await startGateway("bun", { env: { NATS_URL: `nats://alice:${wrong}@127.0.0.1:${nats.port}`, WSGATE_MAILBOX: "off" }, waitReady: false });
    try {
      await waitFor("the refused-credentials log line", () => gw.output().includes("nats refused the gateway's credentials"), 30_000);
      const r = await gw.fetch("/readyz");
      expect(r.status).toBe(503);
      const line = gw.output().split("\n").find((l) => l.includes("nats refused the gateway's credentials"))!;
      expect(JSON.parse(line)).toMatchObject({ level: "error", servers: `nats://alice:***@127.0.0.1:${nats.port}`, auth: "user alice with password (NATS_URL)" });
      expectNoSecret(gw, wrong);
    } finally {
      await gw.stop("SIGKILL");
      await stopNatsAndClean(nats);
    }
  });
});

let pki: ReturnType<typeof makePki>;
const tlsBlock = (verify: boolean) => `tls { cert_file: "${pki.serverCert}", key_file: "${pki.serverKey}", ca_file: "${pki.ca}", verify: ${verify}, timeout: 5 }`;
beforeAll(() => {
  pki = makePki();
});

describe("bun: NATS over TLS with a private CA", () => {
  test("NATS_TLS_CA: the server's certificate is verified against the CA, and messages flow", async () => {
    const s = await setup(tlsBlock(false), { tls: { caFile: pki.ca } }, (port) => ({ NATS_URL: `tls://127.0.0.1:${port}`, NATS_TLS_CA: pki.ca }));
    await roundTrip(s);
    expect(s.gw.output()).toContain(`required (CA: ${pki.ca})`);
  });

  test("client certificate verification: connected with NATS_TLS_CERT and NATS_TLS_KEY, refused without them", async () => {
    const clientTls = { caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey };
    const s = await setup(tlsBlock(true), { tls: clientTls }, (port) => ({
      NATS_URL: `nats://127.0.0.1:${port}`,
      NATS_TLS_CA: pki.ca,
      NATS_TLS_CERT: pki.clientCert,
      NATS_TLS_KEY: pki.clientKey,
    }));
    await roundTrip(s);
    const without = await startGateway("bun", { env: { NATS_URL: `nats://127.0.0.1:${s.nats.port}`, NATS_TLS_CA: pki.ca, WSGATE_MAILBOX: "off" }, waitReady: false });
    try {
      await waitFor("a failed connect logged", () => without.output().includes("does the server require a client certificate"), 30_000);
      expect((await without.fetch("/readyz")).status).toBe(503);
    } finally {
      await without.stop("SIGKILL");
    }
  });
});

// The same files through Node's and Deno's file readers (Deno: read permission for exactly these paths).
for (const runtime of RUNTIMES.filter((r) => r !== "bun")) {
  describe(`${runtime}: NATS NKey and TLS client certificate`, () => {
    test("an NKey seed file and a client certificate checked by the server: connected, and messages flow", async () => {
      const kp = createUserKey();
      const admin = createUserKey();
      const seedFile = file(`${runtime}.nk`, dec.decode(kp.getSeed()));
      const config = `${tlsBlock(true)}\nauthorization { users = [ { nkey: ${kp.getPublicKey()} }, { nkey: ${admin.getPublicKey()} } ] }`;
      const clientTls = { caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey };
      const s = await setup(config, { tls: clientTls, authenticator: nkeyAuthenticator(admin.getSeed()) }, (port) => ({
        NATS_URL: `tls://127.0.0.1:${port}`,
        NATS_NKEY_SEED_FILE: seedFile,
        NATS_TLS_CA: pki.ca,
        NATS_TLS_CERT: pki.clientCert,
        NATS_TLS_KEY: pki.clientKey,
      }), runtime);
      await roundTrip(s);
      expectNoSecret(s.gw, dec.decode(kp.getSeed()));
    });
  });
}
