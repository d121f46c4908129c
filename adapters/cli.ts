// The command line of the gateway and of the binary. node:util's parseArgs works the same
// on Bun, Node and Deno, so no parser library is needed; this is why the file is an adapter.
import { readFileSync } from "node:fs";
import { parseArgs, parseEnv } from "node:util";
import { SignJWT } from "jose";
import { checkConfig } from "../app/ops/config.ts";
import { KeyError } from "../app/security/auth.ts";
import { loadSecrets } from "../app/security/security.ts";
import { VERSION } from "../app/ops/version.ts";
import { idError, isId } from "../protocol/ids.ts";
import { superviseWorkers } from "./supervisor.ts";

export type CliIo = {
  /** starts the gateway in this process; resolves once it is serving */
  serve: () => Promise<unknown>;
  /** defaults: process.env, console */
  env?: Record<string, string | undefined>;
  out?: (line: string) => void;
  err?: (line: string) => void;
};

const HELP = `wsgate ${VERSION}: a WebSocket gateway for microservices

usage: wsgate [--env-file FILE] [command]

commands:
  serve                      run the gateway (the default); WSGATE_WORKERS > 1 runs a supervisor
                             that starts and restarts that many worker processes
  check-config               validate the environment, print every problem, exit 0 (ok) or 2
  token --svc S --user U [--ttl 1h]
                             print a development JWT signed with WSGATE_JWT_SECRET
  healthcheck [--url URL]     exit 0 when the gateway on this host answers /healthz (for container
                             HEALTHCHECKs: the image has no curl)
  publish SVC USER MESSAGE [--url URL] [--binary]
                             send MESSAGE to a user: through NATS when NATS_URL is set, else
                             through the HTTP API of a running gateway (default http://127.0.0.1:$PORT;
                             with REDIS_URL too, so the mailbox function stores it)

options:
  --env-file FILE            read variables from FILE first (the environment wins); nothing is
                             read from .env unless asked
  -h, --help                 this text
  -v, --version              the version

Configuration comes from the environment; see the README's Configuration section.
`;

/**
 * Runs one command. Resolves with the exit status for commands that finish, or with
 * undefined once `serve` has started the gateway in this process (which then keeps running).
 */
export async function runCli(argv: string[], io: CliIo): Promise<number | undefined> {
  const env = io.env ?? process.env;
  const out = io.out ?? ((l: string) => console.log(l));
  const err = io.err ?? ((l: string) => console.error(l));
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "v" },
        "env-file": { type: "string" },
        svc: { type: "string" },
        user: { type: "string" },
        ttl: { type: "string", default: "1h" },
        url: { type: "string" },
        binary: { type: "boolean" },
      },
    });
  } catch (e) {
    err(`wsgate: ${(e as Error).message}; see wsgate --help`);
    return 2;
  }
  const { values: o, positionals: [command = "serve", ...args] } = parsed;
  if (o.help) return (out(HELP.trimEnd()), 0);
  if (o.version) return (out(`wsgate ${VERSION}`), 0);
  if (o["env-file"]) {
    const problem = loadEnvFile(o["env-file"], env);
    if (problem) return (err(`wsgate: --env-file ${o["env-file"]}: ${problem}`), 2);
  }
  const expect = (n: number, usage: string) => (args.length === n ? null : `wsgate ${command}: expected ${usage}; see wsgate --help`);
  switch (command) {
    case "serve": {
      const bad = expect(0, "no arguments");
      if (bad) return (err(bad), 2);
      const workers = Number(env.WSGATE_WORKERS ?? "1");
      // A worker (WSGATE_WORKER set) or a bad value (the gateway reports it) runs in this process.
      if (!env.WSGATE_WORKER && workers > 1 && workers <= 64) {
        const check = checkConfig(env);
        if (!check.config) return (check.errors.forEach(err), 2);
        return superviseWorkers({ workers, command: selfCommand(), env, nodeId: check.config.nodeId });
      }
      await io.serve();
      return undefined;
    }
    case "check-config": {
      const bad = expect(0, "no arguments");
      if (bad) return (err(bad), 2);
      const { config, errors, warnings } = checkConfig(env);
      for (const w of warnings) err(w);
      for (const e of errors) err(e);
      if (!config) return 2;
      try {
        // The files the variables name must be readable and hold what they should, as at start.
        await loadSecrets(config, (path) => readFileSync(path, "utf8"));
      } catch (e) {
        if (!(e instanceof KeyError)) throw e;
        err(e.message);
        return 2;
      }
      const mode = config.jwtSecret || config.jwtPublicKey ? "production" : "development";
      out(`config ok: ${mode} mode, ${config.natsUrl ? "NATS" : config.redis ? "Redis" : "embedded broker"}, listening on ${config.host}:${config.port}`);
      return 0;
    }
    case "token":
      return args.length ? (err(expect(0, "only --svc, --user and --ttl")!), 2) : token(env, o, out, err);
    case "healthcheck": {
      const bad = expect(0, "no arguments");
      if (bad) return (err(bad), 2);
      return healthcheck(env, o.url, out, err);
    }
    case "publish": {
      const bad = expect(3, "SVC USER MESSAGE");
      if (bad) return (err(bad), 2);
      const { publish } = await import("./cli-publish.ts");
      return publish(env, { svc: args[0], user: args[1], message: args[2], url: o.url, binary: Boolean(o.binary) }, out, err);
    }
    default:
      err(`wsgate: unknown command ${JSON.stringify(command)}; see wsgate --help`);
      return 2;
  }
}

