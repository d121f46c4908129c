// The durable per-user mailbox on JetStream, without a consumer per user:
//  - one stream keeps every `<prefix>.recv.<svc>.<user>` message (limits retention) and
//    republishes it on `<prefix>.live.<svc>.<user>` with Nats-Sequence/Nats-Last-Sequence;
//  - a node serving a user holds one core subscription on the live subject;
//  - catch-up and gap healing read one user's messages with direct gets by subject, or,
//    when many wait at once, share one ordered read of the stream (catchup.ts);
//  - how far delivery got is kept per user on `<prefix>.cursor.<svc>.<user>` in a
//    second stream holding one message per subject (a KV bucket in all but name).
import { DeliverPolicy, jetstream, type JetStreamClient, jetstreamManager, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { type FrameHint, HEADER, parseFrameHint } from "../broker/broker.ts";
import type { MailboxConfig } from "../ops/config.ts";
import type { Subjects } from "../core/subjects.ts";
import { log } from "../ops/log.ts";
import { backoff } from "../util/backoff.ts";
import type { MailboxStoreApi, SharedReads, StoredMessage } from "./store-api.ts";

const NS_PER_S = 1_000_000_000;
const decoder = new TextDecoder();
/** JetStream API call timeout: a reconnect storm must fail fast and retry, not pile up. */
const API_TIMEOUT_MS = 5_000;
/** How long after a mailbox stream's deletion it is made again. */
const RECREATE_DELAY_MS = 1_000;
/** A shared read that gets no message for this long is abandoned and retried. */
const SCAN_STALL_MS = 5_000;

export class MailboxStore implements MailboxStoreApi, SharedReads {
  private jsm: JetStreamManager | null = null;
  private js: JetStreamClient | null = null;
  private nc: NatsConnection | null = null;
  /** the connection the stream-deletion advisories are watched on */
  private watching: NatsConnection | null = null;
  readonly cursorStream: string;
  /** one stream holds every user's messages: many catch-ups share one read of it */
  readonly shared: SharedReads = this;

  constructor(
    readonly config: MailboxConfig,
    private subjects: Subjects,
  ) {
    this.cursorStream = `${config.stream}_CURSORS`;
  }

  /** Creates or updates both streams on a (new) connection; throws with a clear reason. */
  async attach(nc: NatsConnection): Promise<void> {
    const jsm = await jetstreamManager(nc, { timeout: API_TIMEOUT_MS }).catch((err) => {
      throw new Error(`JetStream is not available on this NATS server (start nats-server with -js, or set WSGATE_MAILBOX=off): ${err}`);
    });
    const c = this.config;
    await ensureMailbox(jsm, this.subjects.mailboxStarting(c.stream), {
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
    });
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
    });
    this.jsm = jsm;
    this.js = jetstream(nc, { timeout: API_TIMEOUT_MS });
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
    const m = await this.api().direct.getMessage(this.cursorStream, { last_by_subj: this.subjects.cursorAll.slice(0, -1) + svcUser });
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
    const m: StoredMsg | null = await this.api().direct.getMessage(this.config.stream, { seq: fromSeq, next_by_subj: this.subjects.recvAll.slice(0, -1) + svcUser });
    return m && { seq: m.seq, data: m.data, hint: parseFrameHint(m.header?.get(HEADER.frame)) };
  }

  /** First and last sequence the stream holds now. */
  async bounds(): Promise<{ first: number; last: number }> {
    const { state } = await this.api().streams.info(this.config.stream);
    return { first: state.first_seq, last: state.last_seq };
  }

  /**
   * Reads every kept message from `from` to `to` in order through a short-lived ordered
   * consumer (deleted afterwards), handing each to `each` with its `<svc>.<user>`.
   * Returns how many were read.
   */
  async scan(from: number, to: number, each: (svcUser: string, data: Uint8Array, hint: FrameHint, seq: number) => void): Promise<number> {
    if (!this.js) throw new Error("mailbox streams are not ready");
    const prefix = this.subjects.recvAll.length - 1;
    const consumer = await this.js.consumers.get(this.config.stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: from,
      inactive_threshold: 30_000,
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
 * Creates the mailbox stream or updates it. A new stream starts its sequence at the
 * microsecond it was created, above any sequence an earlier stream of that name gave out
 * (short of one storing over a million messages a second for its whole life): clients and
 * cursors that still hold such a sequence get everything the new stream keeps, instead of
 * skipping its first messages as already seen. The stream is created on a placeholder
 * subject so nothing is stored before its sequence is set; a node that dies in between
 * leaves it in that state, and the next one finishes the job.
 */
async function ensureMailbox(jsm: JetStreamManager, placeholder: string, cfg: Record<string, unknown> & { name: string; subjects: string[] }) {
  let info = await jsm.streams.info(cfg.name).catch(() => null);
  if (!info) info = await jsm.streams.add({ ...cfg, subjects: [placeholder] } as never);
  if (!info.config.subjects?.includes(cfg.subjects[0]) && info.state.last_seq === 0) {
    // Nodes racing here all derive the same start from the stream's creation time.
    await jsm.streams.purge(cfg.name, { seq: createdMicros(info.created) });
  }
  await jsm.streams.update(cfg.name, cfg as never);
}

/** The stream's creation time (RFC 3339 with nanoseconds) in microseconds since the epoch. */
export function createdMicros(created: string): number {
  const m = /^(.*?)(?:\.(\d+))?Z$/.exec(created);
  const ms = m ? Date.parse(`${m[1]}Z`) : NaN;
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`mailbox stream has an unreadable creation time: ${created}`);
  return ms * 1000 + Number((m![2] ?? "").padEnd(6, "0").slice(0, 6));
}

async function upsert(jsm: JetStreamManager, cfg: Record<string, unknown>) {
  const name = cfg.name as string;
  try {
    await jsm.streams.info(name);
  } catch {
    await jsm.streams.add(cfg as never);
    return;
  }
  await jsm.streams.update(name, cfg as never);
}

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
