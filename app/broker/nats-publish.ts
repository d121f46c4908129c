// Client frames (and the per-user SUB/UNSUB) onto NATS without nats.js's per-message work. nats.js's publish with headers
// builds a header object (a Map of arrays, case-folded keys), encodes it to a string and then
// to bytes, formats the HPUB line as a string and encodes that too: ~4 µs and six objects per
// frame, half of the gateway's inbound cost (profiled with `bun --cpu-prof`, issue 16). Here
// each frame is written as one HPUB command straight into a reusable buffer, and everything
// written in one turn of the event loop goes to the client's outbound queue as one chunk.
// The same holds for the SUB and UNSUB of users' interest: a burst of 10,000 upgrades wrote
// 10,000 commands to the NATS socket one by one (each a write with its own promise), and the
// allocator kept that garbage spread between the sockets' long-lived memory.
//
// Wire format (NATS protocol): "HPUB <subject> <header bytes> <total bytes>\r\n" then the
// header block "NATS/1.0\r\nWs-Conn: <node>.<id>\r\nWs-Node: <node>\r\nWs-Frame: text\r\n\r\n",
// the payload and "\r\n".
import { HEADER } from "./broker.ts";

/** Where a finished batch of `msgs` commands goes: nats.js's outbound queue (nats-internals.ts rawSink), written to the socket now when `write`. */
export type Sink = (commands: Uint8Array, msgs: number, write: boolean) => void;

/** Bytes kept for batching; a frame larger than what is left starts a batch of its own. */
const CHUNK = 64 * 1024;
/** Strings up to this length are written char by char when they are ASCII; longer ones go through TextEncoder. */
const INLINE_STRING = 512;

const encoder = new TextEncoder();
const ascii = (s: string) => encoder.encode(s);
const HPUB = ascii("HPUB ");
const HEAD = ascii(`NATS/1.0\r\n${HEADER.conn}: `);
const NODE = ascii(`\r\n${HEADER.node}: `);
const FRAME = ascii(`\r\n${HEADER.frame}: `);
const TEXT_END = ascii("text\r\n\r\n");
const BINARY_END = ascii("binary\r\n\r\n");
const CRLF = ascii("\r\n");
const PUB = ascii("PUB ");
const SUB = ascii("SUB ");
const UNSUB = ascii("UNSUB ");

export class OutboundBatch {
  private buf = new Uint8Array(CHUNK);
  private used = 0;
  private msgs = 0;
  private scheduled = false;
  private node = "";
  private nodeBytes = new Uint8Array(0);
  private readonly flushBound = () => this.flush();

  constructor(
    private readonly sink: Sink,
    /** runs `fn` once the current burst of socket events is handled (the runtime's setImmediate, or a microtask) */
    private readonly later: (fn: () => void) => void,
    /** the server's max_payload (headers and payload together), read at each frame since a reconnect may change it */
    private readonly maxPayload: () => number,
  ) {}

  /** Queues one client frame for `subject`; throws when it is over the server's max_payload. */
  frame(subject: string, data: Uint8Array | string, node: string, conn: number, binary: boolean): void {
    if (node !== this.node) {
      this.node = node;
      this.nodeBytes = ascii(node);
    }
    // A string the char loop cannot write is encoded once, like nats.js would.
    let bytes: Uint8Array | null = null;
    let len: number;
    if (typeof data === "string") {
      len = data.length <= INLINE_STRING && isAscii(data) ? data.length : -1;
      if (len < 0) len = (bytes = encoder.encode(data)).length;
    } else {
      bytes = data;
      len = data.length;
    }
    const end = binary ? BINARY_END : TEXT_END;
    const hlen = HEAD.length + this.nodeBytes.length + 1 + digits(conn) + NODE.length + this.nodeBytes.length + FRAME.length + end.length;
    const total = hlen + len;
    if (total > this.maxPayload()) throw new Error(`frame of ${len} bytes is over the NATS server's max_payload (${this.maxPayload()})`);
    const need = HPUB.length + subject.length + 2 + digits(hlen) + digits(total) + 2 + total + 2;
    if (this.used + need > this.buf.length) {
      this.flush();
      if (need > this.buf.length) this.buf = new Uint8Array(need); // back to CHUNK at the next flush
    }
    const b = this.buf;
    let p = this.used;
    b.set(HPUB, p);
    p = writeAscii(b, p + HPUB.length, subject);
    b[p++] = 32;
    p = writeInt(b, p, hlen);
    b[p++] = 32;
    p = writeInt(b, p, total);
    b[p++] = 13;
    b[p++] = 10;
    b.set(HEAD, p);
    p += HEAD.length;
    b.set(this.nodeBytes, p);
    p += this.nodeBytes.length;
    b[p++] = 46; // Ws-Conn is "<node>.<id>": unique across the cluster
    p = writeInt(b, p, conn);
    b.set(NODE, p);
    p += NODE.length;
    b.set(this.nodeBytes, p);
    p += this.nodeBytes.length;
    b.set(FRAME, p);
    p += FRAME.length;
    b.set(end, p);
    p += end.length;
    if (bytes) b.set(bytes, p);
    else writeAscii(b, p, data as string);
    p += len;
    b.set(CRLF, p);
    this.used = p + 2;
    this.msgs++;
    if (!this.scheduled) {
      this.scheduled = true;
      this.later(this.flushBound);
    }
  }

