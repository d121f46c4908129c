// NATS broker: one core subscription per served user subject, shared delivery callback.
import { connect, createInbox, headers as natsHeaders, Match, RequestError } from "@nats-io/transport-node";
import type { Msg, MsgCallback, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Broker, BrokerHooks, BrokerState, FrameHint } from "./broker.ts";
import { HEADER, NotStored, parseFrameHint, StoreUnconfirmed } from "./broker.ts";
import { log } from "../ops/log.ts";
import { backoff } from "../util/backoff.ts";

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 5_000;
/** The queue group of service → client request subscriptions: one node answers each request. */
const REQUEST_QUEUE = "wsgate";
/**
 * How long a stored publish waits for the stream, retries included. A stream whose leader
 * died has none for 4-8 s on nats-server 2.9 (three-node cluster, measured): the caller
 * hears "not stored, retry" within this bound instead of hanging through the election.
 */
const STORED_ACK_MS = 5_000;
const STORED_RETRY = { minMs: 100, maxMs: 1_000 };
const ackDecoder = new TextDecoder();

export class NatsBroker implements Broker {
  readonly kind = "nats";
  private nc: NatsConnection | null = null;
  private current: BrokerState = "connecting";
  private stopping = false;
  private readonly onMsg: MsgCallback<Msg>;
  /** request/reply (rpc.ts): one callback for every request subject, one wildcard inbox for every answer */
  private readonly onRequest: MsgCallback<Msg>;
  /** lean subscriptions of user subjects and of request subjects: each kind shares its callback and queue */
  private readonly UserSub: LeanSubKind;
  private readonly RequestSub: LeanSubKind;
  private readonly onAnswer: MsgCallback<Msg>;
  private readonly inbox = createInbox();
  private inboxOn: NatsConnection | null = null;
  /** the current connection's protocol handler, when LeanSub can use it */
  private lean: LeanProtocol | null = null;
  /** settles when the current connection drops: a stored publish stops waiting for an answer that cannot come */
  private linkDown = downSignal();

  constructor(
    private servers: string,
    private name: string,
    private hooks: BrokerHooks,
  ) {
    const deliver = hooks.deliver;
    const scan: HeaderScan = { seq: 0, prev: 0, hint: undefined };
    // The one callback every user subscription shares: nothing is allocated per subscription,
    // and per message nothing beyond what the client itself makes (no header objects).
    this.onMsg = (err, msg) => {
      if (err) {
        log("warn", "nats subscription error", { error: String(err) });
        return;
      }
      // The subscription's own subject string: no decoding per message, and its hash is cached.
      const sub = this.lean?.subscriptions.get(msg.sid);
      const subject = sub instanceof LeanSub ? sub.subject : msg.subject;
      const raw = rawHeaders(msg);
      if (raw === null) {
        const h = msg.headers;
        if (!h) return deliver(subject, msg.data, undefined, 0, 0);
        const seq = Number(h.last("Nats-Sequence")) || 0;
        return deliver(subject, msg.data, parseFrameHint(h.get(HEADER.frame, Match.IgnoreCase)), seq, seq ? Number(h.last("Nats-Last-Sequence")) || 0 : 0);
      }
      if (raw === NO_HEADERS) return deliver(subject, msg.data, undefined, 0, 0);
      scanHeaders(raw, (msg as unknown as RawMsg)._msg.hdr, scan);
      deliver(subject, msg.data, scan.hint, scan.seq, scan.seq ? scan.prev : 0);
    };
    const request = hooks.request;
    this.onRequest = (err, msg) => {
      if (err || !request) return;
      const h = msg.headers;
      const timeout = Number(h?.get(HEADER.timeout, Match.IgnoreCase));
      request(msg.subject, msg.data, msg.reply ?? "", parseFrameHint(h?.get(HEADER.frame, Match.IgnoreCase)), timeout > 0 ? timeout : 0);
    };
    const answer = hooks.answer;
    const tokenAt = this.inbox.length + 1;
    this.onAnswer = (err, msg) => {
      if (err || !answer) return;
      const h = msg.headers;
      const token = msg.subject.slice(tokenAt);
      // The server's own "503 no responders" status: nobody subscribes to the subject.
      if (h && h.code === 503 && msg.data.length === 0) return answer(token, null, undefined, null);
      answer(token, msg.data, parseFrameHint(h?.get(HEADER.frame, Match.IgnoreCase)), h?.get(HEADER.error, Match.IgnoreCase) || null);
    };
    // A class expression of its own for each kind: JSC gives the objects of a second class made
    // by the same expression a hidden prototype field (16 bytes more each).
    this.UserSub = LeanSub.kind(class extends LeanSub {}, this.onMsg);
    this.RequestSub = LeanSub.kind(class extends LeanSub {}, this.onRequest, REQUEST_QUEUE);
  }

