// The heart of the gateway: which sockets belong to which user, and the two message paths.
//   client frame  → message()  → ClientPublisher.publish → broker.publish(<prefix>.send.<svc>.<user>)
//   broker message → deliver() → FanOut.toUser() (fanout.ts) → every socket of that user, in memory
// A node holds one broker subscription per (svc, user) it serves, made on the user's first
// connection and dropped with the last. The mailbox (mailbox/delivery.ts) and request/reply
// (envelope/rpc.ts) hang off these paths through a few hooks.
import type { Broker, BrokerHooks, BrokerState, FrameHint } from "../broker/broker.ts";
import { CLOSE, type CloseCode } from "../../protocol/close-codes.ts";
import type { Config } from "../ops/config.ts";
import type { Metrics } from "../ops/metrics.ts";
import { log, logEnabled } from "../ops/log.ts";
import type { Identity } from "../security/identity.ts";
import type { Security } from "../security/security.ts";
import type { MailboxDelivery } from "../mailbox/delivery.ts";
import type { Groups } from "../groups/groups.ts";
import { noMailboxResume } from "../mailbox/delivery.ts";
import { helloFrame } from "../envelope/frames.ts";
import { Rpc } from "../envelope/rpc.ts";
import { utf8Length } from "../util/utf8.ts";
import { BurstCollector } from "./burst-gc.ts";
import { Conn, logClose, type UserEntry } from "./conn.ts";
import { Deadlines } from "./deadlines.ts";
import { FanOut } from "./fanout.ts";
import { nodeFull, takeMessage, warnOpenFiles } from "./limits.ts";
import { ClientPublisher } from "./publish.ts";
import type { Subjects } from "./subjects.ts";
import type { Transport } from "./transport.ts";
import { addConn, connCount, connsOf, removeConn, Users } from "./users.ts";
import { Batched } from "../util/batched.ts";
import type { Cluster } from "../cluster/cluster.ts";
import { connNumbers } from "../cluster/connid.ts";
import type { Lifecycle } from "../cluster/gateway-node.ts";
import type { GatewayDeps } from "./deps.ts";

/** Seconds a peer gets to finish a close handshake before its socket is cut. */
const CLOSE_GRACE_S = 2;

/** A user's broker interest given up early because every socket of the user is closing. */
const RELEASED = Symbol("released");

const encoder = new TextEncoder();
/** Text frames up to this many UTF-16 units are measured in place rather than encoded. */
const SHORT_TEXT = 512;

export class Gateway {
  readonly config: Config;
  readonly transport: Transport;
  readonly metrics: Metrics;
  readonly subjects: Subjects;
  /** identity, Origin, service token, upgrade rate: consulted by the routes */
  readonly security: Security;
  readonly broker: Broker;
  readonly mailbox: MailboxDelivery | null;
  readonly groups: Groups | null;
  /** request/reply and the other wsgate.v1 client frames */
  readonly rpc: Rpc;
  readonly deadlines = new Deadlines((conn) => this.due(conn));
  private readonly users: Users;
  private readonly publisher: ClientPublisher;
  private readonly out: FanOut;
  private readonly burst: BurstCollector;
  private draining = false;
  private everConnected = false;
  /** nodes, events, presence, control; null only in tests that build a bare Gateway */
  readonly cluster: Cluster | null;
  /** the connect/disconnect hooks; null when WSGATE_EVENTS=off */
  private readonly lifecycle: Lifecycle | null;
  private readonly nextConnId = connNumbers();
  /** Conns are made in batches (util/batched.ts) */
  private readonly spareConns = new Batched(() => new Conn(null));

