// The heart of the gateway: which sockets belong to which user, and the two message paths.
//   client frame  → message()  → broker.publish(<prefix>.send.<svc>.<user>)
//   broker message → deliver() → every socket of that user, fanned out in memory
// A node holds one broker subscription per (svc, user) it serves, made on the
// user's first connection and dropped with the last.
import type { Broker, BrokerState, FrameHint } from "./broker.ts";
import { HEADER, parseFrameHint } from "./broker.ts";
import { CLOSE, type CloseCode } from "./close-codes.ts";
import type { Config } from "./config.ts";
import type { Identity } from "./identity.ts";
import { log } from "./log.ts";
import { Limiter, MailboxStore } from "./mailbox.ts";
import { Metrics } from "./metrics.ts";
import { subjects } from "./subjects.ts";
import { isUtf8 } from "./utf8.ts";

/** Send outcome as the runtimes report it: >0 sent, -1 queued behind backpressure, 0 dropped. */
export type SendStatus = number;

/** What each runtime adapter provides to write to and close its native sockets. */
export interface Transport<WS = any> {
  readonly runtime: "bun" | "node" | "deno";
  /** The runtime can only send a text frame from a string (Bun's sendText, Deno). */
  readonly textAsString: boolean;
  send(ws: WS, data: Uint8Array | string, text: boolean): SendStatus;
  close(ws: WS, code: number, reason: string): void;
}

/** The one small plain object each socket carries. */
export type Conn = {
  id: number;
  ws: unknown;
  user: UserEntry | null;
  /** identity between the upgrade decision and open */
  pending: Identity | null;
  /** set when the socket is to be closed right after it opens (node full) */
  refuse: CloseCode | null;
};

type UserEntry = {
  /** the subject this node watches for the user (recv, or live with the mailbox); the map key */
  key: string;
  send: string;
  conns: Conn[];
  handle: unknown;
  /** mailbox: last stream sequence delivered to this user's sockets here; -1 until the cursor is read */
  lastSeq: number;
  /** mailbox: live messages held while the backlog is read from the stream; null when live */
  held: Held[] | null;
};

type Held = { data: Uint8Array; hint: FrameHint; seq: number; prev: number };

/** Live messages held per user during a catch-up; past it they are re-read from the stream. */
const HOLD_MAX = 1_000;

