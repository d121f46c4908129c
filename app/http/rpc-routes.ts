// POST /v1/request/<svc>/<user>: ask a connected user something over HTTP and wait for the
// answer. It takes the same path as a NATS request to <prefix>.req.<svc>.<user> (and is
// the only way to make one in embedded mode), so it reaches the user on any node.
import type { Hono } from "hono";
import { HEADER } from "../broker/broker.ts";
import type { Gateway } from "../core/gateway.ts";
import { MAX_REQUEST_TIMEOUT_MS } from "../envelope/rpc.ts";
import { ID_PATTERN } from "../core/subjects.ts";

/** As the publish route: NATS's default max_payload. */
const MAX_BODY = 1024 * 1024;

/** How a failed request shows in HTTP: nobody to ask, nobody answered in time, the broker is away. */
const STATUS: Record<string, 404 | 502 | 503 | 504> = { no_responders: 404, timeout: 504, unavailable: 503 };

export function requestRoutes(app: Hono<any>, gw: Gateway) {
  app.post("/v1/request/:svc/:user", async (c) => {
    const { svc, user } = c.req.param();
    if (!ID_PATTERN.test(svc)) return c.json({ error: "svc must match ^[A-Za-z0-9_-]{1,64}$" }, 400);
    if (!ID_PATTERN.test(user)) return c.json({ error: "user must match ^[A-Za-z0-9_-]{1,64}$" }, 400);
    const t = c.req.query("timeout");
    const ms = t === undefined ? gw.config.rpc.requestTimeoutMs : /^\d{1,9}$/.test(t) ? Number(t) : NaN;
    if (!(ms >= 1 && ms <= MAX_REQUEST_TIMEOUT_MS)) return c.json({ error: `timeout must be whole milliseconds from 1 to ${MAX_REQUEST_TIMEOUT_MS}` }, 400);
    const frame = c.req.header(HEADER.frame);
    if (frame !== undefined && frame !== "text" && frame !== "binary") return c.json({ error: `${HEADER.frame} must be text or binary` }, 400);
    if (Number(c.req.header("content-length") ?? 0) > MAX_BODY) return c.json({ error: `body over ${MAX_BODY} bytes` }, 413);
    const body = new Uint8Array(await c.req.arrayBuffer());
    if (body.length > MAX_BODY) return c.json({ error: `body over ${MAX_BODY} bytes` }, 413);
    if (gw.broker.state() !== "connected") return c.json({ error: "unavailable", message: `broker ${gw.broker.state()}` }, 503);
    const a = await gw.rpc.requestUser(svc, user, body, frame, ms);
    if (!a.ok) return c.json({ error: a.code, message: a.message }, STATUS[a.code] ?? 502);
    const binary = a.hint === "binary";
    return c.body(a.data as Uint8Array<ArrayBuffer>, 200, {
      "content-type": binary ? "application/octet-stream" : "text/plain; charset=utf-8",
      [HEADER.frame]: binary ? "binary" : "text",
    });
  });
}
