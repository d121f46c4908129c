// Configuration comes only from environment variables, validated once at start.
// A bad value must stop the process with one line naming the variable and the rule.
import * as v from "valibot";
import { NATS_ENV, type NatsSettings, natsSettings, redactNatsUrl } from "../broker/nats-options.ts";
import { REDIS_URL_ERROR, REDIS_URL_RULE, redactRedisUrl, type RedisSettings, redisSettings } from "../broker/redis-options.ts";
import { crossChecks, unknownNames } from "./config-rules.ts";

import { ID_PATTERN, idError } from "../../protocol/ids.ts";

const int = (name: string, min: number, max: number, dflt: number) =>
  v.pipe(
    v.optional(v.string(), String(dflt)),
    v.regex(/^\d+$/, `${name} must be a whole number`),
    v.transform(Number),
    v.minValue(min, `${name} must be at least ${min}`),
    v.maxValue(max, `${name} must be at most ${max}`),
  );

/** Production identity, access and abuse limits (issue 4); defaults are the README's. */
const SECURITY_ENV = {
  WSGATE_JWT_SECRET: v.optional(v.pipe(v.string(), v.minLength(32, "WSGATE_JWT_SECRET must be at least 32 characters (HS256 needs a 256-bit secret)"))),
  WSGATE_JWT_PUBLIC_KEY: v.optional(v.pipe(v.string(), v.minLength(1, "WSGATE_JWT_PUBLIC_KEY must be a file path"))),
  WSGATE_JWT_COOKIE: v.optional(
    v.pipe(v.string(), v.regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$/, "WSGATE_JWT_COOKIE must be a cookie name (RFC 6265 token, at most 64 characters)")),
    "token",
  ),
  WSGATE_JWT_QUERY_PARAM: v.optional(
    v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.-]{1,64}$/, "WSGATE_JWT_QUERY_PARAM must be a parameter name of A-Z a-z 0-9 _ . - or off")),
    "access_token",
  ),
  WSGATE_JWT_AUDIENCE: v.optional(v.pipe(v.string(), v.regex(/^[^,\s]+(,[^,\s]+)*$/, "WSGATE_JWT_AUDIENCE must be a comma-separated list without spaces"))),
  WSGATE_JWT_ISSUER: v.optional(v.pipe(v.string(), v.regex(/^\S+$/, "WSGATE_JWT_ISSUER must not contain spaces"))),
  WSGATE_JWT_LEEWAY_S: int("WSGATE_JWT_LEEWAY_S", 0, 300, 5),
  WSGATE_ALLOWED_ORIGINS: v.optional(
    v.pipe(
      v.string(),
      v.regex(
        /^(https?|wss?):\/\/(\*\.)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?(,(https?|wss?):\/\/(\*\.)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?)*$/,
        "WSGATE_ALLOWED_ORIGINS must be a comma-separated list of origins like https://app.example.com or https://*.example.com",
      ),
    ),
  ),
  WSGATE_PUBLISH_TOKEN: v.optional(v.pipe(v.string(), v.minLength(16, "WSGATE_PUBLISH_TOKEN must be at least 16 characters"))),
  WSGATE_ADMIN_TOKEN: v.optional(v.pipe(v.string(), v.minLength(16, "WSGATE_ADMIN_TOKEN must be at least 16 characters"))),
  WSGATE_MAX_MSGS_PER_SEC: int("WSGATE_MAX_MSGS_PER_SEC", 0, 1_000_000, 100),
  WSGATE_MSG_BURST: v.optional(int("WSGATE_MSG_BURST", 1, 10_000_000, 1)),
  WSGATE_MAX_CONNS_PER_USER: int("WSGATE_MAX_CONNS_PER_USER", 0, 1_000_000, 32),
  WSGATE_MAX_UPGRADES_PER_SEC: int("WSGATE_MAX_UPGRADES_PER_SEC", 0, 1_000_000, 5_000),
  WSGATE_MAX_BUFFERED_BYTES: int("WSGATE_MAX_BUFFERED_BYTES", 64 * 1024, 1024 ** 3, 4 * 1024 * 1024),
  WSGATE_TLS_CERT: v.optional(v.pipe(v.string(), v.minLength(1))),
  WSGATE_TLS_KEY: v.optional(v.pipe(v.string(), v.minLength(1))),
};

