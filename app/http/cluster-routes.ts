// HTTP side of the cluster features: nodes, presence, disconnect, send to one connection,
// and (embedded mode) the event stream. Mounted under /v1/, so in production mode every
// route sits behind the service bearer token like /v1/publish.
import type { Env, Hono } from "hono";
import type { EmbeddedBroker } from "../broker/embedded.ts";
import { badIds, isBad, parseMode, parsePage } from "../cluster/args.ts";
import type { Cluster } from "../cluster/cluster.ts";
import { frameHeader, readBody } from "./input.ts";
import { tapStream } from "./sse.ts";

export function clusterRoutes<E extends Env>(app: Hono<E>, cluster: Cluster, embedded: EmbeddedBroker | null) {
  app.get("/v1/nodes", (c) => {
    const now = Date.now();
    const nodes = cluster.members.nodes().map((n) => ({
      node: n.node,
      runtime: n.runtime,
      version: n.version,
      uptimeS: Math.max(0, Math.round((now - n.started) / 1000)),
      connections: n.connections,
      users: n.users,
      draining: n.draining,
      broker: n.broker,
      lastAnnounce: new Date(n.at).toISOString(),
    }));
    return c.json({ nodes, downAfterMs: cluster.members.downAfterMs });
  });

  app.get("/v1/presence/:svc", async (c) => {
    const svc = c.req.param("svc");
    const bad = badIds({ svc });
    if (bad) return c.json(bad, 400);
    const page = parsePage(c.req.query("limit"), c.req.query("after"));
    if (isBad(page)) return c.json(page, 400);
    return c.json(await cluster.presence.service(svc, page.after, page.limit));
  });

  app.get("/v1/presence/:svc/:user", async (c) => {
    const { svc, user } = c.req.param();
    const bad = badIds({ svc, user });
    if (bad) return c.json(bad, 400);
    return c.json(await cluster.presence.user(svc, user));
  });

  const disconnect = async (svc: string, user: string, conn: string | undefined, modeParam: string | undefined) => {
    const bad = badIds({ svc, user, conn });
    if (bad) return { status: 400 as const, body: bad };
    const mode = parseMode(modeParam);
    if (isBad(mode)) return { status: 400 as const, body: mode };
    const r = await cluster.control.disconnect(svc, user, conn ?? null, mode);
    if (conn && r.closed === 0) return { status: 404 as const, body: { error: `connection ${conn} of ${svc}/${user} is not open` } };
    return { status: 200 as const, body: { ...r, mode } };
  };

  app.delete("/v1/connections/:svc/:user", async (c) => {
    const { svc, user } = c.req.param();
    const r = await disconnect(svc, user, undefined, c.req.query("mode"));
    return c.json(r.body, r.status);
  });

  app.delete("/v1/connections/:svc/:user/:conn", async (c) => {
    const { svc, user, conn } = c.req.param();
    const r = await disconnect(svc, user, conn, c.req.query("mode"));
    return c.json(r.body, r.status);
  });

  app.post("/v1/connections/:svc/:user/:conn", async (c) => {
    const { svc, user, conn } = c.req.param();
    const bad = badIds({ svc, user, conn });
    if (bad) return c.json(bad, 400);
    const frame = frameHeader(c);
    if (frame instanceof Response) return frame;
    const body = await readBody(c);
    if (body instanceof Response) return body;
    const sent = await cluster.control.send(svc, user, conn, body, frame);
    return sent ? c.json({ sent: true, bytes: body.length }) : c.json({ error: `connection ${conn} of ${svc}/${user} is not open` }, 404);
  });

  if (!embedded) return;
  // Embedded mode has no NATS for services to subscribe to: the same events stream here.
  app.get("/v1/events/:svc", (c) => {
    const svc = c.req.param("svc");
    const bad = badIds({ svc });
    if (bad) return c.json(bad, 400);
    const prefix = cluster.subjects.eventsOf(svc);
    const decoder = new TextDecoder();
    return tapStream(c, (push) => embedded.tap(prefix, (_subject, data) => push(decoder.decode(data))), (data) => JSON.parse(data).event);
  });
}
