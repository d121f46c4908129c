// The console acts only through the gateway's own service API (/v1/...), called in-process:
// the same checks, the same answers a service gets, and the operator sees exactly that
// answer. Nothing here reaches into the core.
import * as v from "valibot";
import { ID_RULE_TEXT, isId } from "../../protocol/ids.ts";

/** Calls one route of the gateway's own app; the answer is the route's, untouched. */
export type CallApi = (method: string, path: string, body?: string, headers?: Record<string, string>) => Promise<Response>;

/** An API answer as the page shows it: which route, its status, its body. */
export type Answer = { route: string; status: number; body: unknown };

const id = (part: string) => v.pipe(v.string(`${part} is required`), v.check((s: string) => isId(s), `${part} must match ${ID_RULE_TEXT}`));
/** Connection ids are `<node>.<n>` (README "Connection ids"). */
const connId = v.pipe(
  v.string("conn is required"),
  v.check((s) => s.split(".").length === 2 && s.split(".").every(isId), "conn must be <node>.<n>, both parts matching " + ID_RULE_TEXT),
);
const text = v.pipe(v.string("text is required"), v.maxLength(64 * 1024, "text must be at most 65536 characters"));
const mode = v.picklist(["terminal", "reconnect"], "mode must be terminal or reconnect");

export const ActionSchema = v.variant("kind", [
  v.object({ kind: v.literal("send-user"), svc: id("svc"), user: id("user"), text }),
  v.object({ kind: v.literal("send-conn"), svc: id("svc"), user: id("user"), conn: connId, text }),
  v.object({ kind: v.literal("send-group"), svc: id("svc"), group: id("group"), text }),
  v.object({ kind: v.literal("broadcast"), svc: id("svc"), text }),
  v.object({ kind: v.literal("disconnect-conn"), svc: id("svc"), user: id("user"), conn: connId, mode }),
  v.object({ kind: v.literal("disconnect-user"), svc: id("svc"), user: id("user"), mode }),
], "kind must be one of send-user, send-conn, send-group, broadcast, disconnect-conn, disconnect-user");

export type Action = v.InferOutput<typeof ActionSchema>;

/** Checks an action from the page; the first problem as one sentence, or the action. */
export function parseAction(input: unknown): Action | { error: string } {
  const r = v.safeParse(ActionSchema, input);
  return r.success ? r.output : { error: r.issues[0].message };
}

/** Which route an action is, with its body. */
export function routeOf(a: Action): { method: string; path: string; body?: string } {
  switch (a.kind) {
    case "send-user":
      return { method: "POST", path: `/v1/publish/${a.svc}/${a.user}`, body: a.text };
    case "send-conn":
      return { method: "POST", path: `/v1/connections/${a.svc}/${a.user}/${a.conn}`, body: a.text };
    case "send-group":
      return { method: "POST", path: `/v1/groups/${a.svc}/${a.group}`, body: a.text };
    case "broadcast":
      return { method: "POST", path: `/v1/broadcast/${a.svc}`, body: a.text };
    case "disconnect-conn":
      return { method: "DELETE", path: `/v1/connections/${a.svc}/${a.user}/${a.conn}?mode=${a.mode}` };
    case "disconnect-user":
      return { method: "DELETE", path: `/v1/connections/${a.svc}/${a.user}?mode=${a.mode}` };
  }
}

export async function act(call: CallApi, a: Action): Promise<Answer> {
  const r = routeOf(a);
  return answer(`${r.method} ${r.path}`, await call(r.method, r.path, r.body, r.body === undefined ? undefined : { "Ws-Frame": "text" }));
}

/** Everything the console shows about one user, each part the answer of its own route. */
export async function lookUpUser(call: CallApi, svc: string, user: string): Promise<Record<"presence" | "groups" | "mailbox", Answer>> {
  const get = async (path: string) => answer(`GET ${path}`, await call("GET", path));
  const [presence, groups, mailbox] = await Promise.all([get(`/v1/presence/${svc}/${user}`), get(`/v1/users/${svc}/${user}/groups`), get(`/v1/mailbox/${svc}/${user}`)]);
  return { presence, groups, mailbox };
}

async function answer(route: string, res: Response): Promise<Answer> {
  const raw = await res.text();
  let body: unknown = raw;
  if ((res.headers.get("content-type") ?? "").includes("json")) {
    try {
      body = JSON.parse(raw);
    } catch {
      // a route that says JSON and sends something else: shown as the text it is
    }
  }
  return { route, status: res.status, body };
}
