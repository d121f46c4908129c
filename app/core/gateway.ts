// The heart of the gateway: which sockets belong to which user, and the two message paths.
//   client frame  → message()  → broker.publish(<prefix>.send.<svc>.<user>)
//   broker message → deliver() → every socket of that user, fanned out in memory
// A node holds one broker subscription per (svc, user) it serves, made on the
// user's first connection and dropped with the last.
import type { Broker, BrokerState, FrameHint } from "../broker/broker.ts";
import { HEADER } from "../broker/broker.ts";
import { CLOSE, type CloseCode } from "../../protocol/close-codes.ts";
import type { Config } from "../ops/config.ts";
import type { Identity } from "../security/identity.ts";
import { log } from "../ops/log.ts";
import { Deadlines } from "./deadlines.ts";
import { overBuffer, takeMessage } from "./limits.ts";
import { Limiter, MailboxStore } from "../mailbox/store.ts";
import type { Security } from "../security/security.ts";
import { Metrics } from "../ops/metrics.ts";
import { subjects } from "./subjects.ts";
import { isUtf8 } from "../util/utf8.ts";
import { errorFrame, messageFrame } from "../envelope/frames.ts";
import { type Held, HOLD_MAX, type ReplayTarget } from "../mailbox/replay.ts";
import { CatchupReader } from "../mailbox/catchup.ts";
import { removeUnordered } from "../util/unordered.ts";
import { Rpc } from "../envelope/rpc.ts";

/** Send outcome as the runtimes report it: >0 sent, -1 queued behind backpressure, 0 dropped. */
export type SendStatus = number;

/** What each runtime adapter provides to write to and close its native sockets. */
export interface Transport<WS = any> {
  readonly runtime: "bun" | "node" | "deno";
  /** The runtime can only send a text frame from a string (Bun's sendText, Deno). */
  readonly textAsString: boolean;
  send(ws: WS, data: Uint8Array | string, text: boolean): SendStatus;
  close(ws: WS, code: number, reason: string): void;
  /** Unsent bytes queued on the socket; without it slow consumers cannot be detected. */
  buffered?(ws: WS): number;
  /** Drops the socket at once, no close handshake: the peer never answered one. */
  terminate?(ws: WS): void;
  /** Asks the runtime to collect garbage soon (after a burst of catch-ups, see withRetry). */
  collectGarbage?(): void;
}

/**
 * The one small object each socket carries. Idle sockets are most of what a gateway holds,
 * so it keeps only what an idle socket needs; the rest (a number and a rate budget from the
 * first frame, a close reason, envelope state) lives in a side object made on first write.
 * The accessors keep one flat set of names for the rest of the code.
 */
export class Conn {
  ws: unknown = null;
  user: UserEntry | null = null;
  /** identity between the upgrade decision and open */
  pending: Identity | null;
  /** gateway second of the next time-driven close (token expiry, close grace); 0 = none (deadlines.ts) */
  deadline = 0;
  /** index in that second's bucket; -1 = none */
  slot = -1;
  private more: ConnMore | null = null;

  constructor(pending: Identity | null) {
    this.pending = pending;
  }

  private side(): ConnMore {
    return (this.more ??= { ...FRESH });
  }

  /** Per node, told to services in Ws-Conn: given on first use, since an idle socket never needs one. */
  get id(): number {
    const m = this.side();
    if (m.id === 0) m.id = nextConnId++;
    return m.id;
  }
  /** why the socket is being closed (or is to be closed right after it opens, node full); nothing more is sent */
  get refuse(): CloseCode | null {
    return (this.more ?? FRESH).refuse;
  }
  set refuse(v: CloseCode | null) {
    this.side().refuse = v;
  }
  /** the client chose the wsgate.v1 envelope (subprotocol) */
  get envelope(): boolean {
    return (this.more ?? FRESH).envelope;
  }
  set envelope(v: boolean) {
    this.side().envelope = v;
  }
  /** message-rate token bucket (limits.ts): frames left, and the gateway second they were counted at */
  get budget(): number {
    return (this.more ?? FRESH).budget;
  }
  set budget(v: number) {
    this.side().budget = v;
  }
  get budgetAt(): number {
    return (this.more ?? FRESH).budgetAt;
  }
  set budgetAt(v: number) {
    this.side().budgetAt = v;
  }
  /** `<prefix>.send.<svc>.<user>`, made on the first frame: idle sockets never need it */
  get send(): string | null {
    return (this.more ?? FRESH).send;
  }
  set send(v: string | null) {
    this.side().send = v;
  }
  /** envelope + mailbox: last stream sequence sent on this socket, the resume floor */
  get seq(): number {
    return (this.more ?? FRESH).seq;
  }
  set seq(v: number) {
    this.side().seq = v;
  }
  /** envelope + mailbox: messages held until the client says where to resume; null when live */
  get held(): Held[] | null {
    return (this.more ?? FRESH).held;
  }
  set held(v: Held[] | null) {
    this.side().held = v;
  }
}

