// The durable mailbox's side of delivery, behind the few hooks the live paths call:
//   watched(entry)   a user's subject is watched (first socket, or again after release): catch up
//   delivered(…)     a live message carrying a stream sequence: in order, once, gaps healed
//   opened(conn)     an envelope socket holds its messages until it says where to resume
//   resume(conn, n)  that socket's resume frame
//   closed / lastClosed / reconnected / stop
// It keeps the catch-up queue and the batched cursor writes (the resume waits are in
// resume.ts); the core keeps the sockets, and gives this object only the MailboxCore below.
import type { FrameHint } from "../broker/broker.ts";
import type { Conn, UserEntry } from "../core/conn.ts";
import type { Transport } from "../core/transport.ts";
import { errorFrame } from "../envelope/frames.ts";
import { ERROR } from "../../protocol/envelope.ts";
import { log } from "../ops/log.ts";
import { backoff } from "../util/backoff.ts";
import { CatchupReader } from "./catchup.ts";
import { Pacer } from "./pace.ts";
import { HOLD_MAX, type ReplayTarget } from "./replay.ts";
import { type ResumeCore, SocketResumes } from "./resume.ts";
import { Limiter } from "./store.ts";
import type { MailboxStoreApi } from "./store-api.ts";

/** What the mailbox needs from the core. */
export interface MailboxCore extends ResumeCore {
  /** WSGATE_MAX_BUFFERED_BYTES: a backlog is paced to half of it */
  readonly maxBufferedBytes: number;
  /** Sends to every socket of the user; returns whether every one took it at once. */
  fanOut(entry: UserEntry, data: Uint8Array, hint: FrameHint, seq: number, prev: number): boolean;
  /** The broker is connected (cursor writes wait for it). */
  connected(): boolean;
}

/** Catch-ups after which, once none is running, the runtime is asked to collect garbage. */
const GC_AFTER_CATCHUPS = 1_000;

export class MailboxDelivery {
  private readonly catchups: Limiter;
  private readonly reader: CatchupReader;
  /** users waiting for their cursor (catchUp), with when they started waiting; read from cursorHead */
  private cursorQueue: UserEntry[] = [];
  private cursorQueueAt: number[] = [];
  private cursorHead = 0;
  private cursorLoops = 0;
  private cursorFailures = new WeakMap<UserEntry, number>();
  private catchupsSinceGc = 0;
  /** users whose delivery cursor moved since the last flush */
  private dirty = new Set<UserEntry>();
  private readonly flushTimer: ReturnType<typeof setInterval>;
  private readonly pacer: Pacer;
  private readonly resumes: SocketResumes;

  constructor(
    readonly store: MailboxStoreApi,
    private readonly core: MailboxCore,
  ) {
    this.catchups = new Limiter(store.config.catchupConcurrency);
    this.reader = new CatchupReader(store, this.catchups, (pass) => {
      core.metrics.mailboxPasses++;
      log("debug", "shared mailbox read", { users: pass.users, read: pass.read, ms: Math.round(pass.ms) });
    });
    this.pacer = new Pacer(core.transport, core.maxBufferedBytes);
    this.resumes = new SocketResumes(core, this.pacer, {
      read: (svcUser, t, gone) => this.reader.read(svcUser, t, gone),
      withRetry: (what, svcUser, gone, run) => this.withRetry(what, svcUser, gone, run),
    });
    this.flushTimer = setInterval(() => this.flushCursors(), store.config.cursorFlushMs);
  }

  /** Broker hook: readies the store (streams, functions) on each new broker connection. */
  attach(connection: unknown): Promise<void> {
    return this.store.attach(connection);
  }

  /**
   * The user's subject is now watched: live messages are held while what was stored before
   * is read from the stream (interest first, then the backlog, so nothing falls between).
   */
  watched(entry: UserEntry) {
    if (entry.held) return; // already catching up
    entry.held = [];
    this.catchUp(entry);
  }

  /** Nothing goes to an envelope socket until it says where it is (resume.ts). */
  opened(conn: Conn) {
    this.resumes.opened(conn);
  }

  closed(conn: Conn) {
    this.resumes.closed(conn);
  }

  /** An envelope socket's resume frame: what follows `after` is read for it alone. */
  resume(conn: Conn, after: number | undefined) {
    this.resumes.resume(conn, after);
  }

  /** The user's last socket here closed: its cursor is written now rather than at the next flush. */
  lastClosed(entry: UserEntry) {
    if (this.dirty.delete(entry)) this.saveCursor(entry);
  }