  constructor(deps: GatewayDeps) {
    const { config, transport, metrics, subjects } = deps;
    [this.config, this.transport, this.metrics, this.subjects, this.security] = [config, transport, metrics, subjects, deps.security];
    this.out = new FanOut(transport, metrics, config.maxBufferedBytes, (conn) => this.slowConsumer(conn));
    // With the mailbox a node watches the stream's republished subject, which carries the sequence.
    this.users = new Users(deps.mailbox ? subjects.live : subjects.recv);
    this.mailbox = deps.mailbox?.({
      users: this.users,
      transport,
      metrics,
      maxBufferedBytes: config.maxBufferedBytes,
      fanOut: (entry, data, hint, seq, prev) => this.out.toUser(entry, data, hint, seq, prev),
      connected: () => this.broker.state() === "connected",
    }) ?? null;
    this.broker = deps.broker(this.brokerHooks());
    const users = this.users;
    this.groups =
      deps.groups?.({ broker: this.broker, eachConn: (svc, user, fn) => users.eachConn(svc, user, fn), eachOfService: (svc, fn) => users.eachOfService(svc, fn) }) ??
      null;
    const svcUser = (entry: UserEntry) => this.users.svcUser(entry);
    this.publisher = new ClientPublisher(this.broker, transport, metrics, config.nodeId, subjects.send("", "").slice(0, -1), svcUser);
    const mailbox = this.mailbox;
    const resume = mailbox ? (conn: Conn, after?: number) => mailbox.resume(conn, after) : (conn: Conn, after?: number) => noMailboxResume(transport, conn, after);
    // After a burst of connections: the users' keys made again side by side, then a full collection (users.ts renewKeys).
    const gc = transport.collectGarbage;
    const renewed = this.broker.renewed?.bind(this.broker) ?? (() => {});
    const compact = gc && (() => (this.users.renewKeys((e) => renewed(e.handle, e.key)), gc()));
    this.burst = new BurstCollector(compact, () => metrics.connections);
    this.rpc = new Rpc({ config, metrics, transport, subjects, broker: this.broker, publisher: this.publisher, svcUser, resume });
    const made = deps.cluster?.(this.broker, { nodeId: config.nodeId, users: this.users, subjectOf: deps.mailbox ? subjects.live : subjects.recv, transport, metrics, gateway: this });
    this.cluster = made?.cluster ?? null;
    this.lifecycle = made?.lifecycle ?? null;
  }

  /** Bound once, so the broker holds no per-user closures. */
  private brokerHooks(): BrokerHooks {
    const mailbox = this.mailbox;
    return {
      deliver: (subject, data, hint, seq, prev) => this.deliver(subject, data, hint, seq, prev),
      rewatchAll: () => {
        for (const entry of this.users.values()) entry.handle = this.broker.watch(entry.key);
        this.rpc.rewatch();
        this.groups?.rewatchAll();
      },
      request: (subject, data, reply, hint, timeoutMs) => this.rpc.onRequest(subject, data, reply, hint, timeoutMs),
      answer: (token, data, hint, error) => this.rpc.onAnswer(token, data, hint, error),
      prepare: async (nc) => {
        if (mailbox) await mailbox.attach(nc);
        this.groups?.attach(nc);
      },
      onState: (state: BrokerState) => {
        if (state === "connected") {
          if (this.everConnected) {
            this.metrics.brokerReconnects++;
            mailbox?.reconnected();
          }
          this.everConnected = true;
        }
        this.metrics.brokerConnected = state === "connected" ? 1 : 0;
      },
    };
  }

  setOpenFilesLimit(limit: number) {
    this.metrics.openFilesLimit = limit;
    warnOpenFiles(limit, this.config.maxConnections, this.config.maxConnectionsSet);
  }

  ready(): { ok: true } | { ok: false; reason: string } {
    if (this.draining) return { ok: false, reason: "draining" };
    const s = this.broker.state();
    if (s !== "connected") return { ok: false, reason: this.mailbox?.store.refusal?.() ?? `broker ${s}` };
    return { ok: true };
  }

  isDraining() {
    return this.draining;
  }

