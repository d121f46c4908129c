// How the gateway reaches NATS: servers, credentials and TLS, from the environment.
// Operators paste credentials into the URL (nats://alice:pw@host, nats://token@host)
// as every NATS tool accepts them, but nats.js 3 ignores a URL's userinfo: they are
// taken out here, passed as options, and the servers list nats.js sees carries none,
// so no nats.js error message and no log line can repeat them.
// Pure: no nats.js import and no file access; nats-link.ts reads the files at start.
import * as v from "valibot";

const file = (name: string) => v.optional(v.pipe(v.string(), v.minLength(1, `${name} must be a file path`)));

/** The NATS variables, spread into the environment schema of app/ops/config.ts. */
export const NATS_ENV = {
  NATS_USER: v.optional(v.pipe(v.string(), v.regex(/^\S+$/, "NATS_USER must not contain spaces"))),
  NATS_PASSWORD: v.optional(v.string()),
  NATS_TOKEN: v.optional(v.pipe(v.string(), v.regex(/^\S+$/, "NATS_TOKEN must not contain spaces"))),
  NATS_NKEY_SEED_FILE: file("NATS_NKEY_SEED_FILE"),
  NATS_CREDS_FILE: file("NATS_CREDS_FILE"),
  NATS_TLS_CA: file("NATS_TLS_CA"),
  NATS_TLS_CERT: file("NATS_TLS_CERT"),
  NATS_TLS_KEY: file("NATS_TLS_KEY"),
};

type NatsEnv = { NATS_URL?: string } & { [K in keyof typeof NATS_ENV]?: string };

/** One way of proving who the gateway is; NATS servers accept exactly one per user. */
export type NatsAuthSetting =
  | { kind: "none" }
  | { kind: "user"; user: string; pass: string; from: "NATS_URL" | "NATS_USER" }
  | { kind: "token"; token: string; from: "NATS_URL" | "NATS_TOKEN" }
  | { kind: "nkey"; seedFile: string }
  | { kind: "creds"; credsFile: string };

/** File paths; the files are read at start through the adapter's reader (loadNatsLink). */
export type NatsTlsSetting = { ca?: string; cert?: string; key?: string };

export type NatsSettings = {
  /** as nats.js gets them: no credentials in them */
  servers: string[];
  /** NATS_URL as it may be logged: passwords and tokens replaced by *** */
  redacted: string;
  auth: NatsAuthSetting;
  /** null: TLS only when the server asks for it, verified against the system's CAs */
  tls: NatsTlsSetting | null;
};

/** A comma-separated NATS_URL with each URL's password (or token) replaced by ***. */
export function redactNatsUrl(url: string): string {
  return url
    .split(",")
    .map((u) => {
      const { scheme, userinfo, rest } = splitUrl(u);
      if (userinfo === null) return u;
      const colon = userinfo.indexOf(":");
      return `${scheme}${colon < 0 ? "***" : userinfo.slice(0, colon) + ":***"}@${rest}`;
    })
    .join(",");
}

function splitUrl(u: string): { scheme: string; userinfo: string | null; rest: string } {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)?(.*)$/s.exec(u)!;
  const scheme = m[1] ?? "";
  const after = m[2];
  // The last @ before the host: a password may hold a raw @ even though it should be %40.
  const hostStart = after.search(/[/?#]/);
  const authority = hostStart < 0 ? after : after.slice(0, hostStart);
  const at = authority.lastIndexOf("@");
  if (at < 0) return { scheme, userinfo: null, rest: after };
  return { scheme, userinfo: after.slice(0, at), rest: after.slice(at + 1) };
}

function decode(s: string, name: string, reject: (message: string) => never): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return reject(`config: NATS_URL=${JSON.stringify(name)} rejected: the credentials in NATS_URL are not valid percent-encoding`);
  }
}

/**
 * Reads the NATS part of the environment (NATS_URL set). `reject` throws the config error
 * with the line to print; secrets are never part of that line.
 */