/** Keep this many descriptors free for NATS, listeners, logs and in-flight accepts. */
const FD_RESERVE = 64;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Gateway {
  readonly metrics = new Metrics();
  readonly subjects;
  private users = new Map<string, UserEntry>();
  private nextConnId = 1;
  private draining = false;
  private everConnected = false;
  broker!: Broker;
  /** set in NATS mode with the mailbox on */
  mailbox: MailboxStore | null = null;
  private catchups!: Limiter;
  /** users whose delivery cursor moved since the last flush */
  private dirty = new Set<UserEntry>();
  private flushTimer: ReturnType<typeof setInterval> | null = null;

  constructor(
    readonly config: Config,
    readonly transport: Transport,
  ) {
    this.subjects = subjects(config.prefix);
  }

  /** Hooks the broker calls; bound once so the broker holds no per-user closures. */
  brokerHooks() {
    return {
      deliver: (subject: string, data: Uint8Array, hint: FrameHint, seq: number, prev: number) => this.deliver(subject, data, hint, seq, prev),
      rewatchAll: () => {
        for (const entry of this.users.values()) entry.handle = this.broker.watch(entry.key);
      },
      prepare: this.mailbox ? (nc: unknown) => this.mailbox!.attach(nc as never) : undefined,
      onState: (state: BrokerState) => {
        if (state === "connected") {
          if (this.everConnected) this.metrics.brokerReconnects++;
          this.everConnected = true;
        }
        this.metrics.brokerConnected = state === "connected" ? 1 : 0;
      },
    };
  }

  /** Turns on the durable mailbox: catch-up on connect, gap healing, batched cursors. */
  enableMailbox(store: MailboxStore) {
    this.mailbox = store;
    this.catchups = new Limiter(store.config.catchupConcurrency);
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
    if (s !== "connected") return { ok: false, reason: `broker ${s}` };
    return { ok: true };
  }

  isDraining() {
    return this.draining;
  }

  /** Decides an upgrade. Returns the connection to attach, or why it is refused. */
  admit(identity: Identity): Conn | { status: number; reason: "draining" | "broker_down"; error: string } {
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
    const conn: Conn = { id: this.nextConnId++, ws: null, user: null, pending: identity, refuse: null };
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
    const key = this.mailbox ? this.subjects.live(id.svc, id.user) : this.subjects.recv(id.svc, id.user);
    let entry = this.users.get(key);
    if (!entry) {
      entry = { key, send: this.subjects.send(id.svc, id.user), conns: [], handle: null, lastSeq: -1, held: null };
      // Interest first, then the backlog: a message stored after this point arrives live
      // (and is held until the backlog is out), one stored before is in the stream.
      entry.handle = this.broker.watch(key);
      this.users.set(key, entry);
      this.metrics.users++;
      if (this.mailbox) {
        entry.held = [];
        void this.catchUp(entry);
      }
    }
    entry.conns.push(conn);
    conn.user = entry;
    this.metrics.connections++;
    this.metrics.upgrades++;
  }

  close(conn: Conn) {
    const entry = conn.user;
    if (!entry) return;
    conn.user = null;
    this.metrics.connections--;
    const conns = entry.conns;
    const i = conns.indexOf(conn);
    if (i >= 0) {
      conns[i] = conns[conns.length - 1];
      conns.pop();
    }
    if (conns.length === 0) {
      this.users.delete(entry.key);
      this.metrics.users--;
      this.broker.unwatch(entry.handle);
      if (this.dirty.delete(entry)) this.saveCursor(entry);
    }
  }

  /** A frame from a client. `data` is a string for text frames on runtimes that decode them. */
  message(conn: Conn, data: Uint8Array | string, binary: boolean) {
    const entry = conn.user;
    if (!entry) return;
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    if (bytes.length > this.config.maxMessageBytes) {
      this.metrics.tooLarge++;
      this.transport.close(conn.ws, CLOSE.TOO_BIG.code, CLOSE.TOO_BIG.reason);
      return;
    }
    this.metrics.messagesIn++;
    this.metrics.bytesIn += bytes.length;
    try {
      this.broker.publish(entry.send, bytes, {
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
    if (seq === 0 || !this.mailbox) return this.fanOut(entry, data, hint);
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
      void this.catchUp(entry);
      return;
    }
    this.fanOut(entry, data, hint);
    this.advance(entry, seq);
  }

  private fanOut(entry: UserEntry, data: Uint8Array, hint: FrameHint) {
    const text = hint !== "binary" && isUtf8(data);
    const payload = text && this.transport.textAsString ? decoder.decode(data) : data;
    const conns = entry.conns;
    const m = this.metrics;
    for (let i = 0; i < conns.length; i++) {
      const status = this.transport.send(conns[i].ws, payload, text);
      if (status > 0) {
        m.messagesOut++;
        m.bytesOut += data.length;
      } else if (status < 0) {
        // Queued by the runtime: still delivered, but the reader is behind.
        m.messagesOut++;
        m.bytesOut += data.length;
        m.backpressure++;
      } else {
        m.dropped++;
      }
    }
  }

  private advance(entry: UserEntry, seq: number) {
    entry.lastSeq = seq;
    this.dirty.add(entry);
  }

  /**
   * Brings one user up to date from the stream: from the stored cursor on the first
   * connection, from the last delivered sequence after a gap. Live messages that
   * arrive meanwhile are held and released in sequence order afterwards.
   */
  private async catchUp(entry: UserEntry, attempt = 0): Promise<void> {
    const store = this.mailbox!;
    const svcUser = entry.send.slice(this.subjects.send("", "").length - 1);
    const started = performance.now();
    const gone = () => this.users.get(entry.key) !== entry;
    await this.catchups.acquire();
    try {
      if (gone()) return;
      if (entry.lastSeq < 0) entry.lastSeq = await store.loadCursor(svcUser);
      for (;;) {
        for (;;) {
          const m = await store.next(svcUser, entry.lastSeq + 1);
          if (gone()) return;
          if (!m) break;
          if (m.seq <= entry.lastSeq) break; // cannot happen with next_by_subj; never loop on it
          this.fanOut(entry, m.data, parseFrameHint(m.header?.get(HEADER.frame)));
          this.advance(entry, m.seq);
          this.metrics.mailboxBacklogDelivered++;
        }
        // Release held live messages while the chain is unbroken; a break means the
        // stream has something the live path skipped, so read the stream again.
        const held = entry.held ?? [];
        let i = 0;
        let broken = held.length >= HOLD_MAX;
        for (; i < held.length && !broken; i++) {
          const h = held[i];
          if (h.seq <= entry.lastSeq) continue;
          if (h.prev > entry.lastSeq) {
            broken = true;
            break;
          }
          this.fanOut(entry, h.data, h.hint);
          this.advance(entry, h.seq);
        }
        if (!broken) {
          entry.held = null;
          break;
        }
        entry.held = held.length >= HOLD_MAX ? [] : held.slice(i);
      }
      this.metrics.mailboxCatchups++;
      this.metrics.mailboxCatchupSeconds += (performance.now() - started) / 1000;
    } catch (err) {
      // NATS away or the JetStream API overloaded: keep holding live messages and retry.
      this.metrics.mailboxCatchupErrors++;
      const wait = Math.min(250 * 2 ** attempt, 5_000);
      log("warn", "mailbox catch-up failed; retrying", { user: svcUser, retryInMs: wait, error: String(err) });
      setTimeout(() => {
        if (!gone()) void this.catchUp(entry, attempt + 1);
      }, wait);
    } finally {
      this.catchups.release();
    }
  }

  private saveCursor(entry: UserEntry) {
    if (entry.lastSeq > 0) this.mailbox?.saveCursor(entry.send.slice(this.subjects.send("", "").length - 1), entry.lastSeq);
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
      for (const conn of entry.conns.slice()) this.transport.close(conn.ws, CLOSE.GOING_AWAY.code, CLOSE.GOING_AWAY.reason);
    }
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushCursors();
    await this.broker.close();
  }
}
