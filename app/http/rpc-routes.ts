// POST /v1/request/<svc>/<user>: ask a connected user something over HTTP and wait for the
// answer. It takes the same path as a NATS request to <prefix>.req.<svc>.<user> (and is
// the only way to make one in embedded mode), so it reaches the user on any node.
import type { Hono } from "hono";
import { HEADER } from "../broker/broker.ts";
import type { Gateway } from "../core/gateway.ts";
import { MAX_REQUEST_TIMEOUT_MS } from "../envelope/rpc.ts";
import { badIds, frameHeader, readBody } from "./input.ts";

/** How a failed request shows in HTTP: nobody to ask, nobody answered in time, the broker is away. */
const STATUS: Record<string, 404 | 502 | 503 | 504> = { no_responders: 404, timeout: 504, unavailable: 503 };

export function requestRoutes(app: Hono<any>, gw: Gateway) {
  app.post("/v1/request/:svc/:user", async (c) => {
    const { svc, user } = c.req.param();
    const bad = badIds(c, { svc, user });
    if (bad) return bad;
    const t = c.req.query("timeout");
    const ms = t === undefined ? gw.config.rpc.requestTimeoutMs : /^\d{1,9}$/.test(t) ? Number(t) : NaN;
    if (!(ms >= 1 && ms <= MAX_REQUEST_TIMEOUT_MS)) return c.json({ error: `timeout must be whole milliseconds from 1 to ${MAX_REQUEST_TIMEOUT_MS}` }, 400);
    const frame = frameHeader(c);
    if (frame instanceof Response) return frame;
    const body = await readBody(c);
    if (body instanceof Response) return body;
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
