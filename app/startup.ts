// Wires config, broker, gateway and routes together. Each adapter calls this once.
import { EmbeddedBroker } from "./broker/embedded.ts";
import { NatsBroker } from "./broker/nats.ts";
import { type Config, ConfigError, loadConfig } from "./ops/config.ts";
import { Gateway, type Transport } from "./core/gateway.ts";
import { log, setLogLevel } from "./ops/log.ts";
import { MailboxStore } from "./mailbox/store.ts";
import { embeddedRoutes, routes } from "./http/routes.ts";
import { Auth, KeyError, type ReadTextFile } from "./security/auth.ts";
import { loadSecrets, type Secrets, Security } from "./security/security.ts";

export type { Conn, Transport } from "./core/gateway.ts";
export { Gateway } from "./core/gateway.ts";
export type { UpgradeEnv } from "./http/routes.ts";
export type { Secrets, Tls } from "./security/security.ts";

/** Reads the config; on a bad value prints the one line and exits with status 2. */
export function configOrExit(env: Record<string, string | undefined>, exit: (code: number) => never): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return exit(2);
    }
    throw err;
  }
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

export function createGateway(config: Config, transport: Transport, secrets?: Secrets) {
  setLogLevel(config.logLevel);
  const gw = new Gateway(config, transport);
  gw.security = new Security(config, secrets?.auth ?? Auth.fromConfig(config));
  if (config.mailbox) gw.enableMailbox(new MailboxStore(config.mailbox, gw.subjects));
  const hooks = gw.brokerHooks();
  const app = routes(gw);
  if (config.natsUrl) {
    gw.broker = new NatsBroker(config.natsUrl, `wsgate ${config.nodeId}`, hooks);
  } else {
    const embedded = new EmbeddedBroker(hooks);
    gw.broker = embedded;
    embeddedRoutes(app, gw, embedded);
  }
  return { gw, app };
}

/** Logs what every operator wants to see at start, including the unauthenticated-identity warning. */
export function logStart(gw: Gateway, listening: { host: string; port: number }) {
  const c = gw.config;
  log("info", "wsgate listening", {
    runtime: gw.transport.runtime,
    host: listening.host,
    port: listening.port,
    node: c.nodeId,
    broker: c.natsUrl ? `nats ${c.natsUrl}` : "embedded (single node, no NATS)",
    mailbox: c.mailbox ? `on (stream ${c.mailbox.stream}, ${c.mailbox.replicas} replica${c.mailbox.replicas > 1 ? "s" : ""}, ${c.mailbox.maxPerUser || "no cap"}/user, ${c.mailbox.maxAgeS}s)` : "off",
    subjects: `${c.prefix}.send.<svc>.<user> / ${c.prefix}.recv.<svc>.<user>`,
    openFilesLimit: gw.metrics.openFilesLimit,
    maxConnections: c.maxConnections,
    scheme: c.tlsCert ? "https/wss (TLS)" : "http/ws (no TLS)",
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

/**
 * SIGTERM and SIGINT: stop accepting, send every client away with 1001 so it reconnects
 * elsewhere, give the close frames a moment, flush the broker, exit 0, all within
 * WSGATE_DRAIN_TIMEOUT_MS. The adapter says how its runtime stops listening.
 */
export function drainer(gw: Gateway, exit: (code: number) => never, steps: { stopAccepting?: () => void; afterSockets?: () => Promise<unknown> }) {
  return async function drain() {
    if (gw.isDraining()) return;
    const force = setTimeout(() => {
      log("warn", "drain timed out; exiting");
      exit(0);
    }, gw.config.drainTimeoutMs);
    steps.stopAccepting?.();
    await gw.shutdown();
    for (let i = 0; i < 50 && gw.metrics.connections > 0; i++) await new Promise((r) => setTimeout(r, 20));
    await steps.afterSockets?.();
    clearTimeout(force);
    log("info", "drained; exiting");
    exit(0);
  };
}
