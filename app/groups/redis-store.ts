// Redis mode (REDIS_URL): membership in Redis, kept in every node's index like the NATS KV store.
//   <prefix>.groups.user.<svc>.<user>      set: the user's groups (what a connection opening needs)
//   <prefix>.groups.members.<svc>.<group>  set: the group's members (the members cap, operators' SMEMBERS)
//   <prefix>.groups.revs                   hash: `<svc>.<user>` → revision of the user's last change
//   <prefix>.groups.seq                    the revision counter;  <prefix>.groups.epoch  which Redis this is
//   channel <prefix>.groups.changed        `<revision> <svc>.<user> <g1,g2,…>` after every change
// A change is one script: both caps checked, both sets and the revision written, the new record
// published, all in one atomic step, so the caps are exact even with many nodes adding at once.
// Each node subscribes to the channel on a connection of its own, then reads every record; it
// reads them all again after each reconnect (what changed while it was away was not heard).
import type { Redis } from "ioredis";
import { isId } from "../../protocol/ids.ts";
import { log } from "../ops/log.ts";
import { backoff } from "../util/backoff.ts";
import { MembershipIndex, type MembershipChange } from "./members.ts";
import type { GroupCaps, MembershipResult, MembershipStore } from "./store.ts";

/** Records read per round trip when the whole membership is loaded. */
const LOAD_BATCH = 500;

// KEYS: user set, members set, revs hash, seq; ARGV: op, group, user, field, maxPerUser, maxMembers, channel
const CHANGE = `
local op, group, user, field = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local maxUser, maxMembers, channel = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local has = redis.call('SISMEMBER', KEYS[1], group) == 1
if op == 'add' then
  if has then return {0} end
  local n = redis.call('SCARD', KEYS[1])
  if maxUser > 0 and n >= maxUser then return {-1, n} end
  local m = redis.call('SCARD', KEYS[2])
  if maxMembers > 0 and m >= maxMembers then return {-2, m} end
  redis.call('SADD', KEYS[1], group)
  redis.call('SADD', KEYS[2], user)
else
  if not has then return {0} end
  redis.call('SREM', KEYS[1], group)
  redis.call('SREM', KEYS[2], user)
end
local rev = redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[3], field, rev)
local groups = redis.call('SMEMBERS', KEYS[1])
table.sort(groups)
redis.call('PUBLISH', channel, rev .. ' ' .. field .. ' ' .. table.concat(groups, ','))
return {1, rev, groups}
`;

type Script = [number, (number | string[])?, string[]?];

export class RedisMembershipStore implements MembershipStore {
  readonly index: MembershipIndex;
  private cmd: Redis | null = null;
  private sub: Redis | null = null;
  private readonly k: { user: string; members: string; revs: string; seq: string; epoch: string; channel: string };
  /** the Redis the index was loaded from: a different one (restarted without its data) resets revisions */
  private epoch: string | null = null;
  private loading = false;
  private loadAgain = false;
  private closed = false;

  constructor(
    prefix: string,
    private readonly caps: GroupCaps,
    changed: MembershipChange,
  ) {
    this.index = new MembershipIndex(changed);
    const p = prefix + ".groups.";
    this.k = { user: p + "user.", members: p + "members.", revs: p + "revs", seq: p + "seq", epoch: p + "epoch", channel: p + "changed" };
  }

  /** The broker's command connection, on each (re)connect; the change channel gets a connection of its own. */
  attach(conn: unknown): void {
    if (this.closed) return;
    this.cmd = conn as Redis;
    if (!this.sub) {
      // Named apart from the broker's connections, so CLIENT LIST tells them apart.
      const sub = (this.sub = this.cmd.duplicate({ autoResubscribe: false, lazyConnect: true, connectionName: `${this.cmd.options.connectionName ?? "wsgate"}-groups` }));
      sub.on("message", (channel: string, msg: string) => channel === this.k.channel && this.heard(msg));
      sub.on("error", () => {}); // the broker logs Redis being away
      sub.on("ready", () => {
        sub.subscribe(this.k.channel).then(
          () => this.load(),
          (err) => {
            // Without the channel this node would not hear other nodes' changes: connect again and retry.
            log("warn", "group membership: subscribing to changes failed; reconnecting", { error: String(err) });
            if (!this.closed) sub.disconnect(true);
          },
        );
      });
      sub.connect().catch(() => {});
      return;
    }
    if (this.sub.status === "ready") this.load();
  }

