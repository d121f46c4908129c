// An in-memory stand-in for the three reads the mailbox makes of its JetStream stream
// (next by subject, bounds, an ordered scan), and a replay target that records what a
// user's sockets were sent. Lets replay.ts and catchup.ts be tested without nats-server.
import type { FrameHint } from "../../app/broker/broker.ts";
import type { MailboxStoreApi } from "../../app/mailbox/store-api.ts";
import type { Held, ReplayTarget } from "../../app/mailbox/replay.ts";

type Stored = { svcUser: string; seq: number; data: Uint8Array };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class MemoryStream {
  private msgs: Stored[] = [];
  private seq = 0;
  /** Sequences past this are not readable yet (a message still in flight to the stream). */
  visibleTo = Number.MAX_SAFE_INTEGER;
  /** Called when a reader finds no more messages for a user: lets a test add one "meanwhile". */
  onExhausted: ((svcUser: string) => void) | null = null;
  /** Thrown by the next call of the named read, once. */
  failNext: { op: "next" | "bounds" | "scan"; error: Error } | null = null;
  calls = { next: 0, bounds: 0, scan: 0 };
  /** one stream holding every user's messages, as JetStream's: shared reads apply */
  readonly shared = this;

  /** Appends a message for `svcUser` and returns its stream sequence. */
  add(svcUser: string, text = `m`): number {
    this.seq++;
    this.msgs.push({ svcUser, seq: this.seq, data: encoder.encode(`${text}${this.seq}`) });
    return this.seq;
  }

  /** Skips sequences, as the limits or other subjects' messages would. */
  skip(n: number) {
    this.seq += n;
  }

  /** Removes a message, as the stream's limits would. */
  drop(seq: number) {
    this.msgs = this.msgs.filter((m) => m.seq !== seq);
  }

  private fail(op: "next" | "bounds" | "scan") {
    this.calls[op]++;
    if (this.failNext?.op === op) {
      const { error } = this.failNext;
      this.failNext = null;
      throw error;
    }
  }

  async next(svcUser: string, fromSeq: number) {
    this.fail("next");
    await Promise.resolve();
    const m = this.msgs.find((x) => x.svcUser === svcUser && x.seq >= fromSeq && x.seq <= this.visibleTo);
    if (!m) {
      this.onExhausted?.(svcUser);
      return null;
    }
    return { seq: m.seq, data: m.data, hint: "text" as const };
  }

  async bounds() {
    this.fail("bounds");
    const kept = this.msgs.filter((m) => m.seq <= this.visibleTo);
    return { first: kept[0]?.seq ?? this.seq + 1, last: kept.at(-1)?.seq ?? this.seq };
  }

  async scan(from: number, to: number, each: (svcUser: string, data: Uint8Array, hint: FrameHint, seq: number) => void) {
    this.fail("scan");
    let read = 0;
    for (const m of this.msgs) {
      if (m.seq < from || m.seq > to) continue;
      await Promise.resolve();
      each(m.svcUser, m.data, "text", m.seq);
      read++;
    }
    return read;
  }

  /** Typed as the store the mailbox code takes: it uses only the reads above. */
  asStore(): MailboxStoreApi {
    return this as unknown as MailboxStoreApi;
  }
}

/** What one target was sent, in order: its stream sequences and texts. */
export class RecordingTarget implements ReplayTarget {
  held: Held[] | null = [];
  seqs: number[] = [];
  texts: string[] = [];
  hints: FrameHint[] = [];
  backed = false;
  private last: number;

  constructor(floor = 0) {
    this.last = floor;
  }

  floor() {
    return this.last;
  }

  send(data: Uint8Array, hint: FrameHint, seq: number) {
    this.seqs.push(seq);
    this.texts.push(decoder.decode(data));
    this.hints.push(hint);
    this.last = seq;
  }

  async ready() {}

  backedUp() {
    return this.backed;
  }

  /** Holds a live message that arrived during the read: `prev` is the user's previous sequence. */
  hold(seq: number, prev: number, text = "m") {
    (this.held ??= []).push({ data: encoder.encode(`${text}${seq}`), hint: "text", seq, prev });
  }
}