export type SecurityConfig = {
  /** HS256 secret; production mode */
  jwtSecret: string | undefined;
  /** PEM or JWKS file path (EdDSA, ES256, RS256); production mode */
  jwtPublicKey: string | undefined;
  jwtCookie: string;
  /** null: tokens in the URL are not accepted */
  jwtQueryParam: string | null;
  jwtAudience: string[] | undefined;
  jwtIssuer: string | undefined;
  jwtLeewayS: number;
  /** undefined: any Origin is accepted */
  allowedOrigins: string[] | undefined;
  publishToken: string | undefined;
  /** turns on the admin console at /admin (app/admin); unset: /admin is 404 */
  adminToken: string | undefined;
  /** per connection; 0 = unlimited */
  maxMsgsPerSec: number;
  msgBurst: number;
  /** per (svc, user) on this node; 0 = unlimited */
  maxConnsPerUser: number;
  /** per node; 0 = unlimited */
  maxUpgradesPerSec: number;
  /** per connection: past it the socket is closed as a slow consumer */
  maxBufferedBytes: number;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
};

function securityConfig(e: v.InferOutput<v.ObjectSchema<typeof SECURITY_ENV, undefined>>): SecurityConfig {
  return {
    jwtSecret: e.WSGATE_JWT_SECRET,
    jwtPublicKey: e.WSGATE_JWT_PUBLIC_KEY,
    jwtCookie: e.WSGATE_JWT_COOKIE,
    jwtQueryParam: e.WSGATE_JWT_QUERY_PARAM === "off" ? null : e.WSGATE_JWT_QUERY_PARAM,
    jwtAudience: e.WSGATE_JWT_AUDIENCE?.split(","),
    jwtIssuer: e.WSGATE_JWT_ISSUER,
    jwtLeewayS: e.WSGATE_JWT_LEEWAY_S,
    allowedOrigins: e.WSGATE_ALLOWED_ORIGINS?.split(","),
    publishToken: e.WSGATE_PUBLISH_TOKEN,
    adminToken: e.WSGATE_ADMIN_TOKEN,
    maxMsgsPerSec: e.WSGATE_MAX_MSGS_PER_SEC,
    msgBurst: e.WSGATE_MSG_BURST ?? Math.max(1, 2 * e.WSGATE_MAX_MSGS_PER_SEC),
    maxConnsPerUser: e.WSGATE_MAX_CONNS_PER_USER,
    maxUpgradesPerSec: e.WSGATE_MAX_UPGRADES_PER_SEC,
    maxBufferedBytes: e.WSGATE_MAX_BUFFERED_BYTES,
    tlsCert: e.WSGATE_TLS_CERT,
    tlsKey: e.WSGATE_TLS_KEY,
  };
}

// ---- groups and broadcast (issue 13) ------------------------------------------------
const GROUPS_ENV = {
  WSGATE_MAX_GROUPS_PER_USER: int("WSGATE_MAX_GROUPS_PER_USER", 0, 100_000, 100),
  WSGATE_MAX_GROUP_MEMBERS: int("WSGATE_MAX_GROUP_MEMBERS", 0, 100_000_000, 100_000),
  WSGATE_MAX_BROADCASTS_PER_SEC: int("WSGATE_MAX_BROADCASTS_PER_SEC", 0, 1_000_000, 10),
  WSGATE_GROUPS_BUCKET: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,32}$/, "WSGATE_GROUPS_BUCKET must match ^[A-Za-z0-9_-]{1,32}$")), "WSGATE_GROUPS"),
  WSGATE_GROUPS_REPLICAS: int("WSGATE_GROUPS_REPLICAS", 1, 5, 1),
};

/** 0 = unlimited for the three caps */
export type GroupsConfig = { maxGroupsPerUser: number; maxGroupMembers: number; maxBroadcastsPerSec: number; bucket: string; replicas: number };

function groupsConfig(e: v.InferOutput<v.ObjectSchema<typeof GROUPS_ENV, undefined>>): GroupsConfig {
  return {
    maxGroupsPerUser: e.WSGATE_MAX_GROUPS_PER_USER,
    maxGroupMembers: e.WSGATE_MAX_GROUP_MEMBERS,
    maxBroadcastsPerSec: e.WSGATE_MAX_BROADCASTS_PER_SEC,
    bucket: e.WSGATE_GROUPS_BUCKET,
    replicas: e.WSGATE_GROUPS_REPLICAS,
  };
}
// ---- end groups ---------------------------------------------------------------------

