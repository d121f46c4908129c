// The NATS settings with their files read (NKey seed, .creds, TLS CA and client
// certificate), through the runtime's file reader the adapter passes in: the core
// never touches the file system itself.
import { KeyError, type ReadTextFile } from "../security/auth.ts";
import type { NatsSettings } from "./nats-options.ts";

/** What the broker connects with: the settings with the key and certificate files read. */
export type NatsLink = {
  servers: string[];
  redacted: string;
  auth:
    | { kind: "none" }
    | { kind: "user"; user: string; pass: string }
    | { kind: "token"; token: string }
    | { kind: "nkey"; seed: string }
    | { kind: "creds"; creds: string };
  /** PEM texts; `{}` means TLS required with the system's CAs */
  tls: { ca?: string; cert?: string; key?: string } | null;
  /** for the start log: which method and which files, never a secret */
  describe: { url: string; auth: string; tls: string };
};

/**
 * Reads the seed, creds and TLS files named in the settings; a missing or malformed file
 * is a KeyError naming the variable. Without a reader (an adapter that loads no files)
 * only settings that need no file are accepted.
 */
export function loadNatsLink(s: NatsSettings, readTextFile?: ReadTextFile): NatsLink {
  const read = (name: string, path: string, looksRight: (text: string) => boolean, what: string): string => {
    if (!readTextFile) throw new KeyError(`config: ${name} is set but this adapter does not load key files (use secretsOrExit)`);
    let text: string;
    try {
      text = readTextFile(path);
    } catch (err) {
      throw new KeyError(`config: ${name}=${JSON.stringify(path)} rejected: cannot read the file (${err instanceof Error ? err.message : String(err)})`);
    }
    if (!looksRight(text)) throw new KeyError(`config: ${name}=${JSON.stringify(path)} rejected: not ${what}`);
    return text;
  };
  let auth: NatsLink["auth"];
  let authText: string;
  switch (s.auth.kind) {
    case "none":
      auth = s.auth;
      authText = "none";
      break;
    case "user":
      auth = { kind: "user", user: s.auth.user, pass: s.auth.pass };
      authText = `user ${s.auth.user} with password (${s.auth.from})`;
      break;
    case "token":
      auth = { kind: "token", token: s.auth.token };
      authText = `token (${s.auth.from})`;
      break;
    case "nkey": {
      // Only a user seed signs the server's nonce; a public key or an account seed here is a mix-up.
      const seed = read("NATS_NKEY_SEED_FILE", s.auth.seedFile, (t) => /^SU[A-Z2-7]{56}$/.test(t.trim()), "an NKey user seed (SU…, 58 characters)").trim();
      auth = { kind: "nkey", seed };
      authText = `nkey (${s.auth.seedFile})`;
      break;
    }
    case "creds": {
      const looksLikeCreds = (t: string) => /-----BEGIN NATS USER JWT-----/.test(t) && /-----BEGIN USER NKEY SEED-----/.test(t);
      auth = { kind: "creds", creds: read("NATS_CREDS_FILE", s.auth.credsFile, looksLikeCreds, "a NATS .creds file (user JWT and NKey seed)") };
      authText = `creds (${s.auth.credsFile})`;
      break;
    }
  }
  let tls: NatsLink["tls"] = null;
  let tlsText = "when the server offers it (system CAs)";
  if (s.tls) {
    const pem = (t: string) => t.includes("-----BEGIN CERTIFICATE-----");
    const key = (t: string) => /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(t);
    tls = {};
    if (s.tls.ca) tls.ca = read("NATS_TLS_CA", s.tls.ca, pem, "a PEM certificate");
    if (s.tls.cert && s.tls.key) {
      tls.cert = read("NATS_TLS_CERT", s.tls.cert, pem, "a PEM certificate");
      tls.key = read("NATS_TLS_KEY", s.tls.key, key, "a PEM private key");
    }
    tlsText = `required (CA: ${s.tls.ca ?? "system"}${s.tls.cert ? `, client certificate ${s.tls.cert}` : ""})`;
  }
  return { servers: s.servers, redacted: s.redacted, auth, tls, describe: { url: s.redacted, auth: authText, tls: tlsText } };
}
