// Which nodes are alive, without a registry: every node announces itself on one subject
// every few seconds and keeps the set it hears. A node silent for `missed` announce
// periods drops out; the lowest-named live node then publishes one node-down event.
import type { Broker } from "../broker/broker.ts";
import { log } from "../ops/log.ts";
import type { LocalNode } from "./local.ts";
import type { ClusterSubjects } from "./subjects.ts";

/** What a node says about itself, and what GET /v1/nodes lists. */
export type NodeAnnounce = {
  node: string;
  runtime: string;
  version: string;
  /** epoch ms the node started */
  started: number;
  connections: number;
  users: number;
  draining: boolean;
  broker: string;
  /** epoch ms of this announce, by the sender's clock */
  at: number;
  /** the node is leaving now (drain done or stopped): drop it without a node-down event */
  bye?: boolean;
};

export type MembershipTiming = {
  /** how often a node announces itself */
  intervalMs: number;
  /** announces a node may miss before it is dropped */
  missed: number;
};

/**
 * 4 s announces, down after 3 missed (12 s of silence), checked every second: a node killed
 * with kill -9 leaves every peer's set within 13 s.
 */
export const DEFAULT_TIMING: MembershipTiming = { intervalMs: 4_000, missed: 3 };

/** Sweeps per announce period: how finely silence is measured. */
const TICKS_PER_INTERVAL = 4;

type Peer = { info: NodeAnnounce; seen: number };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Membership {
  private peers = new Map<string, Peer>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private unlisten: (() => void) | null = null;
  private ticks = 0;
  /** local ms since the broker has been connected without a break; 0 while it is not */
  private connectedSince = 0;
  private leaving = false;

  constructor(
    private readonly broker: Broker,
    private readonly subjects: ClusterSubjects,
    private readonly local: LocalNode,
    private readonly timing: MembershipTiming = DEFAULT_TIMING,
    private readonly now: () => number = Date.now,
  ) {}

  /** Silence after which a peer is dropped. */
  get downAfterMs(): number {
    return this.timing.intervalMs * this.timing.missed;
  }

  start() {
    this.unlisten = this.broker.listen(this.subjects.announce, (_s, data) => this.heard(data));
    this.tick();
    this.timer = setInterval(() => this.tick(), Math.max(10, Math.floor(this.timing.intervalMs / TICKS_PER_INTERVAL)));
  }

  /** Every live node's id, this one included, sorted. */
  live(): string[] {
    return [this.local.nodeId, ...this.peers.keys()].sort();
  }

  /** Live nodes other than this one. */
  peerCount(): number {
    return this.peers.size;
  }

  isLive(node: string): boolean {
    return node === this.local.nodeId || this.peers.has(node);
  }

  /** Live nodes as they last announced themselves; this node as it is now. */
  nodes(): NodeAnnounce[] {
    return [this.self(), ...[...this.peers.values()].map((p) => p.info)].sort((a, b) => (a.node < b.node ? -1 : 1));
  }

  /** Draining: peers hear it at once, then the goodbye when leave() is called. */
  announceNow() {
    this.send(this.self());
  }

  /** Leaves the set now: peers drop this node without a node-down event. */
  leave() {
    if (this.leaving) return;
    this.leaving = true;
    this.send({ ...this.self(), bye: true });
    this.stop();
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unlisten?.();
    this.unlisten = null;
  }

  private self(): NodeAnnounce {
    const l = this.local;
    const s = l.stats();
    return { node: l.nodeId, runtime: l.runtime, version: l.version, started: l.started, ...s, at: Date.now() };
  }

  private send(a: NodeAnnounce) {
    try {
      this.broker.publish(this.subjects.announce, encoder.encode(JSON.stringify(a)));
    } catch {
      // the broker is away: peers will hear the next announce after it is back
    }
  }

  private tick() {
    const now = this.now();
    const connected = this.broker.state() === "connected";
    if (!connected) this.connectedSince = 0;
    else if (this.connectedSince === 0) this.connectedSince = now;
    if (this.ticks++ % TICKS_PER_INTERVAL === 0 && connected) this.announceNow();
    // Silence heard while this node itself was cut off says nothing about the peers.
    if (!connected || now - this.connectedSince <= this.downAfterMs) return;
    let gone: Peer[] | null = null;
    for (const [id, p] of this.peers) {
      if (now - p.seen <= this.downAfterMs) continue;
      this.peers.delete(id);
      (gone ??= []).push(p);
    }
    if (!gone) return;
    // One node-down event per loss, from the lowest-named survivor. Two survivors that briefly
    // disagree on the set may both publish; a service treats node-down as idempotent.
    const publisher = this.live()[0] === this.local.nodeId;
    for (const p of gone) {
      log("warn", "node silent; dropped from the cluster", { node: p.info.node, silentMs: now - p.seen });
      if (!publisher) continue;
      const i = p.info;
      const event = { event: "node-down", node: i.node, time: new Date().toISOString(), lastAnnounce: new Date(i.at).toISOString(), connections: i.connections, users: i.users, reportedBy: this.local.nodeId };
      try {
        this.broker.publish(this.subjects.nodeEvents, encoder.encode(JSON.stringify(event)));
      } catch {
        // broker away: the event is lost; presence still answers without that node
      }
    }
  }

  private heard(data: Uint8Array) {
    let a: NodeAnnounce;
    try {
      a = JSON.parse(decoder.decode(data));
    } catch {
      return;
    }
    if (typeof a?.node !== "string" || a.node === this.local.nodeId) return;
    if (a.bye) {
      this.peers.delete(a.node);
      return;
    }
    const known = this.peers.has(a.node);
    this.peers.set(a.node, { info: a, seen: this.now() });
    // A newcomer learns the whole set within one round trip instead of one announce period.
    if (!known && !this.leaving && this.broker.state() === "connected") this.announceNow();
  }
}
