// Wires the console to one gateway node: its counters, its own service API, and (once the
// cluster's events are published) the lifecycle events. createGateway calls it.
import type { Env, Hono } from "hono";
import type { EmbeddedBroker } from "../broker/embedded.ts";
import type { Gateway } from "../core/gateway.ts";
import { VERSION } from "../ops/version.ts";
import { adminRoutes } from "./admin.ts";
import { Series } from "./series.ts";

const decoder = new TextDecoder();

/** `embedded`: the in-process broker, whose events are only built while someone taps them. */
export function mountAdmin<E extends Env>(app: Hono<E>, gw: Gateway, token: string, embedded: EmbeddedBroker | null) {
  const started = Date.now();
  const c = gw.config;
  // The console acts as a service would, so a production gateway checks it like one.
  const auth: Record<string, string> = c.publishToken ? { authorization: `Bearer ${c.publishToken}` } : {};
  return adminRoutes(app, {
    token,
    tls: Boolean(c.tlsCert),
    nodeId: c.nodeId,
    series: new Series(gw.metrics),
    localNode: () => ({
      node: c.nodeId,
      runtime: gw.transport.runtime,
      version: VERSION,
      uptimeS: Math.round((Date.now() - started) / 1000),
      connections: gw.metrics.connections,
      users: gw.metrics.users,
      draining: gw.isDraining(),
      broker: gw.broker.state(),
    }),
    call: (method, path, body, headers) => Promise.resolve(app.request(path, { method, body, headers: { ...headers, ...auth } })),
    // Lifecycle events of every service (README "Lifecycle events"); node-down included on NATS.
    events: gw.cluster && c.events
      ? (onEvent) =>
          embedded
            ? embedded.tap(`${c.prefix}.events.`, (_subject, data) => onEvent(decoder.decode(data)))
            : gw.broker.listen(`${c.prefix}.events.>`, (_subject, data) => onEvent(decoder.decode(data)))
      : null,
    signinFailed: () => gw.metrics.adminSigninFailures++,
  });
}
