// HTTP surface: health, metrics, the publish API, and the upgrade decision for /ws.
// Hono only routes and decides; the adapters bind socket events to the Gateway directly,
// so no per-message context or event object is built on the hot path.
import { Hono } from "hono";
import { type Tap, tapStream } from "./sse.ts";
import type { Context } from "hono";
import type { EmbeddedBroker } from "../broker/embedded.ts";
import { HEADER, NotStored } from "../broker/broker.ts";
import type { Conn } from "../core/conn.ts";
import type { Gateway } from "../core/gateway.ts";
import { metricsResponse } from "../ops/metrics-route.ts";
import { logRefusals } from "../ops/refusals.ts";
import { type Identity, type IdentityError, isIdentityError } from "../security/identity.ts";
import { badIds, frameHeader, readBody } from "./input.ts";
import { toBase64 } from "../envelope/frames.ts";
import { SUBPROTOCOL } from "../../protocol/envelope.ts";
import { requestRoutes } from "./rpc-routes.ts";
import { mailboxRoutes } from "./mailbox-routes.ts";

/** Per request, the adapter says how to upgrade on its runtime. */
export type UpgradeEnv = {
  Bindings: {
    /**
     * Performs the upgrade with `conn` as the socket's data; returns the response to hand back.
     * When `conn.envelope` is set it selects the wsgate.v1 subprotocol (Sec-WebSocket-Protocol).
     */
    upgrade: (req: Request, conn: Conn) => Response;
  };
};

/** becomes the stream's Nats-Msg-Id: a retried publish with the same key is stored once (2-minute window) */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

export function routes(gw: Gateway): Hono<UpgradeEnv> {
  const app = new Hono<UpgradeEnv>();
  const sec = gw.security;

  app.get("/healthz", (c) => c.text("ok\n"));

  app.get("/readyz", (c) => {
    const r = gw.ready();
    return r.ok ? c.text("ready\n") : c.text(`not ready: ${r.reason}\n`, 503);
  });

  // With WSGATE_METRICS_PORT the adapter serves metricsResponse on its own listener instead.
  if (!gw.config.metrics) app.get("/metrics", () => metricsResponse(gw));

  // The service API (publish, embedded event stream) reaches every user: in production it
  // needs the operator's bearer token, and without one configured it stays shut.
  app.use("/v1/*", async (c, next) => {
    if (!sec.serviceApiGuarded) return next();
    if (!sec.serviceToken.configured) {
      gw.metrics.serviceApiRefused++;
      return c.json({ error: "the service API is disabled in production mode until WSGATE_PUBLISH_TOKEN is set" }, 403);
    }
    if (!(await sec.serviceToken.check(c.req.header("authorization")))) {
      gw.metrics.serviceApiRefused++;
      return c.json({ error: "Authorization: Bearer <WSGATE_PUBLISH_TOKEN> is missing or wrong" }, 401, { "WWW-Authenticate": 'Bearer realm="wsgate"' });
    }
    return next();
  });

  app.post("/v1/publish/:svc/:user", async (c) => {
    const { svc, user } = c.req.param();
    const bad = badIds(c, { svc, user });
    if (bad) return bad;
    const frame = frameHeader(c);
    if (frame instanceof Response) return frame;
    const body = await readBody(c);
    if (body instanceof Response) return body;
    const key = c.req.header("idempotency-key");
    if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) return c.json({ error: "Idempotency-Key must be 1 to 128 visible ASCII characters" }, 400);
    if (gw.broker.state() !== "connected") return c.json({ error: `broker ${gw.broker.state()}` }, 503, { "Retry-After": "1" });
    const subject = gw.subjects.recv(svc, user);
    const headers = frame ? { [HEADER.frame]: frame } : undefined;
    try {
      // With the mailbox, 202 means stored (on a quorum of replicas), so a message is never
      // acknowledged here and then lost in a NATS failover.
      if (gw.mailbox) await gw.broker.publishStored(subject, body, headers, key);
      else gw.broker.publish(subject, body, headers);
    } catch (err) {
      const error = err instanceof NotStored ? `not stored, retry: ${err.message}` : `publish not confirmed, it may have been stored (retry with the same Idempotency-Key to store it once): ${err instanceof Error ? err.message : err}`;
      return c.json({ error }, 503, { "Retry-After": "1" });
    }
    return c.json({ subject, bytes: body.length }, 202);
  });

  const upgrade = (c: Context<UpgradeEnv>) => {
    if ((c.req.header("upgrade") ?? "").toLowerCase() !== "websocket") {
      gw.metrics.refused.bad_request++;
      return c.text("expected a WebSocket upgrade (Upgrade: websocket)\n", 426);
    }
    // Before any signature check: a flood of upgrades costs a counter, not crypto.
    if (!sec.upgrades.take()) {
      gw.metrics.refused.upgrade_rate++;
      return c.text("too many upgrades on this node right now (WSGATE_MAX_UPGRADES_PER_SEC); retry shortly\n", 503, { "Retry-After": "1" });
    }
    const origin = c.req.header("origin");
    if (!sec.origins.allows(origin)) {
      gw.metrics.refused.origin++;
      return c.text(`origin ${JSON.stringify(origin)} is not allowed (WSGATE_ALLOWED_ORIGINS)\n`, 403);
    }
    const finish = (id: Identity | IdentityError) => {
      if (isIdentityError(id)) {
        gw.metrics.refused.identity++;
        return c.text(id.error + "\n", id.status);
      }
      const conn = gw.admit(id, offersEnvelope(c.req.header("sec-websocket-protocol")));
      if ("error" in conn) return c.text(conn.error + "\n", conn.status as 503);
      return c.env.upgrade(c.req.raw, conn);
    };
    const id = sec.auth.identify(c.req.raw);
    return id instanceof Promise ? id.then(finish) : finish(id);
  };
  requestRoutes(app, gw);
  mailboxRoutes(app, gw);

  app.get("/ws", logRefusals(upgrade));
  app.get("/ws/*", logRefusals(upgrade));

  app.notFound((c) => c.text("not found\n", 404));
  app.onError((err, c) => c.text(`internal error: ${err.message}\n`, 500));
  return app;
}

/**
 * Embedded mode only: services without NATS read what clients send as a
 * Server-Sent Events stream, one JSON event per client frame.
 */
export function embeddedRoutes(app: Hono<UpgradeEnv>, gw: Gateway, broker: EmbeddedBroker) {
  const sendPrefix = gw.subjects.send("", "").slice(0, -1); // "<prefix>.send."
  app.get("/v1/messages/:svc", (c) => {
    const svc = c.req.param("svc");
    const bad = badIds(c, { svc });
    if (bad) return bad;
    const prefix = sendPrefix + svc + ".";
    const decoder = new TextDecoder();
    const tap: Tap = (push) =>
      broker.tap(prefix, (subject, data, headers) => {
        const binary = headers[HEADER.frame] === "binary";
        push(
          JSON.stringify({
            user: subject.slice(prefix.length),
            conn: headers[HEADER.conn],
            node: headers[HEADER.node],
            frame: binary ? "binary" : "text",
            data: binary ? toBase64(data) : decoder.decode(data),
          }),
        );
      });
    return tapStream(c, tap, () => "message");
  });
}

/** The client offers the wsgate.v1 envelope among its subprotocols (a comma-separated list). */
function offersEnvelope(header: string | undefined): boolean {
  if (!header) return false;
  for (const p of header.split(",")) if (p.trim() === SUBPROTOCOL) return true;
  return false;
}
