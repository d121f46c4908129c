// The admin console (README "Admin console"): mounted at /admin only when WSGATE_ADMIN_TOKEN
// is set. Pages and assets are served from strings compiled into the program (assets.gen.ts),
// so the console works the same on every runtime and inside the single binary.
import type { Env, Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { log } from "../ops/log.ts";
import { act, type CallApi, lookUpUser, parseAction } from "./actions.ts";
import { ASSETS } from "./assets.gen.ts";
import { Feed, type FeedMessage, type NodesView } from "./feed.ts";
import { guard, sameOrigin } from "./guard.ts";
import { Series } from "./series.ts";
import { Sessions } from "./session.ts";
import { idError, isId } from "../../protocol/ids.ts";

export type AdminDeps = {
  token: string;
  /** cookies get Secure when the gateway serves TLS */
  tls: boolean;
  nodeId: string;
  series: Series;
  /** this node alone, for when no cluster node list answers */
  localNode: () => Record<string, unknown>;
  call: CallApi;
  /** the cluster's lifecycle events, when anything publishes them */
  events: ((onEvent: (json: string) => void) => () => void) | null;
  /** counts refused sign-ins (wsgate_admin_signin_failures_total) */
  signinFailed: () => void;
};

const PAGE_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-store",
  "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
  "x-frame-options": "DENY",
  // Not no-referrer: under it Chromium sends `Origin: null` on the console's own form posts.
  "referrer-policy": "same-origin",
  "x-content-type-options": "nosniff",
};

const TYPES: Record<string, string> = { js: "text/javascript; charset=utf-8", css: "text/css; charset=utf-8" };

export function adminRoutes<E extends Env>(app: Hono<E>, deps: AdminDeps): Feed {
  const sessions = new Sessions(deps.token);
  const feed = new Feed({ series: deps.series, nodeId: deps.nodeId, nodes: () => nodesView(deps), events: deps.events });
  feed.start();
  const page = (name: "signin.html" | "console.html", fill: Record<string, string>, status = 200) => {
    let html: string = ASSETS[name];
    for (const [k, val] of Object.entries(fill)) html = html.replaceAll(`{{${k}}}`, escapeHtml(val));
    return new Response(html, { status, headers: PAGE_HEADERS });
  };
  const signin = (message: string, status = 200) => page("signin.html", { node: deps.nodeId, message }, status);

  app.get("/admin", (c) => {
    const s = sessions.fromCookie(c.req.header("cookie"));
    if (!s) return signin("");
    return page("console.html", { node: deps.nodeId, csrf: s.csrf });
  });
  app.get("/admin/", (c) => c.redirect("/admin", 303));

  app.get("/admin/assets/:name", (c) => {
    const name = c.req.param("name");
    const body = Object.hasOwn(ASSETS, name) && !name.endsWith(".html") ? ASSETS[name as keyof typeof ASSETS] : null;
    if (body === null) return c.text("not found\n", 404);
    return c.body(body, 200, { "content-type": TYPES[name.split(".").pop()!] ?? "application/octet-stream", "cache-control": "no-cache", "x-content-type-options": "nosniff" });
  });

  app.post("/admin/signin", async (c) => {
    // A sign-in from another site would sign the operator's browser into someone else's session.
    if (!sameOrigin(c.req.raw)) return c.json({ error: "cross-site request refused" }, 403);
    const form = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
    const token = typeof form.token === "string" ? form.token : "";
    if (!(await sessions.tokenMatches(token))) {
      deps.signinFailed();
      log("warn", "admin console: sign-in refused (wrong token)", { ip: c.req.header("x-forwarded-for") ?? null });
      return signin("Wrong token.", 401);
    }
    const s = sessions.create();
    log("info", "admin console: signed in");
    return new Response(null, { status: 303, headers: { location: "/admin", "set-cookie": sessions.cookie(s, deps.tls), "cache-control": "no-store" } });
  });

  app.post("/admin/signout", async (c) => {
    const s = await guard(c, sessions, true);
    if (s instanceof Response) return s;
    sessions.end(s);
    return new Response(null, { status: 303, headers: { location: "/admin", "set-cookie": sessions.clearCookie(deps.tls), "cache-control": "no-store" } });
  });

  app.get("/admin/api/feed", async (c) => {
    const s = await guard(c, sessions, false);
    if (s instanceof Response) return s;
    await feed.refreshNodes();
    return streamSSE(c, async (stream) => {
      const queue: FeedMessage[] = [];
      let wake: (() => void) | null = null;
      const unsubscribe = feed.subscribe((m) => {
        // A console that stopped reading gets the newest second, not an ever-growing queue.
        if (queue.length < 1000) queue.push(m);
        wake?.();
      });
      stream.onAbort(() => {
        unsubscribe();
        wake?.();
      });
      await stream.writeSSE({ event: "history", data: JSON.stringify(feed.history()) });
      while (!stream.aborted && !stream.closed && sessions.fromCookie(c.req.header("cookie"))) {
        while (queue.length) {
          const m = queue.shift()!;
          await stream.writeSSE({ event: m.type, data: JSON.stringify(m.type === "tick" ? { sample: m.sample, nodes: m.nodes } : m.event) });
        }
        await new Promise<void>((r) => (wake = r));
        wake = null;
      }
      unsubscribe();
    });
  });

  app.get("/admin/api/user/:svc/:user", async (c) => {
    const s = await guard(c, sessions, false);
    if (s instanceof Response) return s;
    const { svc, user } = c.req.param();
    if (!isId(svc)) return c.json({ error: idError("svc") }, 400);
    if (!isId(user)) return c.json({ error: idError("user") }, 400);
    return c.json(await lookUpUser(deps.call, svc, user), 200, { "cache-control": "no-store" });
  });

  app.post("/admin/api/act", async (c) => {
    const s = await guard(c, sessions, true);
    if (s instanceof Response) return s;
    const input = await c.req.json().catch(() => null);
    if (input === null) return c.json({ error: "the body must be a JSON object" }, 400);
    const a = parseAction(input);
    if ("error" in a) return c.json(a, 400);
    const answer = await act(deps.call, a);
    log("info", "admin console: action", { kind: a.kind, route: answer.route, status: answer.status });
    return c.json(answer);
  });

  app.all("/admin/*", (c) => c.text("not found\n", 404));
  return feed;
}

/** The cluster's node list when its route answers; otherwise this node, read now. */
async function nodesView(deps: AdminDeps): Promise<NodesView> {
  const res = await deps.call("GET", "/v1/nodes");
  if (res.ok) {
    const body = (await res.json()) as { nodes: unknown[]; downAfterMs?: number };
    return { source: "cluster", nodes: body.nodes, downAfterMs: body.downAfterMs };
  }
  const why = res.status === 404 ? undefined : `GET /v1/nodes answered ${res.status}: ${(await res.text()).slice(0, 200)}`;
  return { source: "local", nodes: [deps.localNode()], ...(why ? { error: why } : {}) };
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
