// Token verification, key loading and access rules, in process (the same cases run
// against real gateways in tests/security.test.ts).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { OriginPolicy, ServiceToken } from "../../app/security/access.ts";
import { Auth, identityFromClaims, KeyError } from "../../app/security/auth.ts";
import { readCookie } from "../../app/security/identity.ts";
import { loadConfig } from "../../app/ops/config.ts";
import { claims, hsSigner, type KeySet, makeKeys, now, SECRET, sign, unsigned } from "../helpers/security.ts";

let keys: KeySet;
beforeAll(async () => {
  keys = await makeKeys();
});
afterAll(() => keys?.cleanup());

const read = (p: string) => readFileSync(p, "utf8");
const req = (headers: Record<string, string>, url = "http://gw/ws") => new Request(url, { headers });

test("development mode reads the plain cookies; production mode ignores them", async () => {
  const dev = Auth.fromConfig(loadConfig({}));
  expect(dev.production).toBe(false);
  expect(dev.identify(req({ cookie: "service=s; user=u" }))).toEqual({ svc: "s", user: "u" });
  const prod = Auth.fromConfig(loadConfig({ WSGATE_JWT_SECRET: SECRET }));
  expect(prod.production).toBe(true);
  expect(await prod.identify(req({ cookie: "service=s; user=u" }))).toMatchObject({ status: 401 });
});

test("HS256: where the token is read from, and in which order", async () => {
  const auth = Auth.fromConfig(loadConfig({ WSGATE_JWT_SECRET: SECRET, WSGATE_JWT_COOKIE: "jwt" }));
  const a = await sign(hsSigner(), claims("s", "from-header"));
  const q = await sign(hsSigner(), claims("s", "from-query"));
  const c = await sign(hsSigner(), claims("s", "from-cookie"));
  expect(await auth.identify(req({ authorization: `Bearer ${a}`, cookie: `jwt=${c}` }, `http://gw/ws?access_token=${q}`))).toMatchObject({ user: "from-header" });
  expect(await auth.identify(req({ cookie: `jwt=${c}` }, `http://gw/ws?access_token=${q}`))).toMatchObject({ user: "from-query" });
  expect(await auth.identify(req({ cookie: `token=${a}; jwt=${c}` }))).toMatchObject({ user: "from-cookie", svc: "s" });
  // The default cookie name no longer counts once another is configured.
  expect(await auth.identify(req({ cookie: `token=${c}` }))).toMatchObject({ status: 401 });
  const noQuery = Auth.fromConfig(loadConfig({ WSGATE_JWT_SECRET: SECRET, WSGATE_JWT_QUERY_PARAM: "off" }));
  expect(await noQuery.identify(req({}, `http://gw/ws?access_token=${q}`))).toMatchObject({ status: 401, error: expect.not.stringContaining("query") });
});

test("exp is carried into the identity; the refusals name their reason", async () => {
  const auth = Auth.fromConfig(loadConfig({ WSGATE_JWT_SECRET: SECRET, WSGATE_JWT_LEEWAY_S: "0", WSGATE_JWT_AUDIENCE: "a1,a2", WSGATE_JWT_ISSUER: "iss" }));
  const exp = now() + 100;
  const ok = await auth.verify(await sign(hsSigner(), { sub: "u", svc: "s", exp, aud: "a2", iss: "iss" }));
  expect(ok).toEqual({ svc: "s", user: "u", exp });
  const cases: [string, Promise<string> | string, RegExp][] = [
    ["expired", sign(hsSigner(), { sub: "u", svc: "s", exp: now() - 1, aud: "a1", iss: "iss" }), /expired/],
    ["no exp", sign(hsSigner(), { sub: "u", svc: "s", aud: "a1", iss: "iss" }), /no exp claim/],
    ["nbf", sign(hsSigner(), { sub: "u", svc: "s", exp, nbf: now() + 60, aud: "a1", iss: "iss" }), /not valid yet/],
    ["aud", sign(hsSigner(), { sub: "u", svc: "s", exp, aud: "a3", iss: "iss" }), /aud/],
    ["iss", sign(hsSigner(), { sub: "u", svc: "s", exp, aud: "a1", iss: "other" }), /iss/],
    ["alg none", unsigned({ sub: "u", svc: "s", exp, aud: "a1", iss: "iss" }), /./],
    ["foreign", sign(hsSigner("x".repeat(40)), { sub: "u", svc: "s", exp, aud: "a1", iss: "iss" }), /signature/],
    ["asymmetric", sign(keys.signers.ES256, { sub: "u", svc: "s", exp, aud: "a1", iss: "iss" }), /algorithm/],
    ["garbage", "not-a-token", /malformed/],
  ];
  for (const [what, token, reason] of cases) {
    const r = await auth.verify(await token);
    expect({ what, r }).toEqual({ what, r: { status: 401, error: expect.stringMatching(reason) } });
  }
});

test("claims: sub and svc must be subject-safe strings", () => {
  const exp = now() + 60;
  expect(identityFromClaims({ sub: "u-1", svc: "s_1", exp })).toEqual({ svc: "s_1", user: "u-1", exp });
  for (const bad of ["*", ">", "a.b", "", "x".repeat(65), "é", "a b"]) {
    expect(identityFromClaims({ sub: bad, svc: "s", exp })).toMatchObject({ status: 403 });
    expect(identityFromClaims({ sub: "u", svc: bad, exp })).toMatchObject({ status: 403 });
  }
  expect(identityFromClaims({ sub: 1 as never, svc: "s", exp })).toMatchObject({ status: 403 });
  expect(identityFromClaims({ sub: "u", exp })).toMatchObject({ status: 403 });
});

