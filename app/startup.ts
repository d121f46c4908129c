// Wires config, broker, gateway and routes together, and runs the start-up sequence every
// runtime shares (runGateway); the adapters only bring their runtime's pieces.
import { EmbeddedBroker } from "./broker/embedded.ts";
import { NatsBroker } from "./broker/nats.ts";
import { loadNatsLink } from "./broker/nats-link.ts";
import { RedisBroker } from "./broker/redis.ts";
import { checkConfig, type Config } from "./ops/config.ts";
import { Gateway } from "./core/gateway.ts";
import type { Transport } from "./core/transport.ts";
import { subjects } from "./core/subjects.ts";
import { log, setLogBase, setLogLevel } from "./ops/log.ts";
import { Metrics } from "./ops/metrics.ts";
import { MailboxDelivery } from "./mailbox/delivery.ts";
import { MailboxStore } from "./mailbox/store.ts";
import { RedisMailboxStore } from "./mailbox/redis-store.ts";
import { embeddedRoutes, routes } from "./http/routes.ts";
import { mountAdmin } from "./admin/mount.ts";
import { groupRoutes } from "./http/group-routes.ts";
import { LoopTopics } from "./groups/fanout.ts";
import { groupsFactory } from "./groups/setup.ts";
import { clusterRoutes } from "./http/cluster-routes.ts";
import type { Broker } from "./broker/broker.ts";
import { Cluster } from "./cluster/cluster.ts";
import { GatewayNode, type GatewayView, Lifecycle } from "./cluster/gateway-node.ts";
import { Auth, KeyError, type ReadTextFile } from "./security/auth.ts";
import { loadSecrets, type Secrets, Security } from "./security/security.ts";

export type { Conn } from "./core/conn.ts";
export type { Transport } from "./core/transport.ts";
export { Gateway } from "./core/gateway.ts";
export type { UpgradeEnv } from "./http/routes.ts";
export type { Secrets, Tls } from "./security/security.ts";

/** Reads the config; prints every bad variable (one line each) and exits with status 2, or warns about unknown names. */
export function configOrExit(env: Record<string, string | undefined>, exit: (code: number) => never): Config {
  const { config, errors, warnings } = checkConfig(env);
  if (config) {
    setLogLevel(config.logLevel);
    setLogBase(config.worker ? { node: config.nodeId, worker: config.worker } : { node: config.nodeId });
  }
  for (const w of warnings) log("warn", w);
  if (!config) {
    for (const e of errors) console.error(e);
    return exit(2);
  }
  return config;
}

/**
 * Loads the JWT verification key and the TLS files through the runtime's file reader;
 * a missing or unusable file prints one line naming the variable and exits with status 2.
 */
export async function secretsOrExit(config: Config, readTextFile: ReadTextFile, exit: (code: number) => never): Promise<Secrets> {
  try {
    return await loadSecrets(config, readTextFile);
  } catch (err) {
    if (err instanceof KeyError) {
      console.error(err.message);
      return exit(2);
    }
    throw err;
  }
}

/**
 * Builds one gateway node: its parts are made here and handed to the Gateway, which makes
 * the broker and the mailbox through the factories given (they need the Gateway's hooks).
 * Without NATS_URL the broker is the embedded one, and the routes gain its event stream.
 */
export function createGateway(config: Config, transport: Transport, secrets?: Secrets) {
  setLogLevel(config.logLevel);
  const subs = subjects(config.prefix);
  const mailboxConfig = config.mailbox;
  const nats = config.nats;
  const redis = config.redis;
  const gw = new Gateway({
    config,
    transport,
    metrics: new Metrics(),
    subjects: subs,
    security: new Security(config, secrets?.auth ?? Auth.fromConfig(config)),
    broker: (hooks) => {
      if (nats) return new NatsBroker(secrets?.nats ?? loadNatsLink(nats), `wsgate ${config.nodeId}`, hooks, transport.afterEvents);
      if (redis) return new RedisBroker({ settings: redis, nodeId: config.nodeId, subjects: subs, sendMaxLen: config.redisSendMaxLen, mailbox: !!mailboxConfig }, hooks);
      return new EmbeddedBroker(hooks);
    },
    mailbox: mailboxConfig
      ? (core) => new MailboxDelivery(redis ? new RedisMailboxStore(mailboxConfig, subs) : new MailboxStore(mailboxConfig, subs), core)
      : null,
    // A runtime without native topics (Deno) fans group messages out in a loop over sockets.
    groups: groupsFactory(config, transport.topics ?? new LoopTopics((ws, data, text) => transport.send(ws, data, text)), transport.textAsString),
    cluster: (broker, view) => clusterOf(broker, view, config),
  });
  const app = routes(gw);
  if (gw.groups) groupRoutes(app, gw.groups);
  const embedded = gw.broker instanceof EmbeddedBroker ? gw.broker : null;
  if (embedded) embeddedRoutes(app, gw, embedded);
  clusterRoutes(app, gw.cluster!, embedded);
  if (config.adminToken) mountAdmin(app, gw, config.adminToken, embedded);
  return { gw, app };
}

/** The cluster features of one node; in embedded mode events are only built while an SSE stream listens. */
function clusterOf(broker: Broker, view: GatewayView, config: Config) {
  const node = new GatewayNode(view);
  const heard = broker instanceof EmbeddedBroker ? (svc: string) => broker.hasTap(`${config.prefix}.events.${svc}.`) : undefined;
  const cluster = new Cluster(broker, node, { prefix: config.prefix, events: config.events, heard });
  return { cluster, lifecycle: cluster.eventsOn ? new Lifecycle(cluster.hooks, node) : null };
}