  state() {
    return this.current;
  }

  private setState(s: BrokerState) {
    if (this.current === s) return;
    this.current = s;
    this.hooks.onState(s);
  }

  start(): Promise<void> {
    void this.connectLoop();
    return Promise.resolve();
  }

  private async connectLoop() {
    let wait = BACKOFF_MIN_MS;
    let attempt = 0;
    while (!this.stopping) {
      attempt++;
      try {
        const nc = await connect({
          servers: this.servers.split(","),
          name: this.name,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 500,
          pingInterval: 10_000,
          timeout: 3_000,
        });
        if (this.stopping) {
          await nc.close();
          return;
        }
        log("info", "nats connected", { server: nc.getServer(), attempt });
        await this.prepare(nc);
        if (this.stopping) return;
        this.nc = nc;
        this.linkDown = downSignal();
        this.lean = leanProtocol(nc);
        this.hooks.rewatchAll();
        this.setState("connected");
        void this.watchStatus(nc);
        const err = await nc.closed();
        this.linkDown.fire();
        this.nc = null;
        this.lean = null;
        if (this.stopping) return;
        log("error", "nats connection closed; connecting again", { error: err ? String(err) : undefined });
        this.setState("connecting");
        wait = BACKOFF_MIN_MS;
      } catch (err) {
        log("warn", "nats unreachable; retrying", { servers: this.servers, attempt, retryInMs: wait, error: String(err) });
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(wait * 2, BACKOFF_MAX_MS);
      }
    }
  }

  /** Retries the connection's preparation (mailbox streams) until it works or the connection goes. */
  private async prepare(nc: NatsConnection) {
    if (!this.hooks.prepare) return;
    let wait = BACKOFF_MIN_MS;
    for (;;) {
      try {
        await this.hooks.prepare(nc);
        return;
      } catch (err) {
        if (this.stopping || nc.isClosed()) throw err;
        log("error", "broker connected but not usable yet; retrying", { retryInMs: wait, error: String(err) });
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(wait * 2, BACKOFF_MAX_MS);
      }
    }
  }

