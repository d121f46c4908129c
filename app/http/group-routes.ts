// The groups and broadcast service API (README "Groups and broadcast"). Registered on the
// app after the /v1/* bearer-token guard, so it is as protected as publish.
import type { Context, Env, Hono } from "hono";
import { HEADER } from "../broker/broker.ts";
import { type Answer, changeMembership, checkIds, listGroups, listMembers } from "../groups/api.ts";
import type { Groups, PublishResult } from "../groups/groups.ts";

/** NATS's default max_payload: the broker would refuse anything larger. */
const MAX_PUBLISH_BYTES = 1024 * 1024;

export function groupRoutes<E extends Env>(app: Hono<E>, groups: Groups) {
  const answer = (c: Context<E>, a: Answer) => c.json(a.body, a.status as 200);

  app.post("/v1/groups/:svc/:group", async (c) => {
    const { svc, group } = c.req.param();
    const bad = checkIds({ svc, group });
    if (bad) return answer(c, bad);
    const body = await payload(c);
    if ("status" in body) return answer(c, body);
    return published(c, groups.publishGroup(svc, group, body.data, body.frame), body.data.length);
  });

  app.post("/v1/broadcast/:svc", async (c) => {
    const { svc } = c.req.param();
    const bad = checkIds({ svc });
    if (bad) return answer(c, bad);
    const body = await payload(c);
    if ("status" in body) return answer(c, body);
    return published(c, groups.publishBroadcast(svc, body.data, body.frame), body.data.length);
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

function published<E extends Env>(c: Context<E>, r: PublishResult, bytes: number) {
  if (r.ok) return c.json({ subject: r.subject, bytes }, 202);
  const headers: Record<string, string> = r.retryAfterS ? { "Retry-After": String(r.retryAfterS) } : {};
  return c.json({ error: r.error }, r.status, headers);
}

/** The request body as the message, with its frame type; or the 400/413 answer. */
async function payload<E extends Env>(c: Context<E>): Promise<{ data: Uint8Array; frame?: "text" | "binary" } | Answer> {
  const frame = c.req.header(HEADER.frame);
  if (frame !== undefined && frame !== "text" && frame !== "binary") return { status: 400, body: { error: `${HEADER.frame} must be text or binary` } };
  const tooBig: Answer = { status: 413, body: { error: `body over ${MAX_PUBLISH_BYTES} bytes` } };
  if (Number(c.req.header("content-length") ?? 0) > MAX_PUBLISH_BYTES) return tooBig;
  const data = new Uint8Array(await c.req.arrayBuffer());
  if (data.length > MAX_PUBLISH_BYTES) return tooBig;
  return { data, frame };
}