const EnvSchema = v.object({
  ...SECURITY_ENV,
  // ---- NATS credentials and TLS: NATS_USER, NATS_PASSWORD, NATS_TOKEN, NATS_NKEY_SEED_FILE, NATS_CREDS_FILE, NATS_TLS_* (app/broker/nats-options.ts) ----
  ...NATS_ENV,
  ...GROUPS_ENV,
  PORT: int("PORT", 0, 65535, 8080),
  HOST: v.optional(v.pipe(v.string(), v.minLength(1, "HOST must not be empty")), "0.0.0.0"),
  NATS_URL: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^((nats|tls|wss?):\/\/)?[^\s,]+(,((nats|tls|wss?):\/\/)?[^\s,]+)*$/, "NATS_URL must be a comma-separated list of nats://host:port URLs"),
    ),
  ),
  // Redis instead of NATS (app/broker/redis-options.ts); the two together are refused (config-rules.ts).
  REDIS_URL: v.optional(v.pipe(v.string(), v.regex(REDIS_URL_RULE, REDIS_URL_ERROR))),
  WSGATE_REDIS_SEND_MAXLEN: int("WSGATE_REDIS_SEND_MAXLEN", 100, 1_000_000_000, 1_000_000),
  WSGATE_SUBJECT_PREFIX: v.optional(
    v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, "WSGATE_SUBJECT_PREFIX must be dot-separated tokens of A-Z a-z 0-9 _ -")),
    "ws",
  ),
  WSGATE_NODE_ID: v.optional(v.pipe(v.string(), v.regex(ID_PATTERN, idError("WSGATE_NODE_ID")))),
  WSGATE_WORKERS: int("WSGATE_WORKERS", 1, 64, 1),
  /** set by scripts/start.sh for each worker it starts */
  WSGATE_WORKER: v.optional(int("WSGATE_WORKER", 1, 64, 1)),
  // Unset: the open-files limit (less a reserve) is the cap, applied once the adapter has read it.
  WSGATE_MAX_CONNECTIONS: v.optional(int("WSGATE_MAX_CONNECTIONS", 1, 10_000_000, 1_000_000)),
  WSGATE_METRICS_PORT: v.optional(int("WSGATE_METRICS_PORT", 1, 65535, 9090)),
  WSGATE_METRICS_HOST: v.optional(v.pipe(v.string(), v.minLength(1, "WSGATE_METRICS_HOST must not be empty"))),
  WSGATE_MAX_MESSAGE_BYTES: int("WSGATE_MAX_MESSAGE_BYTES", 16, 64 * 1024 * 1024, 64 * 1024),
  WSGATE_IDLE_TIMEOUT_S: int("WSGATE_IDLE_TIMEOUT_S", 0, 960, 120),
  WSGATE_DRAIN_TIMEOUT_MS: int("WSGATE_DRAIN_TIMEOUT_MS", 0, 600_000, 10_000),
  WSGATE_MAILBOX: v.optional(v.picklist(["on", "off"], "WSGATE_MAILBOX must be on or off"), "on"),
  WSGATE_MAILBOX_STREAM: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,32}$/, "WSGATE_MAILBOX_STREAM must match ^[A-Za-z0-9_-]{1,32}$")), "WSGATE"),
  WSGATE_MAILBOX_MAX_AGE_S: int("WSGATE_MAILBOX_MAX_AGE_S", 1, 10 * 365 * 86_400, 7 * 86_400),
  // 0 = no per-user cap. nats-server 2.9 stores ~20x slower once it enforces one (README).
  WSGATE_MAILBOX_MAX_PER_USER: int("WSGATE_MAILBOX_MAX_PER_USER", 0, 1_000_000_000, 0),
  WSGATE_MAILBOX_MAX_BYTES: int("WSGATE_MAILBOX_MAX_BYTES", 1024, Number.MAX_SAFE_INTEGER, 10 * 1024 ** 3),
  WSGATE_MAILBOX_REPLICAS: int("WSGATE_MAILBOX_REPLICAS", 1, 5, 1),
  WSGATE_MAILBOX_CURSOR_FLUSH_MS: int("WSGATE_MAILBOX_CURSOR_FLUSH_MS", 10, 60_000, 1_000),
  WSGATE_MAILBOX_CATCHUP_CONCURRENCY: int("WSGATE_MAILBOX_CATCHUP_CONCURRENCY", 1, 4_096, 128),
  WSGATE_CALL_TIMEOUT_MS: int("WSGATE_CALL_TIMEOUT_MS", 1, 600_000, 10_000),
  WSGATE_REQUEST_TIMEOUT_MS: int("WSGATE_REQUEST_TIMEOUT_MS", 1, 600_000, 30_000),
  WSGATE_MAX_CALLS_PER_CONN: int("WSGATE_MAX_CALLS_PER_CONN", 1, 100_000, 64),
  WSGATE_MAX_REQUESTS_PER_CONN: int("WSGATE_MAX_REQUESTS_PER_CONN", 1, 100_000, 64),
  WSGATE_EVENTS: v.optional(v.picklist(["on", "off"], "WSGATE_EVENTS must be on or off"), "on"),
  WSGATE_LOG_LEVEL: v.optional(v.picklist(["debug", "info", "warn", "error"], "WSGATE_LOG_LEVEL must be one of debug, info, warn, error"), "info"),
});