  /** Decides an upgrade. Returns the connection to attach, or why it is refused. */
  admit(identity: Identity, envelope = false): Conn | { status: number; reason: "draining" | "broker_down" | "user_full"; error: string } {
    if (this.draining) {
      this.metrics.refused.draining++;
      return { status: 503, reason: "draining", error: "node is draining; connect to another node" };
    }
    // Before the first broker connection nothing could be delivered; during a reconnect
    // the NATS client queues subscriptions, so sockets are still accepted then.
    if (!this.everConnected) {
      this.metrics.refused.broker_down++;
      return { status: 503, reason: "broker_down", error: "broker not connected yet; retry shortly" };
    }
    const max = this.config.maxConnsPerUser;
    const known = max > 0 ? this.users.get(this.users.keyOf(identity)) : undefined;
    if (known && connCount(known) >= max) {
      this.metrics.refused.user_full++;
      return { status: 429, reason: "user_full", error: `this user already holds ${max} connections on this node (WSGATE_MAX_CONNS_PER_USER)` };
    }
    const conn = this.spareConns.take();
    conn.pending = identity;
    if (envelope) conn.envelope = true;
    const full = nodeFull(this.metrics, this.config.maxConnections);
    if (full) {
      this.metrics.refused[full]++;
      conn.refuse = CLOSE.TRY_AGAIN;
    }
    return conn;
  }

  open(conn: Conn, ws: unknown) {
    conn.ws = ws;
    if (conn.refuse || this.draining) {
      const why = conn.refuse ?? CLOSE.GOING_AWAY;
      conn.pending = null;
      this.transport.close(ws, why.code, why.reason);
      return;
    }
    const id = conn.pending!;
    conn.pending = null;
    const key = this.users.keyOf(id);
    let entry = this.users.get(key);
    // Upgrades of one user that were admitted together can still overshoot the cap.
    if (entry && this.config.maxConnsPerUser > 0 && connCount(entry) >= this.config.maxConnsPerUser) {
      this.metrics.refused.user_full++;
      this.transport.close(ws, CLOSE.USER_FULL.code, CLOSE.USER_FULL.reason);
      return;
    }
    if (!entry) {
      entry = this.users.create(key, conn);
      // Interest first, then the backlog: a message stored after this point arrives live.
      entry.handle = this.broker.watch(key);
      this.users.add(entry);
      this.metrics.users++;
      this.mailbox?.watched(entry);
    } else {
      addConn(entry, conn);
      if (entry.handle === RELEASED) {
        entry.handle = this.broker.watch(key);
        // Live messages went unwatched while every socket was closing: the stream has them.
        this.mailbox?.watched(entry);
      }
    }
    conn.user = entry;
    conn.id = this.nextConnId();
    this.groups?.opened(conn, id.svc, id.user, id.groups);
    if (conn.envelope) {
      // First, before anything the mailbox or a request may send: which socket this is.
      this.transport.send(ws, helloFrame(`${this.config.nodeId}.${conn.id}`, this.config.nodeId), true);
      this.rpc.opened(conn);
      this.mailbox?.opened(conn);
    }
    if (id.exp !== undefined) this.deadlines.set(conn, this.deadlines.fromEpoch(id.exp + this.config.jwtLeewayS));
    this.metrics.connections++;
    this.metrics.upgrades++;
    this.burst.opened();
    this.lifecycle?.opened(conn, this.users.svcUser(entry), connCount(entry) === 1);
  }

  /** The socket closed. A frame over WSGATE_MAX_MESSAGE_BYTES cut by the runtime itself arrives here as 1009 (the adapter's mapping). */
  close(conn: Conn, code?: number, reason?: string) {
    if (logEnabled("debug")) logClose(conn, conn.user ? this.users.svcUser(conn.user) : undefined, code, reason);
    if (conn.slot >= 0) this.deadlines.clear(conn);
    if (conn.user && !conn.refuse && code === CLOSE.TOO_BIG.code) this.metrics.tooLarge++;
    if (conn.held) this.mailbox?.closed(conn);
    const entry = conn.user;
    if (!entry) return;
    if (conn.envelope) this.rpc.closed(conn, this.users.svcUser(entry));
    this.groups?.closed(conn, this.users.svcUser(entry));
    conn.user = null;
    this.metrics.connections--;
    const left = removeConn(entry, conn);
    if (left === 0) {
      this.users.delete(entry);
      this.metrics.users--;
      if (entry.handle !== RELEASED) this.broker.unwatch(entry.handle);
      this.mailbox?.lastClosed(entry);
    }
    // After the user is gone from this node: an offline check must not find it here.
    this.lifecycle?.closed(conn, this.users.svcUser(entry), left === 0, code, reason);
  }

