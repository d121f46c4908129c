// Groups and broadcast on one node: the membership store, this node's interest, and the
// hooks the gateway calls when a socket opens or closes. A membership change reaches the
// user's open sockets here at once (the store's index calls `changed`), and later sockets
// read the index when they open: no I/O on the connect path.
import type { Broker, FrameHint } from "../broker/broker.ts";
import { HEADER } from "../broker/broker.ts";
import { GroupInterest, type GroupStats, type Member } from "./interest.ts";
import type { MembershipChange } from "./members.ts";
import type { MembershipStore } from "./store.ts";
import type { Topics } from "./fanout.ts";
import type { GroupSubjects } from "./subjects.ts";
import { RateBuckets } from "./rate.ts";
import { MembershipRequests } from "./requests.ts";

/** Every open socket of a user on this node that the gateway has told `opened` about. */
export type EachConn = (svc: string, user: string, fn: (m: Member) => void) => void;
/** Every such socket of a service on this node. */
export type EachOfService = (svc: string, fn: (m: Member) => void) => void;

/** What the groups module needs from the gateway's core. */
export type GroupsCore = {
  broker: Pick<Broker, "watch" | "unwatch" | "publish" | "state" | "listen">;
  eachConn: EachConn;
  eachOfService: EachOfService;
};

export type GroupsDeps = {
  topics: Topics;
  textAsString: boolean;
  subjects: GroupSubjects;
  maxBroadcastsPerSec: number;
  /** builds the store with the callback its index calls on every change */
  store: (changed: MembershipChange) => MembershipStore;
  /** answer membership requests from services over the broker (`<prefix>.groups.<op>.…`) */
  serveRequests?: boolean;
};

export type PublishResult = { ok: true; subject: string } | { ok: false; status: 429 | 503; error: string; retryAfterS?: number };

export class Groups {
  readonly stats: GroupStats = { groupMessages: 0, groupDeliveries: 0, broadcastsDropped: 0, groupSubscriptions: 0 };
  readonly interest: GroupInterest;
  readonly store: MembershipStore;
  /** groups a socket joined through its token's `groups` claim, for its lifetime */
  private claims = new WeakMap<Member, readonly string[]>();
  /** the HTTP broadcast check: a 429 at the caller before the receiving nodes drop */
  private readonly broadcasts: RateBuckets;
  private readonly requests: MembershipRequests | null;

  constructor(
    private readonly d: GroupsDeps,
    private readonly core: GroupsCore,
  ) {
    this.interest = new GroupInterest({
      watch: (s) => core.broker.watch(s),
      unwatch: (h) => core.broker.unwatch(h),
      eachOfService: core.eachOfService,
      topics: d.topics,
      textAsString: d.textAsString,
      subjects: d.subjects,
      maxBroadcastsPerSec: d.maxBroadcastsPerSec,
      stats: this.stats,
    });
    this.broadcasts = new RateBuckets(d.maxBroadcastsPerSec);
    this.store = d.store((svc, user, joined, left) => this.changed(svc, user, joined, left));
    this.requests = d.serveRequests ? new MembershipRequests(this.store, d.subjects, core.broker) : null;
    this.requests?.start();
  }

  /** A socket of (svc, user) opened: it joins the service's broadcast, the user's groups and its claimed ones. */
  opened(m: Member, svc: string, user: string, claims?: readonly string[]) {
    this.interest.joinService(m, svc);
    const stored = this.store.index.groupsOf(svc, user);
    for (const g of stored) this.interest.join(m, svc, g);
    if (!claims?.length) return;
    this.claims.set(m, claims);
    for (const g of claims) if (!stored.includes(g)) this.interest.join(m, svc, g);
  }

  /** The socket closed; `svcUser` is `<svc>.<user>`. */
  closed(m: Member, svcUser: string) {
    const dot = svcUser.indexOf(".");
    const svc = svcUser.slice(0, dot);
    const user = svcUser.slice(dot + 1);
    this.interest.leaveService(m, svc);
    const stored = this.store.index.groupsOf(svc, user);
    for (const g of stored) this.interest.leave(m, svc, g);
    const claims = this.claims.get(m);
    if (!claims) return;
    this.claims.delete(m);
    for (const g of claims) if (!stored.includes(g)) this.interest.leave(m, svc, g);
  }

  /** A broker message; false when it is not for a group or broadcast held here. */
  deliver(subject: string, data: Uint8Array, hint: FrameHint): boolean {
    return this.interest.deliver(subject, data, hint);
  }

  rewatchAll() {
    this.interest.rewatchAll();
  }

  /** A new broker connection (BrokerHooks.prepare): the NATS store binds to it in the background. */
  attach(nc: unknown) {
    this.store.attach?.(nc);
  }

  publishGroup(svc: string, group: string, data: Uint8Array, frame?: "text" | "binary"): PublishResult {
    return this.publish(this.d.subjects.group(svc, group), data, frame);
  }

  publishBroadcast(svc: string, data: Uint8Array, frame?: "text" | "binary"): PublishResult {
    if (!this.broadcasts.take(svc)) {
      const retryAfterS = this.broadcasts.retryAfterS(svc);
      return { ok: false, status: 429, retryAfterS, error: `broadcasts to ${svc} over ${this.d.maxBroadcastsPerSec}/s (WSGATE_MAX_BROADCASTS_PER_SEC); retry in ${retryAfterS}s` };
    }
    return this.publish(this.d.subjects.bcast(svc), data, frame);
  }

  close(): Promise<void> {
    this.requests?.close();
    return this.store.close();
  }

  private publish(subject: string, data: Uint8Array, frame?: "text" | "binary"): PublishResult {
    const b = this.core.broker;
    if (b.state() !== "connected") return { ok: false, status: 503, error: `broker ${b.state()}` };
    try {
      b.publish(subject, data, frame ? { [HEADER.frame]: frame } : undefined);
    } catch (err) {
      return { ok: false, status: 503, error: `publish failed: ${String(err)}` };
    }
    return { ok: true, subject };
  }

  /** The store's index changed a user's groups: the user's open sockets here follow at once. */
  private changed(svc: string, user: string, joined: readonly string[], left: readonly string[]) {
    this.core.eachConn(svc, user, (m) => {
      const claimed = this.claims.get(m);
      for (const g of joined) if (!claimed?.includes(g)) this.interest.join(m, svc, g);
      for (const g of left) if (!claimed?.includes(g)) this.interest.leave(m, svc, g);
    });
  }
}