export type Config = SecurityConfig & {
  port: number;
  host: string;
  /** NATS_URL for logs: passwords and tokens in it replaced by *** (connect with `nats`) */
  natsUrl: string | undefined;
  /** servers without credentials, the credentials, TLS files; null: embedded broker */
  nats: NatsSettings | null;
  /** REDIS_URL: the Redis broker; null with NATS or embedded */
  redis: RedisSettings | null;
  /** Redis: XADD MAXLEN ~ of each service's stream of client frames */
  redisSendMaxLen: number;
  prefix: string;
  nodeId: string;
  /** processes sharing the port (SO_REUSEPORT); each is a node of its own */
  /** this process's index under the supervisor (WSGATE_WORKER), null when it runs alone */
  worker: number | null;
  workers: number;
  /** the upper bound; below it the open-files limit less a reserve also caps (gateway) */
  maxConnections: number;
  /** WSGATE_MAX_CONNECTIONS was given: warn when the open-files limit cannot hold it */
  maxConnectionsSet: boolean;
  /** a separate /metrics listener (WSGATE_METRICS_PORT); null: /metrics on the client port */
  metrics: { port: number; host: string } | null;
  maxMessageBytes: number;
  idleTimeoutS: number;
  drainTimeoutMs: number;
  logLevel: "debug" | "info" | "warn" | "error";
  /** lifecycle events (connect, disconnect, online, offline) on <prefix>.events.<svc>.<user> */
  events: boolean;
  /** durable per-user mailbox on JetStream or Redis Streams; not with the embedded broker */
  mailbox: MailboxConfig | null;
  /** request/reply through the wsgate.v1 envelope */
  rpc: RpcConfig;
  groups: GroupsConfig;
};

export type RpcConfig = {
  /** client → service: how long a call waits for the service (the client may ask for less) */
  callTimeoutMs: number;
  /** service → client: how long a request waits for the client when the requester sends no Ws-Timeout-Ms */
  requestTimeoutMs: number;
  /** client → service calls in flight per connection */
  maxCallsPerConn: number;
  /** service → client requests awaiting an answer per connection */
  maxRequestsPerConn: number;
};

export type MailboxConfig = {
  stream: string;
  maxAgeS: number;
  maxPerUser: number;
  maxBytes: number;
  replicas: number;
  cursorFlushMs: number;
  catchupConcurrency: number;
};

export class ConfigError extends Error {}

/** Every problem of an environment at once: errors stop the start, warnings do not. */
export type ConfigCheck = { config: Config | null; errors: string[]; warnings: string[] };