  /** A frame from a client. `data` is a string for text frames on runtimes that decode them. */
  message(conn: Conn, data: Uint8Array | string, binary: boolean) {
    if (!conn.user || conn.refuse) return;
    // Short text goes to the broker as the string (written without an encoded copy); long text
    // is encoded here once, natively, rather than measured char by char.
    let payload = data;
    let size: number;
    if (typeof data !== "string") size = data.length;
    else if (data.length <= SHORT_TEXT) size = utf8Length(data);
    else size = (payload = encoder.encode(data)).length;
    if (size > this.config.maxMessageBytes) {
      this.metrics.tooLarge++;
      this.closeWith(conn, CLOSE.TOO_BIG);
      return;
    }
    if (!takeMessage(conn, this.config.maxMsgsPerSec, this.config.msgBurst, this.deadlines.now())) {
      this.metrics.rateLimited++;
      this.closeWith(conn, CLOSE.RATE_LIMITED);
      return;
    }
    this.metrics.messagesIn++;
    this.metrics.bytesIn += size;
    conn.framesIn++;
    if (conn.envelope) return this.rpc.frame(conn, data, binary);
    this.publisher.publish(conn, payload, binary);
  }

  /** A message on a user's subject: out to every socket of that user on this node. */
  deliver(subject: string, data: Uint8Array, hint: FrameHint, seq: number, prev: number) {
    const entry = this.users.get(subject);
    if (!entry) {
      this.groups?.deliver(subject, data, hint);
      return;
    }
    if (seq === 0 || !this.mailbox) this.out.toUser(entry, data, hint, 0, 0);
    else this.mailbox.delivered(entry, data, hint, seq, prev);
  }

  /** A reader that fell too far behind: closed rather than skipped, so it knows to resync. */
  private slowConsumer(conn: Conn) {
    this.metrics.slowConsumers++;
    this.closeWith(conn, CLOSE.SLOW_CONSUMER);
  }

  /** Closes with a code and cuts the socket if the peer has not finished the close in time. */
  closeWith(conn: Conn, why: CloseCode) {
    if (conn.refuse) return;
    conn.refuse = why;
    this.transport.close(conn.ws, why.code, why.reason);
    const entry = conn.user;
    if (!entry) return;
    this.deadlines.set(conn, this.deadlines.now() + CLOSE_GRACE_S);
    // Nothing more goes to closing sockets: when all of a user's are closing, stop the
    // broker sending (a firehose at a slow consumer would otherwise be read and dropped
    // here for the whole grace period).
    if (entry.handle !== RELEASED && connsOf(entry).every((c) => c.refuse)) {
      this.broker.unwatch(entry.handle);
      entry.handle = RELEASED;
    }
  }

  /** A deadline passed: the token expired, or a closing peer ran out of grace. */
  private due(conn: Conn) {
    if (!conn.user) return;
    if (!conn.refuse) {
      this.metrics.tokenExpired++;
      this.closeWith(conn, CLOSE.TOKEN_EXPIRED);
      return;
    }
    this.metrics.closeTimeouts++;
    if (this.transport.terminate) this.transport.terminate(conn.ws);
    else this.transport.close(conn.ws, conn.refuse.code, conn.refuse.reason);
  }

  /** SIGTERM: refuse new upgrades, send every client away with 1001, flush the broker. */
  async shutdown(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.metrics.draining = 1;
    log("info", "draining", { connections: this.metrics.connections });
    const goAway = () => {
      for (const entry of this.users.values()) {
        for (const conn of connsOf(entry)) {
          conn.refuse ??= CLOSE.GOING_AWAY; // the disconnect events say closedBy "drain"
          this.transport.close(conn.ws, CLOSE.GOING_AWAY.code, CLOSE.GOING_AWAY.reason);
        }
      }
    };
    // The cluster keeps the broker open until the disconnect and offline events are out.
    if (this.cluster) await this.cluster.drain(goAway, () => this.metrics.connections === 0);
    else goAway();
    this.deadlines.stop();
    this.burst.stop();
    this.rpc.stop();
    this.mailbox?.stop();
    await this.broker.close();
  }
}
