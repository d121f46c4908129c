// Who is in which group, as this node knows it. Membership is one record per user (the
// user's groups), so the index is fed whole records and works out what changed; the
// group → members side is derived from it. Both stores (memory, NATS KV) feed it.

/** A user's groups within one service changed: `joined` and `left` name the groups. */
export type MembershipChange = (svc: string, user: string, joined: readonly string[], left: readonly string[]) => void;

type Record = { groups: readonly string[]; revision: number };

const NONE: readonly string[] = Object.freeze([]);

export class MembershipIndex {
  /** `<svc>.<user>` → the user's record */
  private users = new Map<string, Record>();
  /** `<svc>.<group>` → its members */
  private groups = new Map<string, Set<string>>();

  constructor(private readonly changed: MembershipChange) {}

  groupsOf(svc: string, user: string): readonly string[] {
    return this.users.get(svc + "." + user)?.groups ?? NONE;
  }

  revisionOf(svc: string, user: string): number {
    return this.users.get(svc + "." + user)?.revision ?? 0;
  }

  members(svc: string, group: string): string[] {
    const set = this.groups.get(svc + "." + group);
    return set ? [...set].sort() : [];
  }

  memberCount(svc: string, group: string): number {
    return this.groups.get(svc + "." + group)?.size ?? 0;
  }

  has(svc: string, group: string, user: string): boolean {
    return this.groups.get(svc + "." + group)?.has(user) ?? false;
  }

  /**
   * Takes a user's whole record at a store revision. Older revisions than the one held are
   * ignored: a node's own write is applied at once and its watch echo comes later.
   */
  apply(svc: string, user: string, groups: readonly string[], revision: number): void {
    const key = svc + "." + user;
    const before = this.users.get(key);
    if (before && revision > 0 && revision <= before.revision) return;
    const old = before?.groups ?? NONE;
    // An emptied record stays as a revision mark, so a late echo of an older write cannot revive it.
    this.users.set(key, { groups: groups.length ? groups : NONE, revision });
    const joined = groups.filter((g) => !old.includes(g));
    const left = old.filter((g) => !groups.includes(g));
    for (const g of joined) {
      const gk = svc + "." + g;
      let set = this.groups.get(gk);
      if (!set) this.groups.set(gk, (set = new Set()));
      set.add(user);
    }
    for (const g of left) {
      const gk = svc + "." + g;
      const set = this.groups.get(gk);
      if (set?.delete(user) && set.size === 0) this.groups.delete(gk);
    }
    if (joined.length || left.length) this.changed(svc, user, joined, left);
  }
}