/** Reads the config or throws a ConfigError whose message holds one line per bad variable. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const { config, errors } = checkConfig(env);
  if (!config) throw new ConfigError(errors.join("\n"));
  return config;
}

export function checkConfig(env: Record<string, string | undefined>): ConfigCheck {
  const input: Record<string, string> = {};
  for (const key of Object.keys(EnvSchema.entries)) {
    const value = env[key];
    // An empty variable means "not set", as shells and compose files commonly produce them.
    if (value !== undefined && value !== "") input[key] = value;
  }
  const warnings = unknownNames(env, Object.keys(EnvSchema.entries));
  // Rules over several variables are checked on the raw values too, so they show up alongside bad values.
  const errors = crossChecks(input);
  const result = v.safeParse(EnvSchema, input);
  if (!result.success) {
    const seen = new Set<string>();
    const bad: string[] = [];
    for (const issue of result.issues) {
      const name = String(issue.path?.[0]?.key ?? "environment");
      if (seen.has(name)) continue; // one line per variable: its first broken rule
      seen.add(name);
      // Secrets must not end up in logs, even when they are wrong.
      const value = input[name] ?? "";
      const shown = /SECRET|TOKEN|PASS|SEED|CREDS/.test(name) ? "<hidden>" : JSON.stringify(name === "NATS_URL" ? redactNatsUrl(value) : name === "REDIS_URL" ? redactRedisUrl(value) : value);
      bad.push(`config: ${name}=${shown} rejected: ${issue.message}`);
    }
    return { config: null, errors: [...bad, ...errors], warnings };
  }
  if (errors.length > 0) return { config: null, errors, warnings };
  try {
    return { config: toConfig(result.output), errors, warnings };
  } catch (err) {
    // The NATS settings reject their own combinations (one way of authenticating) as they are built.
    if (err instanceof ConfigError) return { config: null, errors: [err.message], warnings };
    throw err;
  }
}

type Env = v.InferOutput<typeof EnvSchema>;

function toConfig(e: Env): Config {
  const nodeId = e.WSGATE_NODE_ID ?? randomNodeId();
  const production = Boolean(e.WSGATE_JWT_SECRET || e.WSGATE_JWT_PUBLIC_KEY);
  const worker = e.WSGATE_WORKER ?? null;
  const nats = e.NATS_URL ? natsSettings({ ...e, NATS_URL: e.NATS_URL }, (m) => { throw new ConfigError(m); }) : null;
  return {
    ...securityConfig(e),
    port: e.PORT,
    host: e.HOST,
    natsUrl: nats?.redacted,
    nats,
    redis: e.REDIS_URL ? redisSettings(e.REDIS_URL) : null,
    redisSendMaxLen: e.WSGATE_REDIS_SEND_MAXLEN,
    prefix: e.WSGATE_SUBJECT_PREFIX,
    nodeId: worker ? `${nodeId.slice(0, 60)}-w${worker}` : nodeId,
    worker,
    workers: e.WSGATE_WORKERS,
    maxConnections: e.WSGATE_MAX_CONNECTIONS ?? 1_000_000,
    maxConnectionsSet: e.WSGATE_MAX_CONNECTIONS !== undefined,
    metrics:
      e.WSGATE_METRICS_PORT === undefined
        ? null
        : {
            // Each worker is scraped on its own port: base + index, in the order the supervisor numbers them.
            port: e.WSGATE_METRICS_PORT + (worker ?? 1) - 1,
            // Production metrics name users' counts and the build: keep them off the public interface unless asked.
            host: e.WSGATE_METRICS_HOST ?? (production ? "127.0.0.1" : e.HOST),
          },
    maxMessageBytes: e.WSGATE_MAX_MESSAGE_BYTES,
    idleTimeoutS: e.WSGATE_IDLE_TIMEOUT_S,
    drainTimeoutMs: e.WSGATE_DRAIN_TIMEOUT_MS,
    logLevel: e.WSGATE_LOG_LEVEL,
    events: e.WSGATE_EVENTS === "on",
    mailbox:
      (e.NATS_URL || e.REDIS_URL) && e.WSGATE_MAILBOX === "on"
        ? {
            stream: e.WSGATE_MAILBOX_STREAM,
            maxAgeS: e.WSGATE_MAILBOX_MAX_AGE_S,
            maxPerUser: e.WSGATE_MAILBOX_MAX_PER_USER,
            maxBytes: e.WSGATE_MAILBOX_MAX_BYTES,
            replicas: e.WSGATE_MAILBOX_REPLICAS,
            cursorFlushMs: e.WSGATE_MAILBOX_CURSOR_FLUSH_MS,
            catchupConcurrency: e.WSGATE_MAILBOX_CATCHUP_CONCURRENCY,
          }
        : null,
    rpc: {
      callTimeoutMs: e.WSGATE_CALL_TIMEOUT_MS,
      requestTimeoutMs: e.WSGATE_REQUEST_TIMEOUT_MS,
      maxCallsPerConn: e.WSGATE_MAX_CALLS_PER_CONN,
      maxRequestsPerConn: e.WSGATE_MAX_REQUESTS_PER_CONN,
    },
    groups: groupsConfig(e),
  };
}

function randomNodeId(): string {
  return "n" + crypto.randomUUID().replaceAll("-", "").slice(0, 12);
}