export function natsSettings(e: NatsEnv & { NATS_URL: string }, reject: (message: string) => never): NatsSettings {
  const redacted = redactNatsUrl(e.NATS_URL);
  const bad = (name: string, shown: string, rule: string) => reject(`config: ${name}=${shown} rejected: ${rule}`);
  const servers: string[] = [];
  let inUrl: string | null = null;
  let tlsScheme = false;
  for (const u of e.NATS_URL.split(",")) {
    const { scheme, userinfo, rest } = splitUrl(u);
    if (/^tls:\/\//i.test(scheme)) tlsScheme = true;
    servers.push(scheme + rest);
    if (userinfo === null) continue;
    if (inUrl !== null && inUrl !== userinfo) bad("NATS_URL", JSON.stringify(redacted), "the URLs carry different credentials; nats.js uses one set for every server");
    inUrl = userinfo;
  }
  const methods: string[] = [];
  if (inUrl !== null) methods.push("credentials in NATS_URL");
  if (e.NATS_USER !== undefined || e.NATS_PASSWORD !== undefined) methods.push("NATS_USER/NATS_PASSWORD");
  if (e.NATS_TOKEN !== undefined) methods.push("NATS_TOKEN");
  if (e.NATS_NKEY_SEED_FILE !== undefined) methods.push("NATS_NKEY_SEED_FILE");
  if (e.NATS_CREDS_FILE !== undefined) methods.push("NATS_CREDS_FILE");
  if (methods.length > 1) {
    const name = inUrl !== null ? "NATS_URL" : methods[1].split("/")[0];
    const shown = name === "NATS_URL" ? JSON.stringify(redacted) : name === "NATS_TOKEN" ? "<hidden>" : JSON.stringify(e[name as keyof NatsEnv]);
    bad(name, shown, `${methods.join(" and ")} are set: give the gateway's NATS credentials one way`);
  }
  let auth: NatsAuthSetting = { kind: "none" };
  if (inUrl !== null) {
    const colon = inUrl.indexOf(":");
    auth =
      colon < 0
        ? { kind: "token", token: decode(inUrl, redacted, reject), from: "NATS_URL" }
        : { kind: "user", user: decode(inUrl.slice(0, colon), redacted, reject), pass: decode(inUrl.slice(colon + 1), redacted, reject), from: "NATS_URL" };
    if (auth.kind === "token" && !auth.token) bad("NATS_URL", JSON.stringify(redacted), "the URL has an empty user or token before @");
  } else if (e.NATS_USER !== undefined || e.NATS_PASSWORD !== undefined) {
    if (e.NATS_USER === undefined) bad("NATS_USER", '""', "NATS_PASSWORD is set: NATS_USER and NATS_PASSWORD go together");
    if (e.NATS_PASSWORD === undefined) bad("NATS_PASSWORD", '""', "NATS_USER is set: NATS_USER and NATS_PASSWORD go together");
    auth = { kind: "user", user: e.NATS_USER!, pass: e.NATS_PASSWORD!, from: "NATS_USER" };
  } else if (e.NATS_TOKEN !== undefined) {
    auth = { kind: "token", token: e.NATS_TOKEN, from: "NATS_TOKEN" };
  } else if (e.NATS_NKEY_SEED_FILE !== undefined) {
    auth = { kind: "nkey", seedFile: e.NATS_NKEY_SEED_FILE };
  } else if (e.NATS_CREDS_FILE !== undefined) {
    auth = { kind: "creds", credsFile: e.NATS_CREDS_FILE };
  }
  if ((e.NATS_TLS_CERT === undefined) !== (e.NATS_TLS_KEY === undefined)) {
    const [missing, given] = e.NATS_TLS_CERT === undefined ? ["NATS_TLS_CERT", "NATS_TLS_KEY"] : ["NATS_TLS_KEY", "NATS_TLS_CERT"];
    bad(missing, '""', `${given} is set: the client certificate needs both NATS_TLS_CERT and NATS_TLS_KEY`);
  }
  const anyTlsFile = e.NATS_TLS_CA !== undefined || e.NATS_TLS_CERT !== undefined;
  const tls: NatsTlsSetting | null = anyTlsFile || tlsScheme ? { ca: e.NATS_TLS_CA, cert: e.NATS_TLS_CERT, key: e.NATS_TLS_KEY } : null;
  return { servers, redacted, auth, tls };
}