type ConnMore = { id: number; refuse: CloseCode | null; envelope: boolean; budget: number; budgetAt: number; send: string | null; seq: number; held: Held[] | null };

/**
 * A socket's side fields before it has any. A socket that never sent a frame has its whole
 * burst: takeMessage refills from `budgetAt` -1 and caps at the burst.
 */
const FRESH: Readonly<ConnMore> = Object.freeze({ id: 0, refuse: null, envelope: false, budget: Infinity, budgetAt: -1, send: null, seq: 0, held: null });

let nextConnId = 1;

type UserEntry = {
  /** the subject this node watches for the user (recv, or live with the mailbox); the map key */
  key: string;
  /** the user's sockets on this node: most users hold one, kept inline; an array from the second (connCount, connAt, connsOf) */
  conns: Conn | Conn[];
  handle: unknown;
  /** mailbox: last stream sequence delivered to this user's sockets here; -1 until the cursor is read */
  lastSeq: number;
  /** mailbox: last sequence every socket took without queueing it: what the cursor may record */
  safeSeq: number;
  /** mailbox: live messages held while the backlog is read from the stream; null when live */
  held: Held[] | null;
};

/** A user's sockets are read and changed through these helpers, whether one is held inline or several in an array. */
function connCount(entry: UserEntry): number {
  const c = entry.conns;
  return c instanceof Conn ? 1 : c.length;
}

function connAt(entry: UserEntry, i: number): Conn {
  const c = entry.conns;
  return c instanceof Conn ? c : c[i];
}

/** A copy: safe to iterate while sockets come and go. */
function connsOf(entry: UserEntry): Conn[] {
  const c = entry.conns;
  return c instanceof Conn ? [c] : c.slice();
}

function addConn(entry: UserEntry, conn: Conn) {
  const c = entry.conns;
  if (c instanceof Conn) entry.conns = [c, conn];
  else c.push(conn);
}

/** Returns how many sockets the user still has here. */
function removeConn(entry: UserEntry, conn: Conn): number {
  const c = entry.conns;
  if (c instanceof Conn) {
    if (c !== conn) return 1;
    entry.conns = NO_CONNS; // code still holding the entry (a catch-up finishing) sees no socket
    return 0;
  }
  removeUnordered(c, conn);
  if (c.length === 1) entry.conns = c[0];
  return c.length;
}

const NO_CONNS = Object.freeze([]) as unknown as Conn[];

/** How long an envelope socket's messages wait for its resume frame before flowing anyway. */
const RESUME_WAIT_MS = 2_000;

/** Catch-ups after which, once none is running, the runtime is asked to collect garbage. */
const GC_AFTER_CATCHUPS = 1_000;

/** Keep this many descriptors free for NATS, listeners, logs and in-flight accepts. */
const FD_RESERVE = 64;

/** Seconds a peer gets to finish a close handshake before its socket is cut. */
const CLOSE_GRACE_S = 2;