  /** Reads every record into the index (after the channel is subscribed, so no change falls between). */
  private load() {
    if (this.loading) return void (this.loadAgain = true);
    this.loading = true;
    void (async () => {
      for (let attempt = 0; !this.closed; attempt++) {
        this.loadAgain = false;
        try {
          await this.loadOnce();
          if (!this.loadAgain) break;
          attempt = -1;
        } catch (err) {
          const wait = backoff(attempt);
          log(attempt === 0 ? "warn" : "debug", "group membership: reading the records failed; retrying", { retryInMs: wait, error: String(err) });
          await new Promise((r) => setTimeout(r, wait));
          if (this.sub?.status !== "ready") break; // its next ready loads again
        }
      }
      this.loading = false;
    })();
  }

  private async loadOnce() {
    const cmd = this.cmd;
    if (!cmd) return;
    await cmd.set(this.k.epoch, crypto.randomUUID(), "NX");
    const epoch = await cmd.get(this.k.epoch);
    // Revisions of another Redis mean nothing here: every record is taken as read.
    const force = this.epoch !== null && epoch !== this.epoch;
    this.epoch = epoch;
    const seen = new Set<string>();
    let cursor = "0";
    do {
      const [next, flat] = await cmd.hscan(this.k.revs, cursor, "COUNT", LOAD_BATCH);
      cursor = next;
      const fields: string[] = [];
      const revs: number[] = [];
      for (let i = 0; i < flat.length; i += 2) {
        fields.push(flat[i]);
        revs.push(Number(flat[i + 1]));
      }
      if (fields.length === 0) continue;
      const p = cmd.pipeline();
      for (const f of fields) p.smembers(this.k.user + f);
      const sets = (await p.exec()) ?? [];
      fields.forEach((f, i) => {
        const [err, groups] = sets[i] ?? [null, []];
        if (err) throw err;
        seen.add(f);
        this.take(f, (groups as string[]).filter(isId).sort(), revs[i], force);
      });
    } while (cursor !== "0");
    // Users the index holds that Redis no longer has (a Redis that lost its data) are in no group.
    for (const f of this.index.keys()) if (!seen.has(f)) this.take(f, [], 0, true);
  }

  private heard(msg: string) {
    const a = msg.indexOf(" ");
    const b = msg.indexOf(" ", a + 1);
    if (a < 0 || b < 0) return;
    const list = msg.slice(b + 1);
    this.take(msg.slice(a + 1, b), list ? list.split(",") : [], Number(msg.slice(0, a)), false);
  }

  private take(field: string, groups: string[], revision: number, force: boolean) {
    const dot = field.indexOf(".");
    const svc = field.slice(0, dot);
    const user = field.slice(dot + 1);
    if (dot < 0 || !isId(svc) || !isId(user)) return;
    this.index.apply(svc, user, groups, revision, force);
  }

  add(svc: string, group: string, user: string) {
    return this.change("add", svc, group, user);
  }

  remove(svc: string, group: string, user: string) {
    return this.change("remove", svc, group, user);
  }

  private async change(op: "add" | "remove", svc: string, group: string, user: string): Promise<MembershipResult> {
    const cmd = this.cmd;
    if (!cmd) return { ok: false, status: 503, error: "group membership store is not connected yet (Redis); retry shortly" };
    const field = svc + "." + user;
    const c = this.caps;
    let r: Script;
    try {
      r = (await cmd.eval(CHANGE, 4, this.k.user + field, this.k.members + svc + "." + group, this.k.revs, this.k.seq, op, group, user, field, c.maxGroupsPerUser, c.maxGroupMembers, this.k.channel)) as Script;
    } catch (err) {
      return { ok: false, status: 503, error: `group membership store failed: ${String(err)}` };
    }
    if (r[0] === -1) return { ok: false, status: 409, error: `user ${user} is already in ${r[1]} groups of ${svc}, the cap (WSGATE_MAX_GROUPS_PER_USER=${c.maxGroupsPerUser})` };
    if (r[0] === -2) return { ok: false, status: 409, error: `group ${group} of ${svc} already has ${r[1]} members, the cap (WSGATE_MAX_GROUP_MEMBERS=${c.maxGroupMembers})` };
    if (r[0] === 0) return { ok: true, changed: false, groups: await this.read(cmd, field) };
    const groups = r[2] ?? [];
    // Applied here at once; the channel's echo of the same revision is then ignored.
    this.index.apply(svc, user, groups, r[1] as number);
    return { ok: true, changed: true, groups };
  }

  /** A user's groups as Redis has them (this node's index may not have heard the last change yet). */
  private async read(cmd: Redis, field: string): Promise<string[]> {
    return (await cmd.smembers(this.k.user + field).catch(() => [])).sort();
  }

  async close() {
    this.closed = true;
    const sub = this.sub;
    this.sub = null;
    if (sub) await sub.quit().catch(() => sub.disconnect());
  }
}
