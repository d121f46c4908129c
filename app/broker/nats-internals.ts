// Every use of nats.js's private fields, in one place. Written against and tested on
// @nats-io/nats-core 3.4.0 (through @nats-io/transport-node 3.4.0 and @nats-io/jetstream
// 3.4.0, pinned exactly in package.json). tests/nats-internals.test.ts fails when the
// installed client no longer has these shapes; at run time each path checks the shape
// and falls back to the public API (NatsBroker logs that once) rather than breaking.
import type { Msg, MsgCallback, NatsConnection } from "@nats-io/transport-node";
import { type HeaderScan, scanHeaders } from "./nats-headers.ts";

/**
 * The per-user interest, held as small as the NATS client allows. A stock nats.js
 * Subscription (iterator, timers, promises) costs ~1.1 KB of heap, more than an idle
 * socket; this is what the client's protocol handler actually touches for a callback
 * subscription: subject, sid, a received count, max, queue and the callback. Only the
 * subject and the sid differ from one subscription to the next, so only they are fields
 * (32 bytes); the rest sits on the prototype of each kind (LeanSub.kind). It is
 * registered with the handler's own subscription table, so the client still routes
 * MSGs to it by sid, re-sends it on reconnect and closes it with the connection.
 */
export class LeanSub {
  sid = 0;
  /** set when taken from a batch (made blank), and again by NatsBroker.renewed (an equal string) */
  constructor(public subject: string) {}
  declare readonly callback: MsgCallback<Msg>;
  declare readonly queue: string | undefined;
  /**
   * nats.js counts deliveries against `max` to unsubscribe after that many, which the gateway
   * never asks for: neither needs keeping (its unsub() writes `max`, so both take writes).
   */
  get received(): number {
    return 0;
  }
  set received(_n: number) {}
  get max(): undefined {
    return undefined;
  }
  set max(_n: number | undefined) {}
  close() {}
  unsubscribe() {}

  /** Makes `Kind` a class of lean subscriptions sharing one callback and queue group. */
  static kind(Kind: LeanSubKind, callback: MsgCallback<Msg>, queue?: string): LeanSubKind {
    // One level up, not on Kind.prototype: JSC sizes new objects by the data properties of their
    // immediate prototype too (measured: 64 bytes each instead of 32).
    const shared = Object.create(LeanSub.prototype, { callback: { value: callback }, queue: { value: queue } });
    Object.setPrototypeOf(Kind.prototype, shared);
    return Kind;
  }
}

export type LeanSubKind = { new (subject: string): LeanSub; prototype: LeanSub };

/** The parts of nats.js's protocol handler that LeanSub relies on. */
export type LeanProtocol = {
  subscriptions: { add(s: LeanSub): LeanSub; get(sid: number): unknown; cancel(s: LeanSub): void };
  _sub(s: LeanSub): void;
  unsub(s: LeanSub): void;
};

/** The client's protocol handler when it has the shape LeanSub needs; otherwise stock subscriptions are used. */
export function leanProtocol(nc: NatsConnection): LeanProtocol | null {
  const p = (nc as unknown as { protocol?: Partial<LeanProtocol> }).protocol;
  return p && typeof p._sub === "function" && typeof p.unsub === "function" && typeof p.subscriptions?.add === "function"
    ? (p as LeanProtocol)
    : null;
}

/** The subject a lean subscription was made for (its string, hash cached), or the message's own. */
export function subjectOf(lean: LeanProtocol | null, msg: Msg): string {
  const sub = lean?.subscriptions.get(msg.sid);
  return sub instanceof LeanSub ? sub.subject : msg.subject;
}

/** The parts of nats.js's MsgImpl that hold the undecoded message: `hdr` is the header block's length, -1 for none. */
type RawMsg = { _msg?: { hdr?: unknown }; _rdata?: unknown };

/**
 * Fills `out` from the message's undecoded header block (zeros when it has none); false
 * when the client's message object does not have the expected shape, and then the caller
 * reads the public `headers`. Building nats.js's MsgHdrs for every delivery (a decoded
 * string, a split, a Map of arrays, case-folded key searches) was most of what the
 * mailbox's headers cost the gateway per message.
 */
export function readHeaders(msg: Msg, out: HeaderScan): boolean {
  const r = msg as unknown as RawMsg;
  const hdr = r._msg?.hdr;
  if (typeof hdr !== "number" || !(r._rdata instanceof Uint8Array)) return false;
  if (hdr > 0) {
    scanHeaders(r._rdata, hdr, out);
  } else {
    out.seq = 0;
    out.prev = 0;
    out.hint = undefined;
  }
  return true;
}