/** A user's broker interest given up early because every socket of the user is closing. */
const RELEASED = Symbol("released");

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Gateway {
  readonly metrics = new Metrics();
  readonly subjects;
  /** `<prefix>.send.` */
  private readonly sendPrefix: string;
  /** length of what precedes `<svc>.<user>` in a watched subject (recv, or live with the mailbox) */
  private keyPrefixLength: number;
  private users = new Map<string, UserEntry>();
  private draining = false;
  private everConnected = false;
  broker!: Broker;
  readonly deadlines = new Deadlines((conn) => this.due(conn));
  /** identity, Origin, service token, upgrade rate: set by createGateway */
  security!: Security;
  /** set in NATS mode with the mailbox on */
  mailbox: MailboxStore | null = null;
  private catchups!: Limiter;
  private reader!: CatchupReader;
  /** users waiting for their cursor (catchUp), with when they started waiting; read from cursorHead */
  private cursorQueue: UserEntry[] = [];
  private cursorQueueAt: number[] = [];
  private cursorHead = 0;
  private cursorLoops = 0;
  private cursorFailures = new WeakMap<UserEntry, number>();
  private catchupsSinceGc = 0;
  /** users whose delivery cursor moved since the last flush */
  private dirty = new Set<UserEntry>();
  private flushTimer: ReturnType<typeof setInterval> | null = null;
  /** envelope sockets waiting for their resume frame, with when they opened */
  private awaitingResume = new Map<Conn, number>();
  private resumeSweep: ReturnType<typeof setInterval> | null = null;
  /** request/reply and the other wsgate.v1 client frames */
  readonly rpc: Rpc;

  constructor(
    readonly config: Config,
    readonly transport: Transport,
  ) {
    this.subjects = subjects(config.prefix);
    this.sendPrefix = this.subjects.send("", "").slice(0, -1);
    this.keyPrefixLength = this.subjects.recv("", "").length - 1;
    this.rpc = new Rpc(this);
  }

  /** Hooks the broker calls; bound once so the broker holds no per-user closures. */
  brokerHooks() {
    return {
      deliver: (subject: string, data: Uint8Array, hint: FrameHint, seq: number, prev: number) => this.deliver(subject, data, hint, seq, prev),
      rewatchAll: () => {
        for (const entry of this.users.values()) entry.handle = this.broker.watch(entry.key);
        this.rpc.rewatch();
      },
      request: (subject: string, data: Uint8Array, reply: string, hint: FrameHint, timeoutMs: number) => this.rpc.onRequest(subject, data, reply, hint, timeoutMs),
      answer: (token: string, data: Uint8Array | null, hint: FrameHint, error: string | null) => this.rpc.onAnswer(token, data, hint, error),
      prepare: this.mailbox ? (nc: unknown) => this.mailbox!.attach(nc as never) : undefined,
      onState: (state: BrokerState) => {
        if (state === "connected") {
          if (this.everConnected) {
            this.metrics.brokerReconnects++;
            // Live messages stored while this node was away from NATS never reached it:
            // every served user is brought up to date from the stream.
            if (this.mailbox) this.recheckAll();
          }
          this.everConnected = true;
        }
        this.metrics.brokerConnected = state === "connected" ? 1 : 0;
      },
    };
  }

  /** Turns on the durable mailbox: catch-up on connect, gap healing, batched cursors. */
  enableMailbox(store: MailboxStore) {
    this.mailbox = store;
    this.keyPrefixLength = this.subjects.live("", "").length - 1;
    this.catchups = new Limiter(store.config.catchupConcurrency);
    this.reader = new CatchupReader(store, this.catchups, (pass) => {
      this.metrics.mailboxPasses++;
      log("debug", "shared mailbox read", { users: pass.users, read: pass.read, ms: Math.round(pass.ms) });
    });
    this.flushTimer = setInterval(() => this.flushCursors(), store.config.cursorFlushMs);
  }

  setOpenFilesLimit(limit: number) {
    this.metrics.openFilesLimit = limit;
    if (limit > 0 && limit - FD_RESERVE < this.config.maxConnections) {
      log("warn", "open-files limit is below the connection cap; upgrades past it will be refused", {
        openFilesLimit: limit,
        maxConnections: this.config.maxConnections,
        effectiveCap: Math.max(0, limit - FD_RESERVE),
      });
    }
  }

  ready(): { ok: true } | { ok: false; reason: string } {
    if (this.draining) return { ok: false, reason: "draining" };
    const s = this.broker.state();
    if (s !== "connected") return { ok: false, reason: this.mailbox?.refusal() ?? `broker ${s}` };
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
    const known = max > 0 ? this.users.get(this.keyOf(identity)) : undefined;
    if (known && connCount(known) >= max) {
      this.metrics.refused.user_full++;
      return { status: 429, reason: "user_full", error: `this user already holds ${max} connections on this node (WSGATE_MAX_CONNS_PER_USER)` };
    }
    const conn = new Conn(identity);
    if (envelope) conn.envelope = true;
    const fdCap = this.metrics.openFilesLimit > 0 ? this.metrics.openFilesLimit - FD_RESERVE : Infinity;
    if (this.metrics.connections >= this.config.maxConnections) {
      this.metrics.refused.node_full++;
      conn.refuse = CLOSE.TRY_AGAIN;
    } else if (this.metrics.connections >= fdCap) {
      this.metrics.refused.fd_limit++;
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
    const key = this.keyOf(id);
    let entry = this.users.get(key);
    // Upgrades of one user that were admitted together can still overshoot the cap.
    if (entry && this.config.maxConnsPerUser > 0 && connCount(entry) >= this.config.maxConnsPerUser) {
      this.metrics.refused.user_full++;
      this.transport.close(ws, CLOSE.USER_FULL.code, CLOSE.USER_FULL.reason);
      return;
    }
    if (!entry) {
      entry = { key, conns: conn, handle: null, lastSeq: -1, safeSeq: 0, held: null };
      // Interest first, then the backlog: a message stored after this point arrives live
      // (and is held until the backlog is out), one stored before is in the stream.
      entry.handle = this.broker.watch(key);
      this.users.set(key, entry);
      this.metrics.users++;
      if (this.mailbox) {
        entry.held = [];
        this.catchUp(entry);
      }
    } else {
      addConn(entry, conn);
      if (entry.handle === RELEASED) {
        entry.handle = this.broker.watch(key);
        // Live messages went unwatched while every socket was closing: the stream has them.
        if (this.mailbox && !entry.held) {
          entry.held = [];
          this.catchUp(entry);
        }
      }
    }
    conn.user = entry;
    if (conn.envelope) this.rpc.opened(conn);
    if (conn.envelope && this.mailbox) {
      // Nothing goes out until the client says where it is (a resume frame) or
      // RESUME_WAIT_MS passes: sending first would force later messages out of order.
      conn.held = [];
      this.awaitingResume.set(conn, Date.now());
      this.resumeSweep ??= setInterval(() => this.sweepResumes(), RESUME_WAIT_MS / 2);
    }
    if (id.exp !== undefined) this.deadlines.set(conn, this.deadlines.fromEpoch(id.exp + this.config.jwtLeewayS));
    this.metrics.connections++;
    this.metrics.upgrades++;
  }

  private keyOf(id: Identity): string {
    return this.mailbox ? this.subjects.live(id.svc, id.user) : this.subjects.recv(id.svc, id.user);
  }

  /** The socket closed; `code` and `reason` as the runtime reports them, when it does. */
  close(conn: Conn, code?: number, reason?: string) {
    if (conn.slot >= 0) this.deadlines.clear(conn);
    // The runtimes enforce WSGATE_MAX_MESSAGE_BYTES themselves: the client gets 1009 before the frame
    // reaches message(), and uWS-based ones report it here as 1006 "Received too big message".
    if (conn.user && !conn.refuse && (code === CLOSE.TOO_BIG.code || (reason !== undefined && /too big/i.test(reason)))) this.metrics.tooLarge++;
    if (conn.held) {
      conn.held = null;
      this.awaitingResume.delete(conn);
    }
    const entry = conn.user;
    if (!entry) return;
    if (conn.envelope) this.rpc.closed(conn, this.svcUser(entry));
    conn.user = null;
    this.metrics.connections--;
    if (removeConn(entry, conn) === 0) {
      this.users.delete(entry.key);
      this.metrics.users--;
      if (entry.handle !== RELEASED) this.broker.unwatch(entry.handle);
      if (this.dirty.delete(entry)) this.saveCursor(entry);
    }
  }

  /** A frame from a client. `data` is a string for text frames on runtimes that decode them. */
  message(conn: Conn, data: Uint8Array | string, binary: boolean) {
    const entry = conn.user;
    if (!entry || conn.refuse) return;
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    if (bytes.length > this.config.maxMessageBytes) {
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
    this.metrics.bytesIn += bytes.length;
    if (conn.envelope) return this.rpc.frame(conn, data, binary);
    try {
      this.broker.publish(this.sendSubject(conn), bytes, {
        [HEADER.conn]: String(conn.id),
        [HEADER.node]: this.config.nodeId,
        [HEADER.frame]: binary ? "binary" : "text",
      });
    } catch (err) {
      this.metrics.publishErrors++;
      log("warn", "publish failed; closing the connection so the client retries", { error: String(err) });
      this.transport.close(conn.ws, CLOSE.INTERNAL.code, "broker unavailable");
    }
  }

  /** A message on a user's subject: out to every socket of that user on this node. */
  deliver(subject: string, data: Uint8Array, hint: FrameHint, seq: number, prev: number) {
    const entry = this.users.get(subject);
    if (!entry) return;
    if (seq === 0 || !this.mailbox) {
      this.fanOut(entry, data, hint);
      return;
    }
    if (entry.held) {
      if (entry.held.length < HOLD_MAX) entry.held.push({ data, hint, seq, prev });
      return;
    }
    if (seq <= entry.lastSeq) {
      this.metrics.mailboxDuplicates++;
      return;
    }
    if (prev > entry.lastSeq) {
      // The user's chain skipped a message this node never saw: read it from the stream.
      this.metrics.mailboxGaps++;
      entry.held = [{ data, hint, seq, prev }];
      this.catchUp(entry);
      return;
    }
    this.advance(entry, seq, this.fanOut(entry, data, hint, seq, prev));
  }

  /** Returns whether every socket took the message straight away (nothing queued or refused). */
  private fanOut(entry: UserEntry, data: Uint8Array, hint: FrameHint, seq = 0, prev = 0): boolean {
    let flushed = true;
    const text = hint !== "binary" && isUtf8(data);
    const payload = text && this.transport.textAsString ? decoder.decode(data) : data;
    let framed: string | null = null; // the envelope frame, built once for all envelope sockets
    const m = this.metrics;
    const maxBuffered = this.config.maxBufferedBytes;
    for (let i = 0; i < connCount(entry); i++) {
      const conn = connAt(entry, i);
      if (conn.refuse) {
        m.dropped++; // closing with a code the client sees; nothing more goes out
        flushed = false;
        continue;
      }
      let status: number;
      if (conn.envelope) {
        if (seq > 0) {
          if (conn.held) {
            if (conn.held.length < HOLD_MAX) conn.held.push({ data, hint, seq, prev });
            continue;
          }
          if (seq <= conn.seq) continue; // already sent by this socket's resume
          conn.seq = seq;
        }
        framed ??= messageFrame(data, text, seq);
        status = this.transport.send(conn.ws, framed, true);
      } else {
        status = this.transport.send(conn.ws, payload, text);
      }
      if (status > 0) {
        m.messagesOut++;
        m.bytesOut += data.length;
        continue;
      }
      flushed = false;
      if (status < 0) {
        // Queued by the runtime: still delivered, but the reader is behind.
        m.messagesOut++;
        m.bytesOut += data.length;
        m.backpressure++;
        if (overBuffer(this.transport, conn.ws, maxBuffered)) this.slowConsumer(conn);
      } else {
        m.dropped++;
        if (overBuffer(this.transport, conn.ws, maxBuffered)) this.slowConsumer(conn);
      }
    }
    return flushed;
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

  /**
   * Moves a user's position. The recorded cursor only follows messages every socket took
   * at once: one still queued in a runtime buffer is lost if that socket is closed (a slow
   * consumer, a crash), so it must come again from the mailbox.
   */
  private advance(entry: UserEntry, seq: number, flushed: boolean) {
    entry.lastSeq = seq;
    if (flushed) {
      entry.safeSeq = seq;
      this.dirty.add(entry);
    }
  }

  /**
   * Brings one user up to date from the stream: from the stored cursor on the first
   * connection, from the last delivered sequence after a gap or a NATS reconnect.
   */
  private catchUp(entry: UserEntry, started = performance.now()): void {
    if (entry.lastSeq < 0) {
      this.cursorQueue.push(entry);
      this.cursorQueueAt.push(started);
      this.pumpCursors();
      return;
    }
    void this.withRetry("catch-up", this.svcUser(entry), () => this.users.get(entry.key) !== entry, (gone) => this.readUp(entry, started, gone));
  }

  /**
   * First catch-ups wait for their cursor in a queue, a few bytes each: a burst of 10,000
   * connections held 10,000 suspended reads before (~1 KB each), and the allocator kept that
   * memory after they were done (measured: ~850 B/conn of idle RSS after GC). The cursor
   * loads run in at most WSGATE_MAILBOX_CATCHUP_CONCURRENCY loops; each read then starts on
   * its own, so that many can still share a read of the stream.
   */
  private pumpCursors() {
    const max = this.mailbox!.config.catchupConcurrency;
    while (this.cursorLoops < max && this.cursorHead < this.cursorQueue.length) {
      this.cursorLoops++;
      void this.loadCursors().finally(() => this.cursorLoops--);
    }
  }

  private async loadCursors() {
    while (this.cursorHead < this.cursorQueue.length) {
      const entry = this.cursorQueue[this.cursorHead];
      const started = this.cursorQueueAt[this.cursorHead++];
      if (this.cursorHead === this.cursorQueue.length) {
        this.cursorQueue = [];
        this.cursorQueueAt = [];
        this.cursorHead = 0;
      }
      if (this.users.get(entry.key) !== entry) continue;
      const svcUser = this.svcUser(entry);
      let cursor: number;
      await this.catchups.acquire();
      try {
        cursor = await this.mailbox!.loadCursor(svcUser);
      } catch (err) {
        const attempt = this.cursorFailures.get(entry) ?? 0;
        this.cursorFailures.set(entry, attempt + 1);
        this.retryLater("catch-up", svcUser, err, attempt, () => {
          if (this.users.get(entry.key) === entry) this.catchUp(entry, started);
        });
        continue;
      } finally {
        this.catchups.release();
      }
      this.cursorFailures.delete(entry);
      if (this.users.get(entry.key) !== entry) continue;
      // Live messages held since this node subscribed are new to its sockets, even when
      // another node serving the same user already moved the shared cursor past them.
      const first = entry.held?.[0];
      entry.lastSeq = entry.safeSeq = first && first.prev < cursor ? first.prev : cursor;
      this.catchUp(entry, started);
    }
  }

  /** Reads what the user is missing from the stream, from its last delivered sequence. */
  private async readUp(entry: UserEntry, started: number, gone: () => boolean): Promise<void> {
    const target: ReplayTarget = {
      floor: () => entry.lastSeq,
      send: (data, hint, seq, prev) => {
        this.advance(entry, seq, this.fanOut(entry, data, hint, seq, prev));
      },
      ready: () => this.writable(() => entry.conns),
      backedUp: () => this.backedUp(entry.conns),
      get held() {
        return entry.held;
      },
      set held(h) {
        entry.held = h;
      },
    };
    const read = await this.reader.read(this.svcUser(entry), target, gone);
    if (read < 0) return;
    this.metrics.mailboxBacklogDelivered += read;
    this.metrics.mailboxCatchups++;
    this.metrics.mailboxCatchupSeconds += (performance.now() - started) / 1000;
  }

  /**
   * An envelope client says which stream sequence it has: it gets exactly what follows,
   * read from the stream for this socket alone, then the held live messages in order.
   * Without `after` (a new client) the held messages are simply released.
   */
  resume(conn: Conn, after: number | undefined) {
    if (!conn.envelope || !conn.user || conn.refuse) return;
    this.awaitingResume.delete(conn);
    if (!this.mailbox) {
      if (after !== undefined) this.transport.send(conn.ws, errorFrame("no_mailbox", "resume needs the mailbox (NATS with JetStream)"), true);
      return;
    }
    if (after === undefined) return this.release(conn);
    const entry = conn.user;
    conn.seq = after;
    conn.held ??= [];
    const target: ReplayTarget = {
      floor: () => conn.seq,
      send: (data, hint, seq) => {
        const text = hint !== "binary" && isUtf8(data);
        this.sendCounted(conn, messageFrame(data, text, seq), data.length);
        conn.seq = seq;
      },
      get held() {
        return conn.held;
      },
      set held(h) {
        conn.held = h;
      },
      ready: () => this.writable(() => conn),
      backedUp: () => this.backedUp(conn),
    };
    const svcUser = this.svcUser(entry);
    void this.withRetry("resume", svcUser, () => conn.user !== entry || conn.refuse !== null, async (gone) => {
      const read = await this.reader.read(svcUser, target, gone);
      if (read > 0) this.metrics.mailboxBacklogDelivered += read;
    });
  }

  /**
   * Runs one stream read (its API calls go through the catch-up limit); on failure (NATS
   * away, the JetStream API overloaded) live messages stay held and it is retried with backoff.
   */
  private async withRetry(what: string, svcUser: string, gone: () => boolean, run: (gone: () => boolean) => Promise<void>, attempt = 0): Promise<void> {
    try {
      if (!gone()) await run(gone);
    } catch (err) {
      this.retryLater(what, svcUser, err, attempt, () => {
        if (!gone()) void this.withRetry(what, svcUser, gone, run, attempt + 1);
      });
    } finally {
      // A reconnect storm leaves megabytes of spent JetStream replies that the runtime's
      // collector, judging by its own heap growth, may leave in place for a long time
      // (measured: 12.6 KB per user settled against 3 KB after a collection at 19k users).
      if (++this.catchupsSinceGc >= GC_AFTER_CATCHUPS && this.reader.idle() && this.cursorHead >= this.cursorQueue.length) {
        this.catchupsSinceGc = 0;
        if (this.transport.collectGarbage) {
          const t0 = performance.now();
          this.transport.collectGarbage();
          log("info", "collected garbage after a burst of catch-ups", { ms: Math.round(performance.now() - t0), users: this.metrics.users });
        }
      }
    }
  }

  /** Counts and logs a failed mailbox read and tries it again with backoff. */
  private retryLater(what: string, svcUser: string, err: unknown, attempt: number, again: () => void) {
    this.metrics.mailboxCatchupErrors++;
    const wait = Math.min(250 * 2 ** attempt, 5_000);
    log("warn", `mailbox ${what} failed; retrying`, { user: svcUser, retryInMs: wait, error: String(err) });
    setTimeout(again, wait);
  }

  /**
   * A backlog is read as fast as the stream answers; this paces it to the sockets: it
   * waits while any of them holds more than half the outbound limit (bounded: after ~30 s
   * the slow-consumer rule decides).
   */
  private async writable(conns: () => Conn | Conn[]): Promise<void> {
    for (let i = 0; i < 3_000; i++) {
      if (!this.backedUp(conns())) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Some open socket holds more than half the outbound limit. */
  private backedUp(conns: Conn | Conn[]): boolean {
    const t = this.transport;
    if (!t.buffered) return false;
    const half = this.config.maxBufferedBytes / 2;
    const over = (c: Conn) => !c.refuse && t.buffered!(c.ws) > half;
    return conns instanceof Conn ? over(conns) : conns.some(over);
  }

  /** `<svc>.<user>` of a user, from the subject this node watches. */
  svcUser(entry: UserEntry): string {
    return entry.key.slice(this.keyPrefixLength);
  }

  sendSubject(conn: Conn): string {
    return (conn.send ??= this.sendPrefix + this.svcUser(conn.user!));
  }

  /** Sends what was held for a socket that gave no resume point, in order. */
  private release(conn: Conn) {
    const held = conn.held;
    conn.held = null;
    if (!held) return;
    for (const h of held) {
      if (h.seq <= conn.seq) continue;
      const text = h.hint !== "binary" && isUtf8(h.data);
      this.sendCounted(conn, messageFrame(h.data, text, h.seq), h.data.length);
      conn.seq = h.seq;
    }
  }

  private sweepResumes() {
    const cutoff = Date.now() - RESUME_WAIT_MS;
    for (const [conn, since] of this.awaitingResume) {
      if (since > cutoff) continue;
      this.awaitingResume.delete(conn);
      this.release(conn);
    }
    if (this.awaitingResume.size === 0 && this.resumeSweep) {
      clearInterval(this.resumeSweep);
      this.resumeSweep = null;
    }
  }

  private sendCounted(conn: Conn, frame: string, bytes: number) {
    const status = this.transport.send(conn.ws, frame, true);
    if (status === 0) this.metrics.dropped++;
    else {
      this.metrics.messagesOut++;
      this.metrics.bytesOut += bytes;
      if (status < 0) this.metrics.backpressure++;
    }
  }

  private recheckAll() {
    for (const entry of this.users.values()) {
      if (entry.held) continue; // already catching up
      entry.held = [];
      this.catchUp(entry);
    }
  }

  private saveCursor(entry: UserEntry) {
    if (entry.safeSeq > 0) this.mailbox?.saveCursor(this.svcUser(entry), entry.safeSeq);
  }

  /** Batched cursor writes: one small publish per user whose cursor moved, per interval. */
  flushCursors() {
    if (this.dirty.size === 0 || this.broker.state() !== "connected") return;
    for (const entry of this.dirty) this.saveCursor(entry);
    this.dirty.clear();
  }

  /** SIGTERM: refuse new upgrades, send every client away with 1001, flush the broker. */
  async shutdown(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.metrics.draining = 1;
    log("info", "draining", { connections: this.metrics.connections });
    for (const entry of this.users.values()) {
      for (const conn of connsOf(entry)) this.transport.close(conn.ws, CLOSE.GOING_AWAY.code, CLOSE.GOING_AWAY.reason);
    }
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.deadlines.stop();
    this.rpc.stop();
    this.flushCursors();
    await this.broker.close();
  }
}
