// The durable per-user mailbox on JetStream, without a consumer per user:
//  - one stream keeps every `<prefix>.recv.<svc>.<user>` message (limits retention) and
//    republishes it on `<prefix>.live.<svc>.<user>` with Nats-Sequence/Nats-Last-Sequence;
//  - a node serving a user holds one core subscription on the live subject;
//  - catch-up and gap healing read one user's messages with direct gets by subject, or,
//    when many wait at once, share one ordered read of the stream (catchup.ts);
//  - how far delivery got is kept per user on `<prefix>.cursor.<svc>.<user>` in a
//    second stream holding one message per subject (a KV bucket in all but name).
import { AckPolicy, DeliverPolicy, jetstream, type JetStreamClient, jetstreamManager, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import { type NatsConnection, TimeoutError } from "@nats-io/transport-node";
import { type FrameHint, HEADER, parseFrameHint } from "../broker/broker.ts";
import type { MailboxConfig } from "../ops/config.ts";
import type { Subjects } from "../core/subjects.ts";
import { log } from "../ops/log.ts";
import { backoff } from "../util/backoff.ts";
import type { MailboxStoreApi, SharedReads, StoredMessage } from "./store-api.ts";
import { ensureMailbox, explainPlacement, PlacementRefused, upsert } from "./streams.ts";

const NS_PER_S = 1_000_000_000;
const decoder = new TextDecoder();
/** JetStream API call timeout: a reconnect storm must fail fast and retry, not pile up. */
const API_TIMEOUT_MS = 5_000;
/** How long after a mailbox stream's deletion it is made again. */
const RECREATE_DELAY_MS = 1_000;
/** A shared read that gets no message for this long is abandoned and retried. */
const SCAN_STALL_MS = 5_000;
/** replicas > 1: how long a shared read waits for its consumer before users read on their own. */
const SCAN_START_MS = 1_500;
/** How often a JetStream API question is asked again while it gets no answer (askAgain). */
const ASK_AGAIN_MS = 500;

export class MailboxStore implements MailboxStoreApi, SharedReads {
  private jsm: JetStreamManager | null = null;
  /** the JetStream API with a short timeout, for questions asked again until answered (askAgain) */
  private quickApi: JetStreamManager | null = null;
  /** replicas > 1: makes shared reads' consumers, giving up soon while the meta leader is elected */
  private scanJs: JetStreamClient | null = null;
  private js: JetStreamClient | null = null;
  private nc: NatsConnection | null = null;
  /** the connection the stream-deletion advisories are watched on */
  private watching: NatsConnection | null = null;
  readonly cursorStream: string;
  /** one stream holds every user's messages: many catch-ups share one read of it */
  readonly shared: SharedReads = this;
  /** why the streams cannot be placed as configured (replicas, storage), until they can */
  private refused: string | null = null;

  constructor(
    readonly config: MailboxConfig,
    private subjects: Subjects,
  ) {
    this.cursorStream = `${config.stream}_CURSORS`;
  }

  /** Creates or updates both streams on a (new) connection; throws with a clear reason. */
  async attach(nc: NatsConnection): Promise<void> {
    try {
      await this.makeStreams(nc);
      this.refused = null;
    } catch (err) {
      if (err instanceof PlacementRefused) this.refused = err.message;
      throw err;
    }
  }

  /** What keeps the mailbox from working as configured, for /readyz; null when nothing does. */
  refusal(): string | null {
    return this.refused;
  }

  private async makeStreams(nc: NatsConnection): Promise<void> {
    const jsm = await jetstreamManager(nc, { timeout: API_TIMEOUT_MS }).catch((err) => {
      throw new Error(`JetStream is not available on this NATS server (start nats-server with -js, or set WSGATE_MAILBOX=off): ${err}`);
    });
    const c = this.config;
    const js = jetstream(nc, { timeout: API_TIMEOUT_MS });
    await ensureMailbox(jsm, js, this.subjects.mailboxStarting(c.stream), {
      name: c.stream,
      subjects: [this.subjects.recvAll],
      retention: "limits",
      storage: "file",
      discard: "old",
      num_replicas: c.replicas,
      max_age: c.maxAgeS * NS_PER_S,
      max_msgs_per_subject: c.maxPerUser > 0 ? c.maxPerUser : -1,
      max_bytes: c.maxBytes,
      allow_direct: true,
      republish: { src: this.subjects.recvAll, dest: this.subjects.liveAll },
    }).catch((err) => explainPlacement(err, c, nc));
    await upsert(jsm, {
      name: this.cursorStream,
      subjects: [this.subjects.cursorAll],
      retention: "limits",
      storage: "file",
      discard: "old",
      num_replicas: c.replicas,
      // A cursor outlives the messages it points past, so an expired cursor never
      // makes a user's still-kept backlog look undelivered.
      max_age: 2 * c.maxAgeS * NS_PER_S,
      max_msgs_per_subject: 1,
      allow_direct: true,
    }).catch((err) => explainPlacement(err, c, nc));
    this.jsm = jsm;
    this.quickApi = await jetstreamManager(nc, { timeout: ASK_AGAIN_MS, checkAPI: false });
    this.scanJs = c.replicas > 1 ? jetstream(nc, { timeout: SCAN_START_MS }) : null;
    this.js = js;
    this.nc = nc;
    if (this.watching !== nc) {
      this.watching = nc;
      // Without the stream nothing is kept and nothing reaches users live (live is its
      // republish): a deleted stream is made again within seconds, not at the next restart.
      for (const name of [c.stream, this.cursorStream]) {
        nc.subscribe(`$JS.EVENT.ADVISORY.STREAM.DELETED.${name}`, { callback: () => void this.recreate(nc, name) });
      }
    }
  }

  private async recreate(nc: NatsConnection, name: string) {
    log("warn", "mailbox stream was deleted; creating it again", { stream: name });
    // nats-server 2.9 may still be removing the old stream's files: a stream of the same
    // name made at once lost or could not read back some of its first messages (measured).
    await new Promise((r) => setTimeout(r, RECREATE_DELAY_MS));
    for (let attempt = 0; !nc.isClosed(); attempt++) {
      const wait = backoff(attempt);
      try {
        await this.attach(nc);
        log("info", "mailbox stream created again", { stream: name });
        return;
      } catch (err) {
        log("error", "mailbox stream could not be created again; retrying", { stream: name, retryInMs: wait, error: String(err) });
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  /** Last stream sequence delivered to the user, 0 when none was recorded. */
  async loadCursor(svcUser: string): Promise<number> {
    const m = await this.direct((api) => api.direct.getMessage(this.cursorStream, { last_by_subj: this.subjects.cursorAll.slice(0, -1) + svcUser }));
    if (!m) return 0;
    const n = Number(decoder.decode(m.data));
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  }

  /** Fire-and-forget: cursors are written in batches and a lost write means redelivery, not loss. */
  saveCursor(svcUser: string, seq: number): void {
    this.nc?.publish(this.subjects.cursorAll.slice(0, -1) + svcUser, String(seq));
  }

  /** The user's first kept message at or after `fromSeq`, or null when there is none. */
  async next(svcUser: string, fromSeq: number): Promise<StoredMessage | null> {
    const m = await this.nextStored(svcUser, fromSeq);
    return m && { seq: m.seq, data: m.data, hint: parseFrameHint(m.header?.get(HEADER.frame)) };
  }

  /**
   * What waits for a user (the admin console): messages kept past their delivery cursor,
   * counted by a throwaway consumer filtered on the user's subject (num_pending), which is
   * deleted at once and expires by itself if that fails. `stored` counts delivered ones too.
   */
  async pending(svcUser: string): Promise<{ pending: number; stored: number; cursor: number }> {
    const jsm = this.api();
    const subject = this.subjects.recvAll.slice(0, -1) + svcUser;
    const [cursor, info] = await Promise.all([this.loadCursor(svcUser), jsm.streams.info(this.config.stream, { subjects_filter: subject })]);
    const stored = info.state.subjects?.[subject] ?? 0;
    if (stored === 0) return { pending: 0, stored, cursor };
    const consumer = await jsm.consumers.add(this.config.stream, {
      filter_subject: subject,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: cursor + 1,
      ack_policy: AckPolicy.None,
      inactive_threshold: 10 * NS_PER_S,
      mem_storage: true,
      num_replicas: 1,
    });
    jsm.consumers.delete(this.config.stream, consumer.name).catch(() => {});
    return { pending: consumer.num_pending, stored, cursor };
  }

  private async nextStored(svcUser: string, fromSeq: number): Promise<StoredMsg | null> {
    const query = { seq: fromSeq, next_by_subj: this.subjects.recvAll.slice(0, -1) + svcUser };
    const m = await this.direct((api) => api.direct.getMessage(this.config.stream, query));
    if (m || this.config.replicas === 1) return m;
    // Any replica answers a direct get, and a follower may not have applied the newest
    // messages yet (it holds a prefix of the stream, so a message it returns is the right
    // one). Its "none" could be a message just stored and already sent live, which the
    // catch-up would then skip as dropped by the limits: the leader has the last word. Its
    // user's last message is a lookup, not a scan, and nearly always settles it.
    const last = await this.askAgain((api) => api.streams.getMessage(this.config.stream, { last_by_subj: query.next_by_subj }));
    if (!last || last.seq < fromSeq) return null;
    return this.askAgain((api) => api.streams.getMessage(this.config.stream, query));
  }

  /** First and last sequence the stream holds now. */
  async bounds(): Promise<{ first: number; last: number }> {
    const { state } = await this.askAgain((api) => api.streams.info(this.config.stream));
    return { first: state.first_seq, last: state.last_seq };
  }

  /**
   * A direct get: any replica answers it. On a cluster just after a server loss a request can
   * go unanswered (sent while the client was moving to another server), so there it is
   * asked again like a leader's question; on one server one patient attempt keeps a loaded
   * server's queue from being filled twice.
   */
  private direct<T>(ask: (api: JetStreamManager) => Promise<T>): Promise<T> {
    return this.config.replicas > 1 ? this.askAgain(ask) : ask(this.api());
  }

  /**
   * A question only the stream leader answers. One sent while the stream has no leader (4-8 s
   * after its server died) is never answered, even once a leader is elected, so it is asked
   * again every ASK_AGAIN_MS, up to the usual API timeout: the answer comes right after the
   * election instead of a full timeout later (measured: catch-ups 5-17 s slower).
   */
  private async askAgain<T>(ask: (api: JetStreamManager) => Promise<T>): Promise<T> {
    const api = this.quickApi;
    if (!api) throw new Error("mailbox streams are not ready");
    const until = Date.now() + API_TIMEOUT_MS;
    for (;;) {
      try {
        return await ask(api);
      } catch (err) {
        if (!(err instanceof TimeoutError) || Date.now() >= until) throw err;
      }
    }
  }

  /**
   * Reads every kept message from `from` to `to` in order through a short-lived ordered
   * consumer (deleted afterwards), handing each to `each` with its `<svc>.<user>`.
   * Returns how many were read.
   */
  async scan(from: number, to: number, each: (svcUser: string, data: Uint8Array, hint: FrameHint, seq: number) => void): Promise<number> {
    if (!this.js) throw new Error("mailbox streams are not ready");
    const prefix = this.subjects.recvAll.length - 1;
    const consumer = await (this.scanJs ?? this.js).consumers
      .get(this.config.stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from, inactive_threshold: 30_000 })
      .catch((err) => {
        throw new ScanUnavailable(`no consumer for a shared read: ${err}`);
      });
    let read = 0;
    let stalled = false;
    try {
      const messages = await consumer.consume({ max_messages: 1_000, expires: SCAN_STALL_MS });
      // Messages removed by the limits after the bounds were taken never come: stop on silence.
      let progress = 0;
      const watchdog = setInterval(() => {
        if (progress === read) {
          stalled = true;
          messages.stop();
        }
        progress = read;
      }, SCAN_STALL_MS);
      try {
        for await (const m of messages) {
          if (m.seq > to) break;
          read++;
          each(m.subject.slice(prefix), m.data, parseFrameHint(m.headers?.get(HEADER.frame)), m.seq);
          if (m.seq === to || m.info.pending === 0) break;
        }
      } finally {
        clearInterval(watchdog);
        messages.stop();
      }
    } finally {
      consumer.delete().catch(() => {});
    }
    if (stalled) throw new Error(`stream read stalled after ${read} messages (from ${from} to ${to})`);
    return read;
  }

  private api(): JetStreamManager {
    if (!this.jsm) throw new Error("mailbox streams are not ready");
    return this.jsm;
  }
}

/**
 * A shared read could not start: making a consumer needs the JetStream meta leader, which a
 * cluster is still electing for seconds after losing its server. Per-user reads (direct gets,
 * the stream leader) do not need it.
 */
export class ScanUnavailable extends Error {}

/** Bounds concurrent catch-ups so a reconnect storm cannot flood the JetStream API. */
export class Limiter {
  private active = 0;
  private waiting: (() => void)[] = [];
  constructor(private max: number) {}

  acquire(): Promise<void> {
    if (this.active < this.max) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }

  idle(): boolean {
    return this.active === 0;
  }
}