/** Logs what every operator wants to see at start, including the unauthenticated-identity warning. */
export function logStart(gw: Gateway, listening: { host: string; port: number }) {
  const c = gw.config;
  log("info", "wsgate listening", {
    runtime: gw.transport.runtime,
    host: listening.host,
    port: listening.port,
    node: c.nodeId,
    broker: c.natsUrl ? `nats ${c.natsUrl}` : c.redis ? `redis ${c.redis.redacted}` : "embedded (single node, no NATS)",
    mailbox: c.mailbox ? `on (${c.redis ? "a Redis stream per user" : `stream ${c.mailbox.stream}, ${c.mailbox.replicas} replica${c.mailbox.replicas > 1 ? "s" : ""}`}, ${c.mailbox.maxPerUser || "no cap"}/user, ${c.mailbox.maxAgeS}s)` : "off",
    subjects: `${c.prefix}.send.<svc>.<user> / ${c.prefix}.recv.<svc>.<user>`,
    openFilesLimit: gw.metrics.openFilesLimit,
    maxConnections: c.maxConnections,
    scheme: c.tlsCert ? "https/wss (TLS)" : "http/ws (no TLS)",
    adminConsole: c.adminToken ? "on at /admin" : "off",
  });
  const sec = gw.security;
  log("info", "security", sec.describe());
  if (!sec.auth.production) {
    log("warn", "DEVELOPMENT MODE: identity comes from plain `service` and `user` cookies and is NOT authenticated");
    return;
  }
  if (!sec.origins.enabled) {
    log("warn", "WSGATE_ALLOWED_ORIGINS is not set: any web page can open sockets that carry your users' token cookie");
  }
}

/** Where the runtime's listener stands once it listens. */
export type Listening = {
  port: number;
  /** Stops listening; open sockets carry on. May wait for the runtime to let go. */
  close(): unknown;
};

/** A runtime's listen failure, reduced to what an operator acts on ("EADDRINUSE (...)"). */
export class ListenError extends Error {}

/** What one runtime gives the shared start-up: the core never learns which runtime it runs on. */
export type RuntimePieces<WS> = {
  env: Record<string, string | undefined>;
  readTextFile: ReadTextFile;
  exit(code: number): never;
  onSignal(signal: "SIGTERM" | "SIGINT", handler: () => void): void;
  transport(config: Config): Transport<WS>;
  /** The soft open-files limit in effect; 0 when unknown. */
  openFilesLimit(): number;
  /** Opens the separate /metrics listener when WSGATE_METRICS_PORT is set (exits 1 when it cannot). */
  serveMetrics(gw: Gateway): Promise<void>;
  /** Listens with the gateway's routes and socket handlers; throws ListenError when it cannot. */
  listen(ctx: { config: Config; secrets: Secrets; gw: Gateway; app: ReturnType<typeof routes> }): Listening | Promise<Listening>;
};

/**
 * The one start-up sequence of every runtime: config, secrets, gateway, listen, broker,
 * the start log line, then SIGTERM/SIGINT drain. A bad config exits 2, a listen failure 1,
 * each with one line on stderr.
 */
export async function runGateway<WS>(rt: RuntimePieces<WS>): Promise<{ gw: Gateway; listening: Listening }> {
  const config = configOrExit(rt.env, rt.exit);
  const secrets = await secretsOrExit(config, rt.readTextFile, rt.exit);
  const { gw, app } = createGateway(config, rt.transport(config), secrets);
  gw.setOpenFilesLimit(rt.openFilesLimit());
  let listening: Listening;
  try {
    listening = await rt.listen({ config, secrets, gw, app });
  } catch (err) {
    const cause = err instanceof ListenError ? err.message : String(err);
    console.error(`wsgate: cannot listen on HOST=${config.host} PORT=${config.port}: ${cause}`);
    return rt.exit(1);
  }
  await gw.broker.start();
  gw.cluster?.start();
  // Before the start line: a supervisor that signals as soon as it reads it gets a drain, not
  // the default action (the /metrics listener's await below left a window where SIGTERM killed).
  const drain = drainer(gw, rt.exit, listening);
  rt.onSignal("SIGTERM", drain);
  rt.onSignal("SIGINT", drain);
  logStart(gw, { host: config.host, port: listening.port });
  await rt.serveMetrics(gw);
  return { gw, listening };
}

/** How long closed sockets get to finish their close handshake before the listener goes. */
const SOCKETS_GRACE_MS = 2_000;
/**
 * The least time /readyz answers 503 before the listener goes. Bun and uWS let go of a
 * socket as soon as they send its close frame, so without it a drain can end before a
 * load balancer's next health check has seen it.
 */
const NOT_READY_AT_LEAST_MS = 1_000;

/**
 * SIGTERM and SIGINT: send every client away with 1001 so it reconnects elsewhere, flush
 * the broker, stop listening, exit 0, all within WSGATE_DRAIN_TIMEOUT_MS. The listener
 * stays open until the sockets are gone: a load balancer polling /readyz sees 503 (not a
 * refused connection) and new upgrades get 503 from the gateway.
 */
export function drainer(gw: Gateway, exit: (code: number) => never, listening: Pick<Listening, "close">) {
  return async function drain() {
    if (gw.isDraining()) return;
    const force = setTimeout(() => {
      log("warn", "drain timed out; exiting");
      exit(0);
    }, gw.config.drainTimeoutMs);
    const began = Date.now();
    await gw.shutdown();
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    while (gw.metrics.connections > 0 && Date.now() < began + SOCKETS_GRACE_MS) await sleep(20);
    await sleep(began + NOT_READY_AT_LEAST_MS - Date.now());
    await listening.close();
    clearTimeout(force);
    log("info", "drained; exiting");
    exit(0);
  };
}
