// The membership operations as the service API offers them, once for both doors: HTTP
// (app/http/group-routes.ts) and NATS requests (requests.ts). Each answer is a status and
// a JSON body; ids are checked here, so neither door can put a wildcard in a subject.
import { idError, isId } from "../../protocol/ids.ts";
import type { MembershipStore } from "./store.ts";

export type Answer = { status: number; body: Record<string, unknown> };

const bad = (part: string): Answer => ({ status: 400, body: { error: idError(part) } });

/** Checks named ids in order; the first bad one is the answer. */
export function checkIds(ids: Record<string, string | undefined>): Answer | null {
  for (const [part, value] of Object.entries(ids)) if (!isId(value)) return bad(part);
  return null;
}

export async function changeMembership(store: MembershipStore, op: "add" | "remove", svc: string, group: string, user: string): Promise<Answer> {
  const badId = checkIds({ svc, group, user });
  if (badId) return badId;
  const r = op === "add" ? await store.add(svc, group, user) : await store.remove(svc, group, user);
  if (!r.ok) return { status: r.status, body: { error: r.error } };
  return { status: 200, body: { svc, group, user, member: op === "add", changed: r.changed, groups: r.groups } };
}

export function listMembers(store: MembershipStore, svc: string, group: string): Answer {
  const badId = checkIds({ svc, group });
  if (badId) return badId;
  return { status: 200, body: { svc, group, members: store.index.members(svc, group) } };
}

export function listGroups(store: MembershipStore, svc: string, user: string): Answer {
  const badId = checkIds({ svc, user });
  if (badId) return badId;
  return { status: 200, body: { svc, user, groups: store.index.groupsOf(svc, user) } };
}

/**
 * A membership request over NATS, by the part of its subject after `<prefix>.groups.`:
 * `add.<svc>.<group>.<user>`, `remove.<svc>.<group>.<user>`, `members.<svc>.<group>`, `user.<svc>.<user>`.
 */
export function answerRequest(store: MembershipStore, tail: string): Answer | Promise<Answer> {
  const t = tail.split(".");
  switch (t[0]) {
    case "add":
    case "remove":
      if (t.length !== 4) break;
      return changeMembership(store, t[0], t[1], t[2], t[3]);
    case "members":
      if (t.length !== 3) break;
      return listMembers(store, t[1], t[2]);
    case "user":
      if (t.length !== 3) break;
      return listGroups(store, t[1], t[2]);
  }
  return {
    status: 404,
    body: { error: "unknown membership request: use add.<svc>.<group>.<user>, remove.<svc>.<group>.<user>, members.<svc>.<group> or user.<svc>.<user>" },
  };
}
