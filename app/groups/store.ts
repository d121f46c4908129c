// Membership is changed only through a store: in memory on an embedded node, in a NATS
// key-value bucket (kv-store.ts) or in Redis (redis-store.ts). Each keeps a MembershipIndex current, which
// every read (a connection opening, the listing routes) is answered from.
import { MembershipIndex, type MembershipChange } from "./members.ts";

/** 0 = unlimited */
export type GroupCaps = { maxGroupsPerUser: number; maxGroupMembers: number };

export type MembershipResult =
  | { ok: true; changed: boolean; groups: readonly string[] }
  | { ok: false; status: 409 | 503; error: string };

export interface MembershipStore {
  readonly index: MembershipIndex;
  add(svc: string, group: string, user: string): Promise<MembershipResult>;
  remove(svc: string, group: string, user: string): Promise<MembershipResult>;
  /** NATS: binds to a new broker connection; returns at once, the store is usable once bound. */
  attach?(nc: unknown): void;
  close(): Promise<void>;
}

/** What a change turns a user's groups into: the new list, `null` when nothing changes, or the cap it breaks. */
export function planChange(
  op: "add" | "remove",
  current: readonly string[],
  svc: string,
  group: string,
  user: string,
  caps: GroupCaps,
  index: MembershipIndex,
): readonly string[] | null | { status: 409; error: string } {
  const has = current.includes(group);
  if (op === "remove") return has ? current.filter((g) => g !== group) : null;
  if (has) return null;
  if (caps.maxGroupsPerUser > 0 && current.length >= caps.maxGroupsPerUser) {
    return { status: 409, error: `user ${user} is already in ${current.length} groups of ${svc}, the cap (WSGATE_MAX_GROUPS_PER_USER=${caps.maxGroupsPerUser})` };
  }
  // Counted from this node's index: two nodes adding at the same instant can pass the cap by one each.
  if (caps.maxGroupMembers > 0 && index.memberCount(svc, group) >= caps.maxGroupMembers && !index.has(svc, group, user)) {
    return { status: 409, error: `group ${group} of ${svc} already has ${index.memberCount(svc, group)} members, the cap (WSGATE_MAX_GROUP_MEMBERS=${caps.maxGroupMembers})` };
  }
  return [...current, group];
}

/** Embedded mode: one node, so the index is the store. Lost on restart, like the embedded broker's messages. */
export class MemoryMembershipStore implements MembershipStore {
  readonly index: MembershipIndex;
  private revision = 0;

  constructor(
    private readonly caps: GroupCaps,
    changed: MembershipChange,
  ) {
    this.index = new MembershipIndex(changed);
  }

  add(svc: string, group: string, user: string) {
    return Promise.resolve(this.change("add", svc, group, user));
  }

  remove(svc: string, group: string, user: string) {
    return Promise.resolve(this.change("remove", svc, group, user));
  }

  private change(op: "add" | "remove", svc: string, group: string, user: string): MembershipResult {
    const current = this.index.groupsOf(svc, user);
    const next = planChange(op, current, svc, group, user, this.caps, this.index);
    if (next === null) return { ok: true, changed: false, groups: current };
    if ("error" in next) return { ok: false, ...next };
    this.index.apply(svc, user, next, ++this.revision);
    return { ok: true, changed: true, groups: next };
  }

  async close() {}
}