  /** A live message with its stream sequence (`seq`) and the user's previous one (`prev`). */
  delivered(entry: UserEntry, data: Uint8Array, hint: FrameHint, seq: number, prev: number) {
    if (entry.held) {
      if (entry.held.length < HOLD_MAX) entry.held.push({ data, hint, seq, prev });
      return;
    }
    if (seq <= entry.lastSeq) {
      this.core.metrics.mailboxDuplicates++;
      return;
    }
    if (prev > entry.lastSeq) {
      // The user's chain skipped a message this node never saw: read it from the stream.
      this.core.metrics.mailboxGaps++;
      entry.held = [{ data, hint, seq, prev }];
      this.catchUp(entry);
      return;
    }
    this.advance(entry, seq, this.core.fanOut(entry, data, hint, seq, prev));
  }

  /** Live messages stored while this node was away from NATS never reached it: every served user is brought up to date. */
  reconnected() {
    for (const entry of this.core.users.values()) this.watched(entry);
  }

  stop() {
    clearInterval(this.flushTimer);
    this.flushCursors();
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
    const users = this.core.users;
    void this.withRetry("catch-up", users.svcUser(entry), () => !users.current(entry), (gone) => this.readUp(entry, started, gone));
  }

  /**
   * First catch-ups wait for their cursor in a queue, a few bytes each: a burst of 10,000
   * connections held 10,000 suspended reads before (~1 KB each), and the allocator kept that
   * memory after they were done (measured: ~850 B/conn of idle RSS after GC). The cursor
   * loads run in at most WSGATE_MAILBOX_CATCHUP_CONCURRENCY loops; each read then starts on
   * its own, so that many can still share a read of the stream.
   */
  private pumpCursors() {
    const max = this.store.config.catchupConcurrency;
    while (this.cursorLoops < max && this.cursorHead < this.cursorQueue.length) {
      this.cursorLoops++;
      void this.loadCursors().finally(() => this.cursorLoops--);
    }
  }

  private async loadCursors() {
    const users = this.core.users;
    while (this.cursorHead < this.cursorQueue.length) {
      const entry = this.cursorQueue[this.cursorHead];
      const started = this.cursorQueueAt[this.cursorHead++];
      if (this.cursorHead === this.cursorQueue.length) {
        this.cursorQueue = [];
        this.cursorQueueAt = [];
        this.cursorHead = 0;
      }
      if (!users.current(entry)) continue;
      const svcUser = users.svcUser(entry);
      let cursor: number;
      await this.catchups.acquire();
      try {
        cursor = await this.store.loadCursor(svcUser);
      } catch (err) {
        const attempt = this.cursorFailures.get(entry) ?? 0;
        this.cursorFailures.set(entry, attempt + 1);
        this.retryLater("catch-up", svcUser, err, attempt, () => {
          if (users.current(entry)) this.catchUp(entry, started);
        });
        continue;
      } finally {
        this.catchups.release();
      }
      this.cursorFailures.delete(entry);
      if (!users.current(entry)) continue;
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
        this.advance(entry, seq, this.core.fanOut(entry, data, hint, seq, prev));
      },
      ready: () => this.pacer.writable(() => entry.conns),
      backedUp: () => this.pacer.backedUp(entry.conns),
      get held() {
        return entry.held;
      },
      set held(h) {
        entry.held = h;
      },
    };
    const read = await this.reader.read(this.core.users.svcUser(entry), target, gone);
    if (read < 0) return;
    const m = this.core.metrics;
    m.mailboxBacklogDelivered += read;
    m.mailboxCatchups++;
    m.mailboxCatchupSeconds += (performance.now() - started) / 1000;
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
        const t = this.core.transport;
        if (t.collectGarbage) {
          const t0 = performance.now();
          t.collectGarbage();
          log("info", "collected garbage after a burst of catch-ups", { ms: Math.round(performance.now() - t0), users: this.core.metrics.users });
        }
      }
    }
  }

  /** Counts and logs a failed mailbox read and tries it again with backoff. */
  private retryLater(what: string, svcUser: string, err: unknown, attempt: number, again: () => void) {
    this.core.metrics.mailboxCatchupErrors++;
    const wait = backoff(attempt);
    log("warn", `mailbox ${what} failed; retrying`, { user: svcUser, retryInMs: wait, error: String(err) });
    setTimeout(again, wait);
  }

  private saveCursor(entry: UserEntry) {
    if (entry.safeSeq > 0) this.store.saveCursor(this.core.users.svcUser(entry), entry.safeSeq);
  }

  /** Batched cursor writes: one small publish per user whose cursor moved, per interval. */
  flushCursors() {
    if (this.dirty.size === 0 || !this.core.connected()) return;
    for (const entry of this.dirty) this.saveCursor(entry);
    this.dirty.clear();
  }
}

/** Without the mailbox a resume frame can only be answered with why not. */
export function noMailboxResume(transport: Transport, conn: Conn, after: number | undefined) {
  if (after !== undefined) transport.send(conn.ws, errorFrame(ERROR.NO_MAILBOX, "resume needs the mailbox (WSGATE_MAILBOX=on with NATS or Redis)"), true);
}
