// The cluster's view of a running gateway: a LocalNode read from the core's own records
// (users keyed by subject, their Conns), and the lifecycle hooks the Gateway calls.
import type { FrameHint } from "../broker/broker.ts";
import type { CloseCode } from "../../protocol/close-codes.ts";
import type { Conn } from "../core/conn.ts";
import { sendCounted, type Transport } from "../core/transport.ts";
import { connAt, connCount, connsOf, type Users } from "../core/users.ts";
import { messageFrame } from "../envelope/frames.ts";
import type { Metrics } from "../ops/metrics.ts";
import { VERSION } from "../ops/version.ts";
import { isUtf8 } from "../util/utf8.ts";
import { closedBy } from "./closed-by.ts";
import { openedAt } from "./connid.ts";
import type { CloseWith, ConnHooks, ConnInfo, ConnRef, LocalNode } from "./local.ts";
import { firstAfter } from "./page.ts";

/** What the Gateway hands the cluster about itself (made once, in its constructor). */
export type GatewayView = {
  nodeId: string;
  users: Users;
  /** the subject a user is keyed by (recv, or live with the mailbox) */
  subjectOf(svc: string, user: string): string;
  transport: Transport;
  metrics: Metrics;
  /** the Gateway itself, as far as the cluster acts on it */
  gateway: { closeWith(conn: Conn, why: CloseCode): void; isDraining(): boolean; readonly broker: { state(): string } };
};

const decoder = new TextDecoder();

export class GatewayNode implements LocalNode {
  readonly nodeId: string;
  readonly runtime: string;
  readonly version = VERSION;
  readonly started = Date.now();
  /** `<node>.`: what a Conn's number is appended to */
  readonly idPrefix: string;

  constructor(private readonly gw: GatewayView) {
    this.nodeId = gw.nodeId;
    this.runtime = gw.transport.runtime;
    this.idPrefix = gw.nodeId + ".";
  }

  connId(conn: Conn): string {
    return this.idPrefix + conn.id;
  }

  stats() {
    const m = this.gw.metrics;
    return { connections: m.connections, users: m.users, draining: this.gw.gateway.isDraining(), broker: this.gw.gateway.broker.state() };
  }

  private open(svc: string, user: string): Conn[] {
    const entry = this.gw.users.get(this.gw.subjectOf(svc, user));
    return entry ? connsOf(entry).filter((c) => !c.refuse) : [];
  }

  connections(svc: string, user: string): ConnInfo[] {
    return this.open(svc, user).map((c) => ({ id: this.connId(c), since: openedAt(c.id), envelope: c.envelope, framesIn: c.framesIn, framesOut: c.framesOut }));
  }

  /** Without building ConnInfo objects: the online/offline checks ask this for every user. */
  earliest(svc: string, user: string): number | null {
    const entry = this.gw.users.get(this.gw.subjectOf(svc, user));
    if (!entry) return null;
    let min = Infinity;
    for (let i = 0; i < connCount(entry); i++) {
      const c = connAt(entry, i);
      if (!c.refuse && c.id < min) min = c.id;
    }
    return min === Infinity ? null : openedAt(min);
  }

  serviceCounts(svc: string) {
    const head = this.gw.subjectOf(svc, "");
    let users = 0;
    let connections = 0;
    for (const e of this.gw.users.values()) {
      if (!e.key.startsWith(head)) continue;
      users++;
      connections += connCount(e);
    }
    return { users, connections };
  }

  serviceUsers(svc: string, after: string, limit: number): string[] {
    const head = this.gw.subjectOf(svc, "");
    const users = this.gw.users;
    function* names() {
      for (const e of users.values()) if (e.key.startsWith(head)) yield e.key.slice(head.length);
    }
    return firstAfter(names(), after, limit);
  }

  close(svc: string, user: string, conn: string | null, why: CloseWith): number {
    let n = 0;
    for (const c of this.open(svc, user)) {
      if (conn !== null && this.connId(c) !== conn) continue;
      this.gw.gateway.closeWith(c, why as CloseCode);
      n++;
    }
    return n;
  }

  /** Live only: never through the mailbox, no sequence, whatever the socket is waiting for. */
  sendTo(svc: string, user: string, conn: string, data: Uint8Array, hint: FrameHint): boolean {
    const c = this.open(svc, user).find((x) => this.connId(x) === conn);
    if (!c) return false;
    const { transport, metrics } = this.gw;
    const text = hint !== "binary" && isUtf8(data);
    c.framesOut++;
    if (c.envelope) {
      sendCounted(transport, metrics, c.ws, messageFrame(data, text, 0), data.length);
      return true;
    }
    const status = transport.send(c.ws, text && transport.textAsString ? decoder.decode(data) : data, text);
    if (status === 0) metrics.dropped++;
    else {
      metrics.messagesOut++;
      metrics.bytesOut += data.length;
    }
    return true;
  }

}

/** Turns the core's Conn into the cluster's ConnRef, only when events are on. */
export class Lifecycle {
  constructor(
    private readonly hooks: ConnHooks,
    private readonly node: GatewayNode,
  ) {}

  opened(conn: Conn, svcUser: string, first: boolean) {
    this.hooks.opened(this.ref(conn, svcUser), first);
  }

  closed(conn: Conn, svcUser: string, last: boolean, code: number | undefined, reason: string | undefined) {
    const by = closedBy(conn.refuse ? conn.refuse.code : null);
    this.hooks.closed(this.ref(conn, svcUser), last, conn.refuse?.code ?? code ?? 1005, conn.refuse?.reason ?? reason ?? "", by);
  }

  private ref(conn: Conn, svcUser: string): ConnRef {
    const dot = svcUser.indexOf(".");
    return {
      svc: svcUser.slice(0, dot),
      user: svcUser.slice(dot + 1),
      connId: this.node.connId(conn),
      since: openedAt(conn.id),
      envelope: conn.envelope,
      framesIn: conn.framesIn,
      framesOut: conn.framesOut,
    };
  }
}
