// How many messages wait in a user's mailbox (the admin console's user view). Mounted under
// /v1/, so in production mode it sits behind the service bearer token like publish.
import type { Env, Hono } from "hono";
import type { Gateway } from "../core/gateway.ts";
import { badIds } from "./input.ts";

export function mailboxRoutes<E extends Env>(app: Hono<E>, gw: Gateway) {
  app.get("/v1/mailbox/:svc/:user", async (c) => {
    const { svc, user } = c.req.param();
    const bad = badIds(c, { svc, user });
    if (bad) return bad;
    const mailbox = gw.mailbox;
    if (!mailbox) return c.json({ error: "the mailbox is off (no NATS_URL, or WSGATE_MAILBOX=off)" }, 404);
    if (!mailbox.store.pending) return c.json({ error: "this mailbox store cannot count a user's messages (the Redis mailbox)" }, 501);
    if (gw.broker.state() !== "connected") return c.json({ error: `broker ${gw.broker.state()}` }, 503);
    try {
      return c.json({ svc, user, ...(await mailbox.store.pending(`${svc}.${user}`)) });
    } catch (err) {
      return c.json({ error: `JetStream: ${String(err)}` }, 503);
    }
  });
}
