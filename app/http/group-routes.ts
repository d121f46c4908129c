// The groups and broadcast service API (README "Groups and broadcast"). Registered on the
// app after the /v1/* bearer-token guard, so it is as protected as publish. Membership
// answers come from app/groups/api.ts, shared with the NATS membership requests.
import type { Context, Env, Hono } from "hono";
import { type Answer, changeMembership, listGroups, listMembers } from "../groups/api.ts";
import type { Groups, PublishResult } from "../groups/groups.ts";
import { badIds, frameHeader, readBody } from "./input.ts";

export function groupRoutes<E extends Env>(app: Hono<E>, groups: Groups) {
  const answer = (c: Context<E>, a: Answer) => c.json(a.body, a.status as 200);

  /** Checks the ids, Ws-Frame and body, then publishes with `send`. */
  const publish = async (c: Context<E>, ids: Record<string, string>, send: (data: Uint8Array, frame: "text" | "binary" | undefined) => PublishResult) => {
    const bad = badIds(c, ids);
    if (bad) return bad;
    const frame = frameHeader(c);
    if (frame instanceof Response) return frame;
    const body = await readBody(c);
    if (body instanceof Response) return body;
    const r = send(body, frame);
    if (r.ok) return c.json({ subject: r.subject, bytes: body.length }, 202);
    return c.json({ error: r.error }, r.status, r.retryAfterS ? { "Retry-After": String(r.retryAfterS) } : {});
  };

  app.post("/v1/groups/:svc/:group", (c) => {
    const { svc, group } = c.req.param();
    return publish(c, { svc, group }, (data, frame) => groups.publishGroup(svc, group, data, frame));
  });

  app.post("/v1/broadcast/:svc", (c) => {
    const { svc } = c.req.param();
    return publish(c, { svc }, (data, frame) => groups.publishBroadcast(svc, data, frame));
  });

  app.put("/v1/groups/:svc/:group/members/:user", async (c) => {
    const { svc, group, user } = c.req.param();
    return answer(c, await changeMembership(groups.store, "add", svc, group, user));
  });

  app.delete("/v1/groups/:svc/:group/members/:user", async (c) => {
    const { svc, group, user } = c.req.param();
    return answer(c, await changeMembership(groups.store, "remove", svc, group, user));
  });

  app.get("/v1/groups/:svc/:group/members", (c) => {
    const { svc, group } = c.req.param();
    return answer(c, listMembers(groups.store, svc, group));
  });

  app.get("/v1/users/:svc/:user/groups", (c) => {
    const { svc, user } = c.req.param();
    return answer(c, listGroups(groups.store, svc, user));
  });
}