/** The program and script this process runs, so the supervisor can start more of it. */
function selfCommand(): string[] {
  const script = process.argv[1];
  // A `bun build --compile` binary reports its embedded entry under /$bunfs; the binary is enough.
  if (!script || script.startsWith("/$bunfs/") || script.startsWith("B:/~BUN/")) return [process.execPath];
  return [process.execPath, ...process.execArgv, script];
}

/** Variables already in the environment win, as with every dotenv loader operators know. */
function loadEnvFile(path: string, env: Record<string, string | undefined>): string | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : String((e as Error).message);
  }
  for (const [k, v] of Object.entries(parseEnv(text))) if (env[k] === undefined) env[k] = v;
  return null;
}

const TTL = /^(\d+)(s|m|h|d)?$/;
const UNIT_S: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

async function token(
  env: Record<string, string | undefined>,
  o: { svc?: string; user?: string; ttl?: string },
  out: (l: string) => void,
  err: (l: string) => void,
): Promise<number> {
  const problems: string[] = [];
  if (!isId(o.svc)) problems.push(o.svc === undefined ? "--svc is required" : `--svc ${idError("service").replace("service ", "")}`);
  if (!isId(o.user)) problems.push(o.user === undefined ? "--user is required" : `--user ${idError("user").replace("user ", "")}`);
  const ttl = TTL.exec(o.ttl ?? "");
  if (!ttl) problems.push(`--ttl must be a number with an optional unit s, m, h or d (like 90s, 15m, 1h), not ${JSON.stringify(o.ttl)}`);
  const { config, errors } = checkConfig(env);
  if (!config) problems.push(...errors);
  else if (!config.jwtSecret) {
    problems.push(
      config.jwtPublicKey
        ? "token needs WSGATE_JWT_SECRET: with WSGATE_JWT_PUBLIC_KEY the gateway only verifies, the issuer holds the private key"
        : "token needs WSGATE_JWT_SECRET (at least 32 characters), the secret the gateway verifies with",
    );
  }
  if (problems.length || !config?.jwtSecret || !ttl) {
    for (const p of problems) err(`wsgate token: ${p}`);
    return 2;
  }
  const seconds = Number(ttl[1]) * UNIT_S[ttl[2] ?? "s"];
  let jwt = new SignJWT({ svc: o.svc })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(o.user!)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + seconds);
  if (config.jwtAudience) jwt = jwt.setAudience(config.jwtAudience[0]);
  if (config.jwtIssuer) jwt = jwt.setIssuer(config.jwtIssuer);
  out(await jwt.sign(new TextEncoder().encode(config.jwtSecret)));
  return 0;
}

async function healthcheck(env: Record<string, string | undefined>, url: string | undefined, out: (l: string) => void, err: (l: string) => void): Promise<number> {
  const { config, errors } = checkConfig(env);
  if (!config) return (errors.forEach(err), 2);
  const base = (url ?? `${config.tlsCert ? "https" : "http"}://127.0.0.1:${config.port}`).replace(/\/+$/, "");
  try {
    // Our own certificate may not name 127.0.0.1; Bun reads `tls`, the other runtimes ignore it.
    const r = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(3_000), tls: { rejectUnauthorized: false } } as RequestInit);
    if (r.ok) return (out(`healthy: ${base}`), 0);
    err(`unhealthy: ${base}/healthz answered ${r.status}`);
  } catch (e) {
    err(`unhealthy: ${base}/healthz: ${(e as Error).message}`);
  }
  return 1;
}