  /**
   * A message without headers (lifecycle events, cluster answers). Through nc.publish each
   * one first had to flush this batch to keep order, so an event per upgrade wrote the
   * burst's SUBs to the socket one upgrade at a time: events on cost 168 against 77 CPU µs
   * per upgrade (setup bench, issue 12). Batched here it keeps order with everything else.
   * A string (an event's JSON) is encoded in place: TextEncoder.encode and its buffer were 7%
   * of the gateway's CPU in a reconnect storm with events on, a char-by-char copy 11%
   * (`bun --cpu-prof`, 3 storms of 10,000).
   */
  pub(subject: string, data: Uint8Array | string): void {
    if (typeof data === "string") return this.pubText(subject, data);
    const len = data.length;
    const p = this.pubHead(subject, len);
    this.buf.set(data, p);
    this.pubEnd(p + len);
  }

  /**
   * A string is encoded straight into the batch (encodeInto, no buffer of its own), at the
   * place its header of at most its UTF-8 bound would end, and moved down once its length is known.
   */
  private pubText(subject: string, text: string): void {
    const bound = text.length * 3;
    const room = PUB.length + subject.length + 1 + digits(bound) + 2 + bound + 2;
    if (this.used + room > this.buf.length) {
      this.flush();
      if (room > this.buf.length) this.buf = new Uint8Array(room);
    }
    const at = room - bound - 2 + this.used;
    const len = encoder.encodeInto(text, this.buf.subarray(at, at + bound)).written;
    const p = this.pubHead(subject, len);
    if (p !== at) this.buf.copyWithin(p, at, at + len);
    this.pubEnd(p + len);
  }

  /** Writes "PUB <subject> <len>\r\n" where the batch ends (with room for `len` more bytes); returns where the payload goes. */
  private pubHead(subject: string, len: number): number {
    if (len > this.maxPayload()) throw new Error(`message of ${len} bytes is over the NATS server's max_payload (${this.maxPayload()})`);
    const need = PUB.length + subject.length + 1 + digits(len) + 2 + len + 2;
    if (this.used + need > this.buf.length) {
      this.flush();
      if (need > this.buf.length) this.buf = new Uint8Array(need);
    }
    const b = this.buf;
    b.set(PUB, this.used);
    let p = writeAscii(b, this.used + PUB.length, subject);
    b[p++] = 32;
    p = writeInt(b, p, len);
    b[p++] = 13;
    b[p++] = 10;
    return p;
  }

  private pubEnd(p: number): void {
    this.buf[p++] = 13;
    this.buf[p++] = 10;
    this.used = p;
    this.msgs++;
    if (!this.scheduled) {
      this.scheduled = true;
      this.later(this.flushBound);
    }
  }

  /** SUB for a subscription already in the client's table (nats-internals.ts leanRegister). */
  sub(subject: string, sid: number, queue: string | undefined): void {
    const p = this.reserve(SUB.length + subject.length + (queue ? queue.length + 1 : 0) + 1 + digits(sid) + 2);
    const b = this.buf;
    b.set(SUB, p);
    let q = writeAscii(b, p + SUB.length, subject);
    b[q++] = 32;
    if (queue) {
      q = writeAscii(b, q, queue);
      b[q++] = 32;
    }
    q = writeInt(b, q, sid);
    b[q++] = 13;
    b[q++] = 10;
    this.used = q;
  }

  unsub(sid: number): void {
    const p = this.reserve(UNSUB.length + digits(sid) + 2);
    const b = this.buf;
    b.set(UNSUB, p);
    const q = writeInt(b, p + UNSUB.length, sid);
    b[q] = 13;
    b[q + 1] = 10;
    this.used = q + 2;
  }

  /** Room for a `need`-byte command that is not a message; returns where it starts. */
  private reserve(need: number): number {
    if (this.used + need > this.buf.length) this.flush();
    if (!this.scheduled) {
      this.scheduled = true;
      this.later(this.flushBound);
    }
    return this.used;
  }

  /** Hands what is batched to the client and has it written (the end of a turn of the event loop). */
  flush(): void {
    this.scheduled = false;
    this.hand(true);
  }

  /** Moves what is batched into the client's queue, ahead of a command the client itself queues next. */
  move(): void {
    this.hand(false);
  }

  private hand(write: boolean): void {
    if (this.used === 0) return;
    // A copy of just the used bytes: nats.js keeps the chunk until the socket took it, and the buffer is reused.
    const out = this.buf.slice(0, this.used);
    const msgs = this.msgs;
    this.used = this.msgs = 0;
    if (this.buf.length > CHUNK) this.buf = new Uint8Array(CHUNK);
    this.sink(out, msgs, write);
  }

  /** Forgets what is batched (the connection it was meant for is gone). */
  discard(): void {
    this.used = this.msgs = 0;
  }
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 127) return false;
  return true;
}

function writeAscii(b: Uint8Array, p: number, s: string): number {
  for (let i = 0; i < s.length; i++) b[p++] = s.charCodeAt(i);
  return p;
}

function digits(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

/** Writes a non-negative integer in decimal; returns the position after it. */
function writeInt(b: Uint8Array, p: number, n: number): number {
  const end = p + digits(n);
  let i = end;
  do {
    b[--i] = 48 + (n % 10);
    n = Math.floor(n / 10);
  } while (n > 0);
  return end;
}