  private async watchStatus(nc: NatsConnection) {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") {
        log("warn", "nats disconnected; reconnecting", { server: s.server });
        this.linkDown.fire();
        this.setState("reconnecting");
      } else if (s.type === "reconnect") {
        // nats.js re-sends every live subscription on reconnect. The server may have
        // lost its JetStream state, so the mailbox streams are ensured again.
        log("info", "nats reconnected", { server: s.server });
        this.linkDown = downSignal();
        void this.prepare(nc).catch(() => {});
        this.setState("connected");
      } else if (s.type === "error") {
        log("warn", "nats error", { error: String(s.error) });
      }
    }
  }

  publish(subject: string, data: Uint8Array, hdrs?: Record<string, string>) {
    const nc = this.nc;
    if (!nc) throw new Error("nats is not connected");
    if (hdrs) {
      const h = natsHeaders();
      for (const k in hdrs) h.set(k, hdrs[k]);
      nc.publish(subject, data, { headers: h });
    } else {
      nc.publish(subject, data);
    }
  }

  async publishStored(subject: string, data: Uint8Array, hdrs?: Record<string, string>, msgId?: string): Promise<void> {
    let h: ReturnType<typeof natsHeaders> | undefined;
    if (hdrs || msgId) {
      h = natsHeaders();
      for (const k in hdrs) h.set(k, hdrs[k]);
      if (msgId) h.set("Nats-Msg-Id", msgId);
    }
    const deadline = Date.now() + STORED_ACK_MS;
    for (let attempt = 0; ; attempt++) {
      const nc = this.nc;
      if (!nc) throw new NotStored("nats is not connected");
      let why: string;
      try {
        // A request sent on a connection that then drops gets no answer (nor a timeout
        // until the deadline): what happened to it is unknown at once.
        const m = await Promise.race([nc.request(subject, data, { timeout: Math.max(1, deadline - Date.now()), headers: h }), this.linkDown.promise]);
        if (!m) throw new StoreUnconfirmed("the NATS connection dropped before the stream answered");
        const ack = JSON.parse(ackDecoder.decode(m.data)) as { stream?: string; error?: { description?: string } };
        if (ack.stream && !ack.error) return;
        why = ack.error?.description ?? "the stream gave no acknowledgement";
      } catch (err) {
        // Only "nobody listens on the subject" proves the message went nowhere: while a
        // replicated stream has no leader, no server takes its subjects. Anything else
        // (a timeout, a lost connection) leaves the message's fate unknown.
        if (err instanceof StoreUnconfirmed) throw err;
        if (!(err instanceof RequestError && err.isNoResponders())) throw new StoreUnconfirmed(`no acknowledgement from the stream: ${err}`);
        why = "no stream takes the subject right now (no leader, or the mailbox stream is missing)";
      }
      const wait = backoff(attempt, STORED_RETRY);
      if (Date.now() + wait >= deadline) throw new NotStored(why);
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  watch(subject: string): LeanSub | Subscription | null {
    return this.subscribe(subject, this.UserSub);
  }

  watchRequests(subject: string): LeanSub | Subscription | null {
    return this.subscribe(subject, this.RequestSub);
  }

  private subscribe(subject: string, Kind: LeanSubKind): LeanSub | Subscription | null {
    // Before the first connection there is nothing to subscribe on; rewatchAll() catches up.
    const nc = this.nc;
    if (!nc) return null;
    const proto = leanProtocol(nc);
    if (!proto) return nc.subscribe(subject, { queue: Kind.prototype.queue, callback: Kind.prototype.callback });
    const sub = new Kind(subject);
    proto.subscriptions.add(sub);
    proto._sub(sub);
    return sub;
  }

  request(subject: string, data: Uint8Array, hdrs: Record<string, string>, token: string) {
    const nc = this.nc;
    if (!nc) throw new Error("nats is not connected");
    // One wildcard subscription per connection carries every answer; nats.js re-sends it on reconnect.
    if (this.inboxOn !== nc) {
      nc.subscribe(this.inbox + ".*", { callback: this.onAnswer });
      this.inboxOn = nc;
    }
    const h = natsHeaders();
    for (const k in hdrs) h.set(k, hdrs[k]);
    nc.publish(subject, data, { reply: this.inbox + "." + token, headers: h });
  }

  unwatch(handle: unknown) {
    if (handle instanceof LeanSub) {
      const proto = this.nc && leanProtocol(this.nc);
      if (!proto || proto.subscriptions.get(handle.sid) !== handle) return; // its connection is gone
      proto.unsub(handle);
      proto.subscriptions.cancel(handle);
      return;
    }
    const sub = handle as Subscription | null;
    if (sub && !sub.isClosed()) sub.unsubscribe();
  }

  async close() {
    this.stopping = true;
    const nc = this.nc;
    if (nc && !nc.isClosed()) {
      try {
        await nc.drain();
      } catch {
        await nc.close();
      }
    }
    this.setState("closed");
  }
}

/** A one-shot signal: `promise` resolves to null once fire() is called. */
function downSignal(): { promise: Promise<null>; fire: () => void } {
  let fire!: () => void;
  const promise = new Promise<null>((r) => (fire = () => r(null)));
  return { promise, fire };
}

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
  constructor(readonly subject: string) {}
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

type LeanSubKind = { new (subject: string): LeanSub; prototype: LeanSub };

/** The parts of nats.js's protocol handler that LeanSub relies on. */
type LeanProtocol = {
  subscriptions: { add(s: LeanSub): LeanSub; get(sid: number): unknown; cancel(s: LeanSub): void };
  _sub(s: LeanSub): void;
  unsub(s: LeanSub): void;
};

/** The client's protocol handler when it has the shape LeanSub needs; otherwise stock subscriptions are used. */
function leanProtocol(nc: NatsConnection): LeanProtocol | null {
  const p = (nc as unknown as { protocol?: Partial<LeanProtocol> }).protocol;
  return p && typeof p._sub === "function" && typeof p.unsub === "function" && typeof p.subscriptions?.add === "function"
    ? (p as LeanProtocol)
    : null;
}

/** What the live path reads from a message's headers; one object, filled again for each message. */
export type HeaderScan = { seq: number; prev: number; hint: FrameHint };

/** The parts of nats.js's MsgImpl that hold the undecoded message: `hdr` is the header block's length, -1 for none. */
type RawMsg = { _msg: { hdr: number }; _rdata: Uint8Array };

const NO_HEADERS = new Uint8Array(0);

/**
 * The undecoded message, header block first (NO_HEADERS when it has none), or null
 * when the client's message object does not have the expected shape (then its public
 * `headers` are used). Building nats.js's MsgHdrs for every delivery (a decoded string, a
 * split, a Map of arrays, case-folded key searches) was most of what the mailbox's headers
 * cost the gateway per message.
 */
function rawHeaders(msg: Msg): Uint8Array | null {
  const r = msg as unknown as Partial<RawMsg>;
  const hdr = r._msg?.hdr;
  if (typeof hdr !== "number" || !(r._rdata instanceof Uint8Array)) return null;
  return hdr > 0 ? r._rdata : NO_HEADERS;
}

const NATS_SEQUENCE = ascii("nats-sequence");
const NATS_LAST_SEQUENCE = ascii("nats-last-sequence");
const WS_FRAME = ascii(HEADER.frame.toLowerCase());
const TEXT = ascii("text");
const BINARY = ascii("binary");

function ascii(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/**
 * Reads Nats-Sequence, Nats-Last-Sequence and Ws-Frame from the first `end` bytes of a NATS
 * header block ("NATS/1.0\r\nName: value\r\n...\r\n"), allocating nothing. Names match
 * ignoring ASCII case, values are trimmed. For the sequences the last occurrence counts:
 * JetStream appends its own after whatever headers the publisher sent, so a publisher's
 * `Nats-Sequence` cannot stand in for the stream's. A sequence that is not a plain decimal
 * number reads as 0 (not a mailbox message).
 */
export function scanHeaders(b: Uint8Array, end: number, out: HeaderScan): void {
  out.seq = 0;
  out.prev = 0;
  out.hint = undefined;
  let hintSeen = false;
  let i = b.indexOf(10); // past the status line
  if (i < 0 || i >= end) return;
  i++;
  while (i < end) {
    const start = i;
    let colon = -1;
    while (i < end && b[i] !== 10) {
      if (colon < 0 && b[i] === 58) colon = i;
      i++;
    }
    const lineEnd = i > start && b[i - 1] === 13 ? i - 1 : i;
    i++;
    if (colon <= start) continue;
    let v = colon + 1;
    let ve = lineEnd;
    while (v < ve && (b[v] === 32 || b[v] === 9)) v++;
    while (ve > v && (b[ve - 1] === 32 || b[ve - 1] === 9)) ve--;
    if (nameIs(b, start, colon, NATS_SEQUENCE)) out.seq = decimal(b, v, ve);
    else if (nameIs(b, start, colon, NATS_LAST_SEQUENCE)) out.prev = decimal(b, v, ve);
    else if (!hintSeen && nameIs(b, start, colon, WS_FRAME)) {
      hintSeen = true;
      out.hint = nameIs(b, v, ve, TEXT) ? "text" : nameIs(b, v, ve, BINARY) ? "binary" : undefined;
    }
  }
}

/** Whether b[from, to) equals the lower-case ASCII `name`, ignoring ASCII case. */
function nameIs(b: Uint8Array, from: number, to: number, name: Uint8Array): boolean {
  if (to - from !== name.length) return false;
  for (let k = 0; k < name.length; k++) {
    let c = b[from + k];
    if (c >= 65 && c <= 90) c |= 32;
    if (c !== name[k]) return false;
  }
  return true;
}

/** b[from, to) as a non-negative decimal integer; 0 when empty, not all digits, or beyond 2^53. */
function decimal(b: Uint8Array, from: number, to: number): number {
  if (from === to || to - from > 16) return 0;
  let n = 0;
  for (let k = from; k < to; k++) {
    const d = b[k] - 48;
    if (d < 0 || d > 9) return 0;
    n = n * 10 + d;
  }
  return Number.isSafeInteger(n) ? n : 0;
}
