// Lifecycle events: connect and disconnect for every socket, online and offline for a
// user's first and last socket anywhere in the cluster, as JSON on
// <prefix>.events.<svc>.<user>. The JSON is only built when someone can hear it.
//
// Online/offline across nodes (README "Guarantees"): a node adds the user locally first,
// then asks every live node for its `since` of that user; it says `online` only if no node
// holds the user with an earlier (since, node) pair, so of two concurrent first sockets
// exactly one wins. For offline a node removes the user locally first (nodes never report a
// removed user), then asks; it says `offline` only if no node holds the user. Two last
// sockets closing at once on two nodes may both say offline; never neither. A node that
// does not answer within the scatter bound counts as not holding the user.
import type { Broker } from "../broker/broker.ts";
import { log } from "../ops/log.ts";
import type { ClosedBy, ConnHooks, ConnRef, LocalNode } from "./local.ts";
import type { Scatter } from "./scatter.ts";
import { SinceBatch } from "./since-batch.ts";
import type { ClusterSubjects } from "./subjects.ts";

export class Events implements ConnHooks {
  /** per user, the online/offline check in flight: they run in order, one at a time */
  private checks = new Map<string, Promise<void>>();
  private readonly batch: SinceBatch;

  constructor(
    private readonly broker: Broker,
    private readonly subjects: ClusterSubjects,
    private readonly local: LocalNode,
    private readonly scatter: Scatter,
    /** whether anyone can hear a service's events (embedded: an SSE stream is open) */
    private readonly heard: (svc: string) => boolean,
  ) {
    this.batch = new SinceBatch(scatter);
  }

  opened(c: ConnRef, first: boolean) {
    if (!this.heard(c.svc)) return;
    this.emitInOrder(c.svc, c.user, `{"event":"connect","svc":"${c.svc}","user":"${c.user}","conn":"${c.connId}","node":"${this.local.nodeId}","time":"${iso()}","envelope":${c.envelope}}`);
    if (!first) return;
    if (this.alone()) this.emitOnline(c.svc, c.user, c.connId);
    else this.check(c.svc, c.user, () => this.online(c.svc, c.user, c.connId, c.since));
  }

  closed(c: ConnRef, last: boolean, code: number, reason: string, closedBy: ClosedBy) {
    if (!this.heard(c.svc)) return;
    const openMs = Math.max(0, Date.now() - c.since);
    this.emitInOrder(
      c.svc,
      c.user,
      `{"event":"disconnect","svc":"${c.svc}","user":"${c.user}","conn":"${c.connId}","node":"${this.local.nodeId}","time":"${iso()}","code":${code},"reason":${JSON.stringify(reason)},"closedBy":"${closedBy}","openMs":${openMs},"framesIn":${c.framesIn},"framesOut":${c.framesOut}}`,
    );
    if (!last) return;
    // removed here just now, and no other node to ask
    if (this.alone()) this.emitOffline(c.svc, c.user, c.connId);
    else this.check(c.svc, c.user, () => this.offline(c.svc, c.user, c.connId));
  }

  /** No other node to ask and nothing in flight: a single node decides at once, without promises. */
  private alone(): boolean {
    return this.checks.size === 0 && !this.scatter.hasPeers();
  }

  /** Resolves once no online/offline check is in flight (drain waits for it before leaving). */
  async settled(): Promise<void> {
    while (this.checks.size) await Promise.all([...this.checks.values()]);
  }

  /** A user's events leave this node in order: behind an online/offline check still running. */
  private emitInOrder(svc: string, user: string, json: string) {
    if (this.checks.size === 0) return this.emit(svc, user, json);
    const key = svc + "." + user;
    if (this.checks.has(key)) this.check(svc, user, async () => this.emit(svc, user, json));
    else this.emit(svc, user, json);
  }

  private check(svc: string, user: string, run: () => Promise<void>) {
    const key = svc + "." + user;
    const before = this.checks.get(key);
    // assigned before the body reads it: `await run()` always yields first
    let next!: Promise<void>;
    next = (async () => {
      if (before) await before;
      try {
        await run();
      } catch (err) {
        log("warn", "online/offline check failed", { svc, user, error: String(err) });
      }
      if (this.checks.get(key) === next) this.checks.delete(key);
    })();
    this.checks.set(key, next);
  }

  private async online(svc: string, user: string, conn: string, since: number) {
    const me = this.local.nodeId;
    for (const a of await this.batch.ask(svc, user)) {
      if (a.since === null) continue;
      if (a.since < since || (a.since === since && a.node < me)) return; // an earlier holder said online
    }
    this.emitOnline(svc, user, conn);
  }

  private async offline(svc: string, user: string, conn: string) {
    const others = await this.batch.ask(svc, user);
    if (this.local.earliest(svc, user) !== null) return; // back here meanwhile
    for (const a of others) if (a.since !== null) return; // still held elsewhere
    this.emitOffline(svc, user, conn);
  }

  private emitOnline(svc: string, user: string, conn: string) {
    this.emit(svc, user, `{"event":"online","svc":"${svc}","user":"${user}","conn":"${conn}","node":"${this.local.nodeId}","time":"${iso()}"}`);
  }

  private emitOffline(svc: string, user: string, conn: string) {
    this.emit(svc, user, `{"event":"offline","svc":"${svc}","user":"${user}","conn":"${conn}","node":"${this.local.nodeId}","time":"${iso()}"}`);
  }

  private emit(svc: string, user: string, json: string) {
    try {
      this.broker.publishText(this.subjects.events(svc, user), json);
    } catch {
      // broker away: events are live-only, like every cluster message
    }
  }
}

let isoMs = 0;
let isoText = "";

/** Now as ISO 8601; a burst of events within one millisecond formats it once. */
function iso(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    isoText = new Date(now).toISOString();
  }
  return isoText;
}
