// This node's share of groups and broadcasts. A node holds one broker subscription per
// group that has a member socket here (made with the first, dropped with the last) and one
// per service it serves (broadcast). A message on one is handed to the runtime's topic
// publish once per kind of socket (raw, envelope), never written socket by socket here.
//
// Sockets join a service's broadcast topic lazily: only once a broadcast for that service
// has reached this node. A native topic subscription costs ~100 B of RSS per socket (Bun,
// 10,000 idle sockets: 2,047 → 1,942 B/conn), paid by every socket of a service that may
// never be broadcast to. The first broadcast joins every open socket of the service in one
// loop (10,000 sockets of one service on Bun: 7–8 ms, once), later sockets join at open.
import type { FrameHint } from "../broker/broker.ts";
import { isUtf8 } from "../util/utf8.ts";
import { BROADCAST_TAG, groupTag, taggedFrame, type Topics } from "./fanout.ts";
import { bcastTopic, ENV, type GroupSubjects, groupTopic, RAW } from "./subjects.ts";
import { RateBuckets } from "./rate.ts";

/** A socket as the groups module sees it. */
export type Member = { readonly ws: unknown; readonly envelope: boolean };

export type GroupStats = {
  /** group and broadcast messages taken from the broker */
  groupMessages: number;
  /** frames handed to sockets by topic publishes */
  groupDeliveries: number;
  /** broadcasts dropped at this node over WSGATE_MAX_BROADCASTS_PER_SEC */
  broadcastsDropped: number;
  /** broker subscriptions held for groups and broadcasts */
  groupSubscriptions: number;
};

export type InterestDeps = {
  watch(subject: string): unknown;
  /** every socket of a service on this node that was counted by joinService and not yet by leaveService */
  eachOfService(svc: string, fn: (m: Member) => void): void;
  unwatch(handle: unknown): void;
  topics: Topics;
  /** the runtime sends text frames only from strings (Transport.textAsString) */
  textAsString: boolean;
  subjects: GroupSubjects;
  /** per service; 0 = unlimited */
  maxBroadcastsPerSec: number;
  stats: GroupStats;
};

/** One group or service served here. */
class Slot {
  handle: unknown = null;
  raw = 0;
  env = 0;
  readonly rawTopic: string;
  readonly envTopic: string;
  /** the sockets counted here are joined to the topics; a service's broadcast slot waits for its first broadcast */
  joined: boolean;

  constructor(
    readonly subject: string,
    topic: string,
    /** what names it in an envelope frame */
    readonly tag: string,
    /** the service, for the broadcast rate; "" for groups */
    readonly bcastOf: string,
  ) {
    this.rawTopic = topic + RAW;
    this.envTopic = topic + ENV;
    this.joined = bcastOf === "";
  }
}

const decoder = new TextDecoder();

export class GroupInterest {
  /** broker subject → slot; the subject a message arrives on is the key, so delivery allocates nothing to find it */
  private slots = new Map<string, Slot>();
  private readonly rate: RateBuckets;

  constructor(private readonly d: InterestDeps) {
    this.rate = new RateBuckets(d.maxBroadcastsPerSec);
  }

  join(m: Member, svc: string, group: string) {
    const subject = this.d.subjects.group(svc, group);
    this.add(m, this.slots.get(subject) ?? new Slot(subject, groupTopic(svc, group), groupTag(group), ""));
  }

  leave(m: Member, svc: string, group: string) {
    const slot = this.slots.get(this.d.subjects.group(svc, group));
    if (slot) this.remove(m, slot);
  }

  joinService(m: Member, svc: string) {
    const subject = this.d.subjects.bcast(svc);
    this.add(m, this.slots.get(subject) ?? new Slot(subject, bcastTopic(svc), BROADCAST_TAG, svc));
  }

  leaveService(m: Member, svc: string) {
    const slot = this.slots.get(this.d.subjects.bcast(svc));
    if (slot) this.remove(m, slot);
  }

  /** Sockets of this node in a group (raw + envelope); 0 when it holds no subscription for it. */
  localCount(svc: string, group: string): number {
    const slot = this.slots.get(this.d.subjects.group(svc, group));
    return slot ? slot.raw + slot.env : 0;
  }

  /** Subjects this node holds a subscription for (tests, debugging). */
  subscribed(): string[] {
    return [...this.slots.keys()];
  }

  /** A message from the broker; false when the subject is not a group or broadcast held here. */
  deliver(subject: string, data: Uint8Array, hint: FrameHint): boolean {
    const slot = this.slots.get(subject);
    if (!slot) return false;
    const s = this.d.stats;
    if (slot.bcastOf !== "" && !this.rate.take(slot.bcastOf)) {
      s.broadcastsDropped++;
      return true;
    }
    s.groupMessages++;
    if (!slot.joined) this.joinAll(slot);
    const text = hint !== "binary" && isUtf8(data);
    const topics = this.d.topics;
    if (slot.raw > 0) {
      topics.publishLocal(slot.rawTopic, text && this.d.textAsString ? decoder.decode(data) : data, text);
      s.groupDeliveries += slot.raw;
    }
    if (slot.env > 0) {
      topics.publishLocal(slot.envTopic, taggedFrame(slot.tag, data, text), true);
      s.groupDeliveries += slot.env;
    }
    return true;
  }

  /** A new broker connection has no interest yet. */
  rewatchAll() {
    for (const slot of this.slots.values()) slot.handle = this.d.watch(slot.subject);
  }

  private add(m: Member, slot: Slot) {
    if (slot.raw + slot.env === 0) {
      this.slots.set(slot.subject, slot);
      slot.handle = this.d.watch(slot.subject);
      this.d.stats.groupSubscriptions++;
    }
    if (m.envelope) slot.env++;
    else slot.raw++;
    if (slot.joined) this.d.topics.join(m.ws, m.envelope ? slot.envTopic : slot.rawTopic);
  }

  /** A service's first broadcast here: every socket of the service joins its topic (once per slot). */
  private joinAll(slot: Slot) {
    slot.joined = true;
    const topics = this.d.topics;
    this.d.eachOfService(slot.bcastOf, (m) => topics.join(m.ws, m.envelope ? slot.envTopic : slot.rawTopic));
  }

  private remove(m: Member, slot: Slot) {
    if (slot.joined) this.d.topics.leave(m.ws, m.envelope ? slot.envTopic : slot.rawTopic);
    if (m.envelope) slot.env--;
    else slot.raw--;
    if (slot.raw + slot.env > 0) return;
    this.slots.delete(slot.subject);
    this.d.unwatch(slot.handle);
    this.d.stats.groupSubscriptions--;
  }
}