test("public keys: PEM for each algorithm, a JWKS with all three, and clear refusals for anything else", async () => {
  for (const alg of ["EdDSA", "ES256", "RS256"] as const) {
    const auth = await Auth.load(loadConfig({ WSGATE_JWT_PUBLIC_KEY: keys.pem[alg] }), read);
    expect(auth.describe()).toMatchObject({ algorithms: [alg], keySource: "key" });
    expect(await auth.verify(await sign(keys.signers[alg], claims("s", "u")))).toMatchObject({ user: "u" });
    expect(await auth.verify(await sign(keys.foreign[alg], claims("s", "u")))).toMatchObject({ status: 401 });
  }
  const set = await Auth.load(loadConfig({ WSGATE_JWT_PUBLIC_KEY: keys.jwks }), read);
  for (const alg of ["EdDSA", "ES256", "RS256"] as const) {
    expect(await set.verify(await sign(keys.signers[alg], claims("s", alg)))).toMatchObject({ user: alg });
  }
  const bad = (name: string, text: string) => {
    const p = join(keys.dir, name);
    writeFileSync(p, text);
    return Auth.load(loadConfig({ WSGATE_JWT_PUBLIC_KEY: p }), read);
  };
  await expect(bad("priv.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")).rejects.toThrow("private key");
  await expect(bad("junk.txt", "hello")).rejects.toThrow("neither PEM nor JSON");
  await expect(bad("sym.json", JSON.stringify({ keys: [{ kty: "oct", k: "c2VjcmV0" }] }))).rejects.toThrow("private or symmetric");
  await expect(bad("p384.json", JSON.stringify({ keys: [{ kty: "EC", crv: "P-384", x: "a", y: "b" }] }))).rejects.toThrow("is not one of");
  await expect(Auth.load(loadConfig({ WSGATE_JWT_PUBLIC_KEY: join(keys.dir, "nope.pem") }), read)).rejects.toThrow(KeyError);
  expect(() => Auth.fromConfig(loadConfig({ WSGATE_JWT_PUBLIC_KEY: keys.jwks }))).toThrow(KeyError);
});

test("cookies: percent-decoding, quotes, and ambiguity", () => {
  expect(readCookie("a=1; token=%61%62", "token")).toBe("ab");
  expect(readCookie('token="q"', "token")).toBe("q");
  expect(readCookie("tokenx=1; xtoken=2", "token")).toBeUndefined();
  expect(readCookie("token=a; token=b", "token")).toMatchObject({ status: 400 });
  expect(readCookie("token=a; token=a", "token")).toBe("a");
  expect(readCookie("token=%E0%A4%A", "token")).toMatchObject({ status: 400 });
  expect(readCookie(null, "token")).toBeUndefined();
});

test("Origin allowlist: exact origins, one-level-or-deeper wildcards, nothing else", () => {
  const p = new OriginPolicy(["https://app.example.com", "http://localhost:3000", "https://*.example.org"]);
  const allowed = [undefined, null, "https://app.example.com", "https://APP.example.com", "https://app.example.com:443", "http://localhost:3000", "https://a.example.org", "https://a.b.example.org"];
  const refused = ["null", "", "https://example.org", "https://evilexample.org", "http://a.example.org", "https://a.example.org:8443", "https://app.example.com.evil", "http://localhost:3001", "https://app.example.com/path", "https://user@app.example.com", "not a url"];
  for (const o of allowed) expect({ o, ok: p.allows(o) }).toEqual({ o, ok: true });
  for (const o of refused) expect({ o, ok: p.allows(o) }).toEqual({ o, ok: false });
  expect(new OriginPolicy(undefined).allows("https://anything.test")).toBe(true);
});

test("service token: only the exact bearer token passes", async () => {
  const t = new ServiceToken("publish-token-0123456789");
  expect(await t.check("Bearer publish-token-0123456789")).toBe(true);
  expect(await t.check("bearer publish-token-0123456789")).toBe(true);
  for (const h of [undefined, "", "publish-token-0123456789", "Bearer publish-token-012345678", "Bearer publish-token-01234567890", "Basic publish-token-0123456789"]) {
    expect(await t.check(h)).toBe(false);
  }
  expect(await new ServiceToken(undefined).check("Bearer x")).toBe(false);
});

test("config: the new settings, their defaults and their rules", () => {
  const c = loadConfig({});
  expect(c).toMatchObject({
    jwtSecret: undefined,
    jwtPublicKey: undefined,
    jwtCookie: "token",
    jwtQueryParam: "access_token",
    jwtLeewayS: 5,
    allowedOrigins: undefined,
    publishToken: undefined,
    maxMsgsPerSec: 100,
    msgBurst: 200,
    maxConnsPerUser: 32,
    maxUpgradesPerSec: 5000,
    maxBufferedBytes: 4 * 1024 * 1024,
  });
  expect(() => loadConfig({ WSGATE_JWT_SECRET: "short" })).toThrow("at least 32 characters");
  expect(() => loadConfig({ WSGATE_JWT_SECRET: "short" })).not.toThrow("short");
  expect(() => loadConfig({ WSGATE_JWT_SECRET: SECRET, WSGATE_JWT_PUBLIC_KEY: "/k.pem" })).toThrow("not both");
  expect(() => loadConfig({ WSGATE_ALLOWED_ORIGINS: "app.example.com" })).toThrow("WSGATE_ALLOWED_ORIGINS");
  expect(() => loadConfig({ WSGATE_TLS_CERT: "/c.pem" })).toThrow("WSGATE_TLS_KEY is required when WSGATE_TLS_CERT is set");
  expect(() => loadConfig({ WSGATE_MAX_BUFFERED_BYTES: "1000" })).toThrow("at least 65536");
  expect(loadConfig({ WSGATE_MAX_MSGS_PER_SEC: "10" }).msgBurst).toBe(20);
});
