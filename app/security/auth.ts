// Who is on the other end of an upgrade. Development mode trusts plain cookies
// (identity.ts); production mode trusts only a JWT signed with the configured key.
// The signature is checked by `jose`; this module only decides where the token is
// read from and what a verified token may name.
import {
  createLocalJWKSet,
  errors,
  importSPKI,
  importX509,
  type JSONWebKeySet,
  type JWTPayload,
  jwtVerify,
  type JWTVerifyGetKey,
} from "jose";
import type { Config } from "../ops/config.ts";
import { type Identity, type IdentityError, identityFromCookies, readCookie } from "./identity.ts";
import { ID_RULE_TEXT, idError, isId } from "../../protocol/ids.ts";

/** Asymmetric algorithms accepted with WSGATE_JWT_PUBLIC_KEY; HS256 only with WSGATE_JWT_SECRET. */
export const PUBLIC_KEY_ALGORITHMS = ["EdDSA", "ES256", "RS256"] as const;

/** Reads a whole text file; each adapter supplies its runtime's call so app/ stays web-standard. */
export type ReadTextFile = (path: string) => string;

type Verifier =
  | { kind: "secret"; key: Uint8Array; algorithms: string[] }
  | { kind: "key"; key: CryptoKey; algorithms: string[] }
  | { kind: "jwks"; key: JWTVerifyGetKey; algorithms: string[] };

/** A problem with the configured key material: the start-up line to print. */
export class KeyError extends Error {}

export type Resolved = Identity | IdentityError;

export class Auth {
  readonly production: boolean;
  private readonly cookie: string;
  private readonly queryParam: string | null;
  private readonly verifyOptions: Parameters<typeof jwtVerify>[2];

  private constructor(
    private readonly verifier: Verifier | null,
    config: Config,
  ) {
    this.production = verifier !== null;
    this.cookie = config.jwtCookie;
    this.queryParam = config.jwtQueryParam;
    this.verifyOptions = {
      algorithms: verifier?.algorithms,
      audience: config.jwtAudience,
      issuer: config.jwtIssuer,
      clockTolerance: config.jwtLeewayS,
      requiredClaims: ["exp"],
    };
  }

  /** Development mode, or HS256 (the secret is in the environment, nothing to read). */
  static fromConfig(config: Config): Auth {
    if (config.jwtPublicKey) {
      throw new KeyError("config: WSGATE_JWT_PUBLIC_KEY is set but this adapter does not load key files (use secretsOrExit)");
    }
    if (config.jwtSecret) {
      return new Auth({ kind: "secret", key: new TextEncoder().encode(config.jwtSecret), algorithms: ["HS256"] }, config);
    }
    return new Auth(null, config);
  }

  /** Production with a public key: PEM (SPKI or certificate) or a JWKS / single JWK in JSON. */
  static async load(config: Config, readTextFile: ReadTextFile): Promise<Auth> {
    const path = config.jwtPublicKey;
    if (!path) return Auth.fromConfig(config);
    let text: string;
    try {
      text = readTextFile(path);
    } catch (err) {
      throw new KeyError(`config: WSGATE_JWT_PUBLIC_KEY=${JSON.stringify(path)} rejected: cannot read the file (${errText(err)})`);
    }
    try {
      return new Auth(await parseKeyFile(text), config);
    } catch (err) {
      throw new KeyError(`config: WSGATE_JWT_PUBLIC_KEY=${JSON.stringify(path)} rejected: ${errText(err)}`);
    }
  }

  /** What the start-up log says about identity. */
  describe(): Record<string, unknown> {
    if (!this.verifier) return { mode: "development", identity: "plain `service` and `user` cookies (unauthenticated)" };
    const from = ["Authorization: Bearer", `cookie ${this.cookie}`];
    if (this.queryParam) from.push(`query ${this.queryParam} (less safe: URLs end up in logs)`);
    return {
      mode: "production",
      identity: "signed JWT (sub = user, svc = service, exp required)",
      algorithms: this.verifier.algorithms,
      keySource: this.verifier.kind,
      tokenFrom: from,
      audience: this.verifyOptions!.audience,
      issuer: this.verifyOptions!.issuer,
    };
  }

  /**
   * The identity an upgrade request carries, or the HTTP refusal. Synchronous in
   * development mode; a Promise in production, where the signature check is async.
   */
  identify(req: Request): Resolved | Promise<Resolved> {
    const cookies = req.headers.get("cookie");
    if (!this.verifier) return identityFromCookies(cookies);
    const token = this.tokenFrom(req, cookies);
    if (typeof token !== "string") return token;
    return this.verify(token);
  }

  /** Verifies one token; never throws (every failure becomes a 401 or 403 naming the reason). */
  async verify(token: string): Promise<Resolved> {
    const v = this.verifier!;
    let payload: JWTPayload;
    try {
      // The key is chosen by configuration, never by the token: `algorithms` pins it.
      payload = (await jwtVerify(token, v.key as never, this.verifyOptions)).payload;
    } catch (err) {
      return { status: 401, error: tokenErrorText(err) };
    }
    return identityFromClaims(payload);
  }

