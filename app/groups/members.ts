// Who is in which group, as this node knows it. Membership is one record per user (the
// user's groups), so the index is fed whole records and works out what changed; the
// group → members side is derived from it. Both stores (memory, NATS KV) feed it.
// Every node holds every membership: names are stored once (one string per user, one per
// group) however many memberships refer to them.

/** A user's groups within one service changed: `joined` and `left` name the groups. */
export type MembershipChange = (svc: string, user: string, joined: readonly string[], left: readonly string[]) => void;

type UserRecord = { user: string; groups: readonly string[]; revision: number };
type Group = { name: string; members: Set<string> };

const NONE: readonly string[] = Object.freeze([]);

export class MembershipIndex {
  /** `<svc>.<user>` → the user's record */
  private users = new Map<string, UserRecord>();
  /** `<svc>.<group>` → its members */
  private groups = new Map<string, Group>();

  constructor(private readonly changed: MembershipChange) {}

  groupsOf(svc: string, user: string): readonly string[] {
    return this.users.get(svc + "." + user)?.groups ?? NONE;
  }

  revisionOf(svc: string, user: string): number {
    return this.users.get(svc + "." + user)?.revision ?? 0;
  }

  members(svc: string, group: string): string[] {
    const g = this.groups.get(svc + "." + group);
    return g ? [...g.members].sort() : [];
  }

  memberCount(svc: string, group: string): number {
    return this.groups.get(svc + "." + group)?.members.size ?? 0;
  }

  has(svc: string, group: string, user: string): boolean {
    return this.groups.get(svc + "." + group)?.members.has(user) ?? false;
  }

  /** Every `<svc>.<user>` holding a record (a full reload drops those the store no longer has). */
  keys(): IterableIterator<string> {
    return this.users.keys();
  }

  /**
   * Takes a user's whole record at a store revision. Older revisions than the one held are
   * ignored: a node's own write is applied at once and its watch echo comes later. `force`
   * takes it whatever the revision (a store whose revisions started over).
   */
  apply(svc: string, user: string, groups: readonly string[], revision: number, force = false): void {
    const key = svc + "." + user;
    const before = this.users.get(key);
    if (before && !force && revision > 0 && revision <= before.revision) return;
    const name = before?.user ?? user;
    const old = before?.groups ?? NONE;
    const joined = groups.filter((g) => !old.includes(g));
    const left = old.filter((g) => !groups.includes(g));
    for (const g of left) {
      const gk = svc + "." + g;
      const entry = this.groups.get(gk);
      if (entry?.members.delete(name) && entry.members.size === 0) this.groups.delete(gk);
    }
    for (const g of joined) {
      const gk = svc + "." + g;
      let entry = this.groups.get(gk);
      if (!entry) this.groups.set(gk, (entry = { name: g, members: new Set() }));
      entry.members.add(name);
    }
    // Group names as the index holds them, so a thousand members share one string per group.
    const stored = groups.length ? groups.map((g) => this.groups.get(svc + "." + g)!.name) : NONE;
    // An emptied record stays as a revision mark, so a late echo of an older write cannot revive it.
    if (before) {
      before.groups = stored;
      before.revision = revision;
    } else this.users.set(key, { user: name, groups: stored, revision });
    if (joined.length || left.length) this.changed(svc, user, joined, left);
  }
}
