// Cluster-wide features of one node, wired together: membership, the scatter that asks
// every live node, events, presence, control, and the service API over NATS.
import type { Broker } from "../broker/broker.ts";
import { ServiceApi } from "./api.ts";
import { CLOSE_OP, Control, type DisconnectMode, SEND_OP } from "./control.ts";
import { Events } from "./events.ts";
import { answerSince, SINCE_OP } from "./since-batch.ts";
import type { ConnHooks, LocalNode } from "./local.ts";
import { DEFAULT_TIMING, Membership, type MembershipTiming } from "./membership.ts";
import { Presence, SERVICE_OP, USER_OP } from "./presence.ts";
import { DEFAULT_BOUND_MS, type Query, Scatter } from "./scatter.ts";
import { type ClusterSubjects, clusterSubjects } from "./subjects.ts";
import type { FrameHint } from "../broker/broker.ts";

export type ClusterConfig = {
  prefix: string;
  /** WSGATE_EVENTS: off publishes no event at all */
  events: boolean;
  timing?: MembershipTiming;
  /** how long an ask of every node waits for the slowest */
  boundMs?: number;
  /** whether anyone can hear a service's events; default: always (NATS) */
  heard?: (svc: string) => boolean;
};

const NO_HOOKS: ConnHooks = { opened() {}, closed() {} };

/** How long a drain waits for its sockets' disconnect events before the node leaves (and its broker closes). */
const DRAIN_EVENTS_MS = 2_000;

export class Cluster {
  readonly subjects: ClusterSubjects;
  readonly members: Membership;
  readonly presence: Presence;
  readonly control: Control;
  /** what the core calls as sockets open and close */
  readonly hooks: ConnHooks;
  /** WSGATE_EVENTS: when off, the core need not describe its sockets at all */
  readonly eventsOn: boolean;
  private readonly scatter: Scatter;
  private readonly events: Events | null;
  private readonly api: ServiceApi;

  constructor(
    broker: Broker,
    readonly local: LocalNode,
    cfg: ClusterConfig,
  ) {
    this.subjects = clusterSubjects(cfg.prefix);
    this.members = new Membership(broker, this.subjects, local, cfg.timing ?? DEFAULT_TIMING);
    this.scatter = new Scatter(broker, this.subjects, this.members, local.nodeId, (q) => this.answer(q), cfg.boundMs ?? DEFAULT_BOUND_MS);
    this.presence = new Presence(local, this.scatter);
    this.control = new Control(local, this.scatter);
    this.events = cfg.events ? new Events(broker, this.subjects, local, this.scatter, cfg.heard ?? (() => true)) : null;
    this.hooks = this.events ?? NO_HOOKS;
    this.eventsOn = this.events !== null;
    this.api = new ServiceApi(broker, this.subjects, this.presence, this.control);
  }

  start() {
    this.scatter.start();
    this.members.start();
    this.api.start();
  }

  /**
   * The node's drain, around the closing of its sockets: peers hear `draining` at once; once
   * `socketsGone` (or `boundMs` passed) and the offline checks are out, the node leaves the set.
   * The broker must still be open until this resolves: the disconnect events ride on it.
   */
  async drain(closeSockets: () => void, socketsGone: () => boolean, boundMs = DRAIN_EVENTS_MS): Promise<void> {
    this.members.announceNow();
    closeSockets();
    const end = Date.now() + boundMs;
    while (!socketsGone() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    await Promise.race([this.settled(), new Promise((r) => setTimeout(r, Math.max(0, end - Date.now())))]);
    this.leave();
  }

  /** Resolves when every online/offline check this node started has published. */
  settled(): Promise<void> {
    return this.events?.settled() ?? Promise.resolve();
  }

  /** Leaves the cluster (after a drain, or at stop): peers drop this node at once. */
  leave() {
    this.members.leave();
    this.api.stop();
    this.scatter.stop();
  }

  /** This node's answer to a question from any node (itself included). */
  private answer(q: Query): unknown {
    const a = q.args as { svc: string; user: string; conn: string | null; after: string; limit: number; mode: DisconnectMode; hint: FrameHint | null };
    switch (q.op) {
      case SINCE_OP:
        return answerSince((q.args as { keys?: unknown }).keys, (svc, user) => this.local.earliest(svc, user));
      case USER_OP:
        return this.presence.answerUser(a.svc, a.user);
      case SERVICE_OP:
        return this.presence.answerService(a.svc, a.after, a.limit);
      case CLOSE_OP:
        return this.control.answerClose(a.svc, a.user, a.conn, a.mode);
      case SEND_OP:
        return this.control.answerSend(a.svc, a.user, a.conn!, q.payload ?? new Uint8Array(0), a.hint ?? undefined);
      default:
        return { error: `unknown op ${q.op}` };
    }
  }
}


