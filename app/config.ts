// Configuration comes only from environment variables, validated once at start.
// A bad value must stop the process with one line naming the variable and the rule.
import * as v from "valibot";

const ID_RULE = /^[A-Za-z0-9_-]{1,64}$/;

const int = (name: string, min: number, max: number, dflt: number) =>
  v.pipe(
    v.optional(v.string(), String(dflt)),
    v.regex(/^\d+$/, `${name} must be a whole number`),
    v.transform(Number),
    v.minValue(min, `${name} must be at least ${min}`),
    v.maxValue(max, `${name} must be at most ${max}`),
  );

const EnvSchema = v.object({
  PORT: int("PORT", 0, 65535, 8080),
  HOST: v.optional(v.pipe(v.string(), v.minLength(1, "HOST must not be empty")), "0.0.0.0"),
  NATS_URL: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^((nats|tls|wss?):\/\/)?[^\s,]+(,((nats|tls|wss?):\/\/)?[^\s,]+)*$/, "NATS_URL must be a comma-separated list of nats://host:port URLs"),
    ),
  ),
  WSGATE_SUBJECT_PREFIX: v.optional(
    v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, "WSGATE_SUBJECT_PREFIX must be dot-separated tokens of A-Z a-z 0-9 _ -")),
    "ws",
  ),
  WSGATE_NODE_ID: v.optional(v.pipe(v.string(), v.regex(ID_RULE, "WSGATE_NODE_ID must match ^[A-Za-z0-9_-]{1,64}$"))),
  WSGATE_MAX_CONNECTIONS: int("WSGATE_MAX_CONNECTIONS", 1, 10_000_000, 1_000_000),
  WSGATE_MAX_MESSAGE_BYTES: int("WSGATE_MAX_MESSAGE_BYTES", 16, 64 * 1024 * 1024, 64 * 1024),
  WSGATE_IDLE_TIMEOUT_S: int("WSGATE_IDLE_TIMEOUT_S", 0, 960, 120),
  WSGATE_DRAIN_TIMEOUT_MS: int("WSGATE_DRAIN_TIMEOUT_MS", 0, 600_000, 10_000),
  WSGATE_MAILBOX: v.optional(v.picklist(["on", "off"], "WSGATE_MAILBOX must be on or off"), "on"),
  WSGATE_MAILBOX_STREAM: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,32}$/, "WSGATE_MAILBOX_STREAM must match ^[A-Za-z0-9_-]{1,32}$")), "WSGATE"),
  WSGATE_MAILBOX_MAX_AGE_S: int("WSGATE_MAILBOX_MAX_AGE_S", 1, 10 * 365 * 86_400, 7 * 86_400),
  WSGATE_MAILBOX_MAX_PER_USER: int("WSGATE_MAILBOX_MAX_PER_USER", 1, 1_000_000_000, 1_000),
  WSGATE_MAILBOX_MAX_BYTES: int("WSGATE_MAILBOX_MAX_BYTES", 1024, Number.MAX_SAFE_INTEGER, 10 * 1024 ** 3),
  WSGATE_MAILBOX_REPLICAS: int("WSGATE_MAILBOX_REPLICAS", 1, 5, 1),
  WSGATE_MAILBOX_CURSOR_FLUSH_MS: int("WSGATE_MAILBOX_CURSOR_FLUSH_MS", 10, 60_000, 1_000),
  WSGATE_MAILBOX_CATCHUP_CONCURRENCY: int("WSGATE_MAILBOX_CATCHUP_CONCURRENCY", 1, 4_096, 128),
  WSGATE_LOG_LEVEL: v.optional(v.picklist(["debug", "info", "warn", "error"], "WSGATE_LOG_LEVEL must be one of debug, info, warn, error"), "info"),
});

export type Config = {
  port: number;
  host: string;
  natsUrl: string | undefined;
  prefix: string;
  nodeId: string;
  maxConnections: number;
  maxMessageBytes: number;
  idleTimeoutS: number;
  drainTimeoutMs: number;
  logLevel: "debug" | "info" | "warn" | "error";
  /** durable per-user mailbox on JetStream; only with NATS */
  mailbox: MailboxConfig | null;
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

/** Reads the config or throws a ConfigError whose message is the one line to print. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(EnvSchema.entries)) {
    const value = env[key];
    // An empty variable means "not set", as shells and compose files commonly produce them.
    if (value !== undefined && value !== "") input[key] = value;
  }
  const result = v.safeParse(EnvSchema, input);
  if (!result.success) {
    const issue = result.issues[0];
    const name = issue.path?.[0]?.key ?? "environment";
    const value = input[name as string];
    throw new ConfigError(`config: ${String(name)}=${JSON.stringify(value ?? "")} rejected: ${issue.message}`);
  }
  const e = result.output;
  return {
    port: e.PORT,
    host: e.HOST,
    natsUrl: e.NATS_URL,
    prefix: e.WSGATE_SUBJECT_PREFIX,
    nodeId: e.WSGATE_NODE_ID ?? randomNodeId(),
    maxConnections: e.WSGATE_MAX_CONNECTIONS,
    maxMessageBytes: e.WSGATE_MAX_MESSAGE_BYTES,
    idleTimeoutS: e.WSGATE_IDLE_TIMEOUT_S,
    drainTimeoutMs: e.WSGATE_DRAIN_TIMEOUT_MS,
    logLevel: e.WSGATE_LOG_LEVEL,
    mailbox:
      e.NATS_URL && e.WSGATE_MAILBOX === "on"
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
  };
}

function randomNodeId(): string {
  return "n" + crypto.randomUUID().replaceAll("-", "").slice(0, 12);
}