/**
 * Registers `sub` with the handler's subscription table (which gives it its sid); the caller
 * sends the SUB (nats-publish.ts, batched). The client re-sends it on reconnect from the table.
 */
export function leanRegister(proto: LeanProtocol, sub: LeanSub): void {
  proto.subscriptions.add(sub);
}

/** Forgets `sub`; false when it belongs to a connection that is gone (then no UNSUB is due). */
export function leanForget(proto: LeanProtocol | null, sub: LeanSub): boolean {
  if (!proto || proto.subscriptions.get(sub.sid) !== sub) return false;
  proto.subscriptions.cancel(sub);
  return true;
}

/** The parts of nats.js's protocol handler that the frame publisher writes through. */
type RawProtocol = {
  outbound: { fill(a: Uint8Array): void };
  flushPending(): void;
  info?: { max_payload?: number };
  noMorePublishing?: boolean;
  outMsgs: number;
  outBytes: number;
};

export type RawSink = {
  /** Appends finished commands (`msgs` messages) to the client's outbound queue and statistics; `write`: and writes the queue to the socket now. */
  send(commands: Uint8Array, msgs: number, write: boolean): void;
  /** nats.js refuses publishes once the connection drains or closed. */
  closing(): boolean;
  /** the server's max_payload (headers and payload together) */
  maxPayload(): number;
};

/**
 * Commands written by the frame publisher (nats-publish.ts) go into the client's outbound
 * queue, where nats.js's own commands go (kept while it reconnects). Null when the client does not have that shape;
 * the broker then publishes through nc.publish.
 */
export function rawSink(nc: NatsConnection): RawSink | null {
  const p = (nc as unknown as { protocol?: Partial<RawProtocol> }).protocol;
  if (!p || typeof p.outbound?.fill !== "function" || typeof p.flushPending !== "function" || typeof p.outMsgs !== "number" || typeof p.outBytes !== "number") return null;
  const proto = p as RawProtocol;
  return {
    send(commands, msgs, write) {
      proto.outMsgs += msgs;
      proto.outBytes += commands.length;
      proto.outbound.fill(commands);
      if (write) proto.flushPending();
    },
    closing: () => proto.noMorePublishing === true || nc.isClosed(),
    // Before the first INFO nats.js knows no limit; the server's default is 1 MiB.
    maxPayload: () => proto.info?.max_payload ?? 1024 * 1024,
  };
}

/** The parts of nats.js's protocol handler behind its outbound queue. */
type OutboundProtocol = {
  sendCommand(cmd: string | Uint8Array, ...payloads: Uint8Array[]): void;
  flushPending(): void;
  outbound: { size(): number; fill(a: Uint8Array, ...bufs: Uint8Array[]): void };
  pendingLimit: number;
};

const commandEncoder = new TextEncoder();

/**
 * nats.js writes its queue to the socket at the next microtask after a command is queued, and
 * runtimes run microtasks after every socket event: a burst of 10,000 upgrades meant 10,000
 * socket writes of one JetStream request each (a cursor load), each with its own promise.
 * This makes the client's own commands wait for `later` (the runtime's setImmediate) instead,
 * as the frame batch does, so one write carries what a turn of the event loop queued. The
 * queue is still written at once past its pending limit. `before` runs ahead of every command
 * the client queues: the frame batch moves its commands into the queue there, so the server
 * gets everything in the order it was asked for (a user's SUB before the mailbox's read of
 * that user's backlog). False when the handler does not have that shape (nothing changed).
 */
export function flushAfterEvents(nc: NatsConnection, later: (fn: () => void) => void, before: () => void): boolean {
  const p = (nc as unknown as { protocol?: Partial<OutboundProtocol> }).protocol;
  if (!p || typeof p.sendCommand !== "function" || typeof p.flushPending !== "function" || typeof p.outbound?.fill !== "function" || typeof p.pendingLimit !== "number") return false;
  const proto = p as OutboundProtocol;
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    proto.flushPending();
  };
  proto.sendCommand = (cmd, ...payloads) => {
    before();
    proto.outbound.fill(typeof cmd === "string" ? commandEncoder.encode(cmd) : cmd, ...payloads);
    if (proto.outbound.size() >= proto.pendingLimit) proto.flushPending();
    else if (!scheduled) {
      scheduled = true;
      later(flush);
    }
  };
  return true;
}
