// A LocalNode made of maps, so the cluster modules can be tested without a gateway:
// several of them in one process, over one embedded broker or a real nats-server.
import type { Broker, FrameHint } from "../app/broker/broker.ts";
import { Cluster, type ClusterConfig } from "../app/cluster/cluster.ts";
import { connIds } from "../app/cluster/connid.ts";
import type { ClosedBy, CloseWith, ConnInfo, ConnRef, LocalNode } from "../app/cluster/local.ts";

type Writable<T> = { -readonly [K in keyof T]: T[K] };
export type FakeConn = Writable<ConnRef> & ConnInfo & { closedWith: CloseWith | null; got: { data: string; hint: FrameHint }[] };

export class FakeNode implements LocalNode {
  readonly runtime = "bun";
  readonly version = "test";
  readonly started = Date.now();
  readonly users = new Map<string, FakeConn[]>();
  cluster!: Cluster;
  draining = false;
  private ids: (n: number) => string;
  private n = 0;

  constructor(readonly nodeId: string) {
    this.ids = connIds(nodeId);
  }

  /** Makes the node's Cluster over `broker` and starts it. */
  join(broker: Broker, cfg: Partial<ClusterConfig> = {}): Cluster {
    this.cluster = new Cluster(broker, this, { prefix: "ws", events: true, timing: { intervalMs: 100, missed: 3 }, boundMs: 250, ...cfg });
    this.cluster.start();
    return this.cluster;
  }

  open(svc: string, user: string, envelope = false): FakeConn {
    const key = svc + "." + user;
    const list = this.users.get(key) ?? [];
    const c: FakeConn = { svc, user, id: this.ids(++this.n), connId: "", since: Date.now(), envelope, framesIn: 0, framesOut: 0, closedWith: null, got: [] };
    c.connId = c.id;
    list.push(c);
    this.users.set(key, list);
    this.cluster.hooks.opened(c, list.length === 1);
    return c;
  }

  /** The socket went away (`by` says who ended it). */
  drop(c: FakeConn, code = 1000, reason = "", by: ClosedBy = "client") {
    const key = c.svc + "." + c.user;
    const list = (this.users.get(key) ?? []).filter((x) => x !== c);
    if (list.length) this.users.set(key, list);
    else this.users.delete(key);
    this.cluster.hooks.closed(c, list.length === 0, code, reason, by);
  }

  stats() {
    let connections = 0;
    for (const l of this.users.values()) connections += l.length;
    return { connections, users: this.users.size, draining: this.draining, broker: "connected" };
  }

  connections(svc: string, user: string): ConnInfo[] {
    return this.users.get(svc + "." + user) ?? [];
  }

  earliest(svc: string, user: string): number | null {
    const conns = this.connections(svc, user);
    return conns.length ? Math.min(...conns.map((c) => c.since)) : null;
  }

  serviceCounts(svc: string) {
    let users = 0;
    let connections = 0;
    for (const [k, l] of this.users) {
      if (!k.startsWith(svc + ".")) continue;
      users++;
      connections += l.length;
    }
    return { users, connections };
  }

  serviceUsers(svc: string, after: string, limit: number): string[] {
    const out: string[] = [];
    for (const k of this.users.keys()) {
      if (!k.startsWith(svc + ".")) continue;
      const u = k.slice(svc.length + 1);
      if (u > after) out.push(u);
    }
    return out.sort().slice(0, limit);
  }

  close(svc: string, user: string, conn: string | null, why: CloseWith): number {
    let n = 0;
    for (const c of [...this.connections(svc, user)] as FakeConn[]) {
      if (conn && c.id !== conn) continue;
      c.closedWith = why;
      this.drop(c, why.code, why.reason, "service");
      n++;
    }
    return n;
  }

  sendTo(svc: string, user: string, conn: string, data: Uint8Array, hint: FrameHint): boolean {
    const c = (this.connections(svc, user) as FakeConn[]).find((x) => x.id === conn);
    if (!c) return false;
    c.got.push({ data: new TextDecoder().decode(data), hint });
    return true;
  }
}
