// Keys, tokens and misbehaving clients for the security tests. Keys are made fresh per
// run and written to a temp dir; nothing here talks to anything but loopback.
import { exportJWK, exportSPKI, generateKeyPair, type JWTPayload, SignJWT } from "jose";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { upgradeRequest } from "./clients.ts";

export const SECRET = "test-secret-0123456789-abcdefghijklmnop";
export const PUBLISH_TOKEN = "publish-token-0123456789";

export type Alg = "HS256" | "EdDSA" | "ES256" | "RS256";
export type Signer = { alg: Alg; key: CryptoKey | Uint8Array; kid?: string };

const b64url = (s: string) => Buffer.from(s).toString("base64url");

export function hsSigner(secret = SECRET): Signer {
  return { alg: "HS256", key: new TextEncoder().encode(secret) };
}

/** Signs any payload as given (no defaults added), so tests control every claim. */
export async function sign(signer: Signer, payload: JWTPayload & Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: signer.alg, ...(signer.kid ? { kid: signer.kid } : {}), ...header }).sign(signer.key as never);
}

/** A token that claims `alg: none`: well-formed, unsigned. */
export function unsigned(payload: Record<string, unknown>): string {
  return `${b64url(JSON.stringify({ alg: "none", typ: "JWT" }))}.${b64url(JSON.stringify(payload))}.`;
}

export const now = () => Math.floor(Date.now() / 1000);

/** sub/svc plus an exp an hour away: the claims of an ordinary good token. */
export function claims(svc: string, user: string, extra: Record<string, unknown> = {}) {
  return { sub: user, svc, exp: now() + 3600, ...extra };
}

export type KeySet = {
  dir: string;
  signers: Record<"EdDSA" | "ES256" | "RS256", Signer>;
  /** same algorithms, keys the gateway does not know */
  foreign: Record<"EdDSA" | "ES256" | "RS256", Signer>;
  /** PEM (SPKI) public key files, one per algorithm */
  pem: Record<"EdDSA" | "ES256" | "RS256", string>;
  /** a JWKS file holding all three public keys */
  jwks: string;
  cleanup(): void;
};

export async function makeKeys(): Promise<KeySet> {
  const dir = mkdtempSync(join(tmpdir(), "wsgate-keys-"));
  const signers = {} as KeySet["signers"];
  const foreign = {} as KeySet["foreign"];
  const pem = {} as KeySet["pem"];
  const jwks: unknown[] = [];
  for (const alg of ["EdDSA", "ES256", "RS256"] as const) {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
    const kid = `k-${alg}`;
    signers[alg] = { alg, key: privateKey, kid };
    foreign[alg] = { alg, key: (await generateKeyPair(alg)).privateKey, kid };
    pem[alg] = join(dir, `${alg}.pem`);
    writeFileSync(pem[alg], await exportSPKI(publicKey));
    jwks.push({ ...(await exportJWK(publicKey)), kid, alg, use: "sig" });
  }
  const jwksPath = join(dir, "jwks.json");
  writeFileSync(jwksPath, JSON.stringify({ keys: jwks }));
  return { dir, signers, foreign, pem, jwks: jwksPath, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A self-signed certificate for 127.0.0.1 / localhost, made with openssl. */
export function makeCert(): { dir: string; cert: string; key: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), "wsgate-tls-"));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const r = Bun.spawnSync(
    [
      "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
      "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert,
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  if (r.exitCode !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  return { dir, cert, key, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Resident set size of a process, in MiB. */
export function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : 0;
}

/** Samples a process's RSS every 50 ms until stopped; returns the peak. */
export function rssSampler(pid: number) {
  let peak = rssMiB(pid);
  const t = setInterval(() => {
    try {
      peak = Math.max(peak, rssMiB(pid));
    } catch {
      // process gone: the test's health checks report it
    }
  }, 50);
  return {
    stop() {
      clearInterval(t);
      return peak;
    },
  };
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

/**
 * A client that completes the upgrade and then never reads a byte: bash holds the
 * socket open on fd 3 and sleeps, so the kernel buffers fill and the gateway's
 * outbound queue is all that can grow. Stopped by its PID.
 */
export function stalledReader(port: number, headers: Record<string, string>): Subprocess {
  const req = upgradeRequest(headers);
  return Bun.spawn(["bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/${port}; printf '%s' "$REQ" >&3; exec sleep 300`], {
    env: { ...process.env, REQ: req },
    stdout: "ignore",
    stderr: "ignore",
  });
}