  /** Authorization header first, then the query parameter, then the cookie. */
  private tokenFrom(req: Request, cookies: string | null): string | IdentityError {
    const authz = req.headers.get("authorization");
    if (authz !== null) {
      const m = /^Bearer +([^ ]+) *$/i.exec(authz);
      if (!m) return { status: 401, error: "Authorization header must be `Bearer <token>`" };
      return m[1];
    }
    if (this.queryParam) {
      const q = queryValues(req.url, this.queryParam);
      if (q.length > 1 && q.some((x) => x !== q[0])) return { status: 400, error: `query parameter ${this.queryParam} is given twice with different values` };
      if (q.length) return q[0];
    }
    const c = readCookie(cookies, this.cookie);
    if (typeof c === "string") return c;
    if (c) return c;
    const where = [`Authorization: Bearer`, `cookie ${this.cookie}`];
    if (this.queryParam) where.push(`query parameter ${this.queryParam}`);
    return { status: 401, error: `token is missing (send it as ${where.join(", or ")})` };
  }
}

/**
 * What a verified token may name. Both claims become NATS subject tokens, so a valid
 * signature over `sub: "*"` must still never reach a subscription.
 */
export function identityFromClaims(payload: JWTPayload): Resolved {
  const user = payload.sub;
  const svc = (payload as { svc?: unknown }).svc;
  if (typeof user !== "string") return { status: 403, error: "token has no string sub claim (the user)" };
  if (typeof svc !== "string") return { status: 403, error: "token has no string svc claim (the service)" };
  if (!isId(user)) return { status: 403, error: `token claim sub is invalid: ${idError("it")}` };
  if (!isId(svc)) return { status: 403, error: `token claim svc is invalid: ${idError("it")}` };
  const exp = payload.exp;
  // jose has checked exp is a number in the future (within the leeway).
  if (typeof exp !== "number" || !Number.isFinite(exp)) return { status: 401, error: "token has no exp claim" };
  const groups = (payload as { groups?: unknown }).groups;
  if (groups === undefined) return { svc, user, exp };
  // Group names become subject tokens too.
  if (!Array.isArray(groups) || groups.length > MAX_CLAIMED_GROUPS || !groups.every(isId)) {
    return { status: 403, error: `token claim groups is invalid: it must be a list of at most ${MAX_CLAIMED_GROUPS} names matching ${ID_RULE_TEXT}` };
  }
  return { svc, user, exp, groups: [...new Set(groups as string[])] };
}

/** Groups one token may join its connection to. */
export const MAX_CLAIMED_GROUPS = 256;

function queryValues(url: string, name: string): string[] {
  const q = url.indexOf("?");
  if (q < 0) return [];
  try {
    return new URLSearchParams(url.slice(q + 1)).getAll(name);
  } catch {
    return [];
  }
}

function tokenErrorText(err: unknown): string {
  if (err instanceof errors.JWTExpired) return "token expired";
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === "missing") return `token has no ${err.claim} claim`;
    if (err.claim === "nbf") return "token is not valid yet (nbf)";
    return `token claim ${err.claim} is not accepted`;
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return "token algorithm is not accepted";
  if (err instanceof errors.JWSSignatureVerificationFailed) return "token signature is invalid";
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return "token was not signed by a configured key";
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return "token is malformed";
  return "token is not accepted";
}

async function parseKeyFile(text: string): Promise<Verifier> {
  const trimmed = text.trim();
  if (trimmed.startsWith("{")) {
    let json: unknown;
    try {
      json = JSON.parse(trimmed);
    } catch {
      throw new Error("the file is neither PEM nor valid JSON");
    }
    const set = (Array.isArray((json as JSONWebKeySet).keys) ? json : { keys: [json] }) as JSONWebKeySet;
    const algorithms = new Set<string>();
    for (const jwk of set.keys) {
      if (jwk.d || jwk.k) throw new Error("the JWKS holds a private or symmetric key; give only public keys");
      const alg = jwk.alg ?? algFromJwk(jwk as Record<string, unknown>);
      if (!alg || !(PUBLIC_KEY_ALGORITHMS as readonly string[]).includes(alg)) {
        throw new Error(`JWKS key ${jwk.kid ?? "(no kid)"} is not one of ${PUBLIC_KEY_ALGORITHMS.join(", ")}`);
      }
      algorithms.add(alg);
    }
    if (algorithms.size === 0) throw new Error("the JWKS holds no keys");
    return { kind: "jwks", key: createLocalJWKSet(set), algorithms: [...algorithms] };
  }
  if (!trimmed.startsWith("-----BEGIN")) throw new Error("the file is neither PEM nor JSON (JWKS)");
  if (/PRIVATE KEY-----/.test(trimmed)) throw new Error("the file holds a private key; give the public key");
  const isCert = trimmed.includes("-----BEGIN CERTIFICATE-----");
  // The PEM does not name its algorithm: the key type decides, and only one of these fits it.
  for (const alg of PUBLIC_KEY_ALGORITHMS) {
    try {
      const key = isCert ? await importX509(trimmed, alg) : await importSPKI(trimmed, alg);
      return { kind: "key", key: key as CryptoKey, algorithms: [alg] };
    } catch {
      // not this key type
    }
  }
  throw new Error(`the PEM key is not an Ed25519, P-256 or RSA public key (accepted: ${PUBLIC_KEY_ALGORITHMS.join(", ")})`);
}

function algFromJwk(jwk: Record<string, unknown>): string | undefined {
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") return "EdDSA";
  if (jwk.kty === "EC" && jwk.crv === "P-256") return "ES256";
  if (jwk.kty === "RSA") return "RS256";
  return undefined;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
