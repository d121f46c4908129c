// Who is online, asked of every live node at once (scatter.ts). Nothing is stored
// anywhere but on the node that holds a socket, so answers are exact for the nodes that
// answered, and name the ones that did not.
import type { LocalNode } from "./local.ts";
import type { Scatter } from "./scatter.ts";

export const USER_OP = "user";
export const SERVICE_OP = "service";

/** Users per page of GET /v1/presence/<svc>: the default, and the most one page may ask for. */
export const PAGE_DEFAULT = 100;
export const PAGE_MAX = 1_000;

export type PresenceConn = { conn: string; node: string; since: string; mode: "envelope" | "raw"; framesIn: number; framesOut: number };

export type UserPresence = { svc: string; user: string; online: boolean; connections: PresenceConn[]; missing: string[] };

export type ServicePresence = {
  svc: string;
  /** a user connected to k nodes counts k times here: an exact distinct count would move every user id across the cluster */
  users: number;
  connections: number;
  /** this page of online users, sorted, deduplicated */
  list: string[];
  /** pass as `after` for the next page; null when this was the last */
  next: string | null;
  missing: string[];
};

type ServiceAnswer = { users: number; connections: number; list: string[] };

export class Presence {
  constructor(
    private readonly local: LocalNode,
    private readonly scatter: Scatter,
  ) {}

  /** USER_OP: this node's sockets of the user. */
  answerUser(svc: string, user: string): PresenceConn[] {
    const node = this.local.nodeId;
    return this.local.connections(svc, user).map((c) => ({ conn: c.id, node, since: new Date(c.since).toISOString(), mode: c.envelope ? "envelope" : "raw", framesIn: c.framesIn, framesOut: c.framesOut }));
  }

  /** SERVICE_OP: this node's counts and its first page after `after`. */
  answerService(svc: string, after: string, limit: number): ServiceAnswer {
    return { ...this.local.serviceCounts(svc), list: this.local.serviceUsers(svc, after, limit) };
  }

  async user(svc: string, user: string): Promise<UserPresence> {
    const g = await this.scatter.ask({ op: USER_OP, args: { svc, user }, payload: null });
    const connections: PresenceConn[] = [];
    for (const a of g.answers) if (Array.isArray(a.value)) connections.push(...(a.value as PresenceConn[]));
    connections.sort((a, b) => (a.since < b.since ? -1 : a.since > b.since ? 1 : a.conn < b.conn ? -1 : 1));
    return { svc, user, online: connections.length > 0, connections, missing: g.missing };
  }

  async service(svc: string, after: string, limit: number): Promise<ServicePresence> {
    const g = await this.scatter.ask({ op: SERVICE_OP, args: { svc, after, limit }, payload: null });
    let users = 0;
    let connections = 0;
    let full = false;
    const all = new Set<string>();
    for (const a of g.answers) {
      const v = a.value as ServiceAnswer | null;
      if (!v || !Array.isArray(v.list)) continue;
      users += v.users;
      connections += v.connections;
      for (const u of v.list) all.add(u);
      if (v.list.length >= limit) full = true;
    }
    // Each node sent its own first `limit` users after `after`: the smallest `limit` of their union
    // is the cluster's true page.
    const merged = [...all].sort();
    const list = merged.slice(0, limit);
    const more = merged.length > limit || full;
    return { svc, users, connections, list, next: more && list.length ? list[list.length - 1] : null, missing: g.missing };
  }
}
