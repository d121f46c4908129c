// NATS broker: one core subscription per served user subject, shared delivery callback.
import { connect, createInbox, headers as natsHeaders, Match } from "@nats-io/transport-node";
import type { Msg, MsgCallback, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Broker, BrokerHooks, BrokerState, Listener } from "./broker.ts";
import { HEADER, parseFrameHint } from "./broker.ts";
import type { HeaderScan } from "./nats-headers.ts";
import { flushAfterEvents, type LeanProtocol, LeanSub, type LeanSubKind, leanForget, leanProtocol, leanRegister, type RawSink, rawSink, readHeaders, subjectOf } from "./nats-internals.ts";
import { OutboundBatch } from "./nats-publish.ts";
import type { NatsLink } from "./nats-link.ts";
import { connectFailure, connectOptions } from "./nats-connect.ts";
import { NatsListeners } from "./nats-listeners.ts";
import { downSignal, publishStored } from "./nats-stored.ts";
import { log } from "../ops/log.ts";
import { backoff } from "../util/backoff.ts";
import { Batched } from "../util/batched.ts";

const encoder = new TextEncoder();

/** The queue group of service → client request subscriptions: one node answers each request. */
const REQUEST_QUEUE = "wsgate";

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
  /** each kind made in batches (util/batched.ts) */
  private readonly spareSubs: Batched<LeanSub>;
  private readonly spareRequestSubs: Batched<LeanSub>;
  private readonly onAnswer: MsgCallback<Msg>;
  private readonly inbox = createInbox();
  private inboxOn: NatsConnection | null = null;
  /** the current connection's protocol handler, when LeanSub can use it */
  private lean: LeanProtocol | null = null;
  /** the current connection's outbound queue, when client frames can be written straight into it */
  private raw: RawSink | null = null;
  /** the client's own commands queue behind the batch's (nats-internals.ts flushAfterEvents), so SUBs may be batched too */
  private batched = false;
  /** client frames, batched per turn of the event loop (nats-publish.ts) */
  private readonly frames: OutboundBatch;
  private readonly listeners = new NatsListeners();
  /** settles when the current connection drops: a stored publish stops waiting for an answer that cannot come */
  private linkDown = downSignal();
  private readonly connection = () => ({ nc: this.nc, down: this.linkDown });

  /** whether each fast path of nats-internals.ts is the one running (tests/nats-internals.test.ts) */
  private readonly fastPaths = { leanSubscriptions: false, headerFallbacks: 0, rawPublish: false };

  constructor(
    private readonly link: NatsLink,
    private readonly name: string,
    private readonly hooks: BrokerHooks,
    /** when batched client frames go out: after the runtime's socket events (Transport.afterEvents), else at the next microtask */
    private readonly later: (fn: () => void) => void = queueMicrotask,
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
      const subject = subjectOf(this.lean, msg);
      if (readHeaders(msg, scan)) return deliver(subject, msg.data, scan.hint, scan.seq, scan.seq ? scan.prev : 0);
      if (this.fastPaths.headerFallbacks++ === 0) log("warn", "nats.js message internals changed: reading headers the slow way (see app/broker/nats-internals.ts)");
      const h = msg.headers;
      if (!h) return deliver(subject, msg.data, undefined, 0, 0);
      const seq = Number(h.last("Nats-Sequence")) || 0;
      deliver(subject, msg.data, parseFrameHint(h.get(HEADER.frame, Match.IgnoreCase)), seq, seq ? Number(h.last("Nats-Last-Sequence")) || 0 : 0);
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
    const [UserSub, RequestSub] = [this.UserSub, this.RequestSub];
    this.spareSubs = new Batched(() => new UserSub(""));
    this.spareRequestSubs = new Batched(() => new RequestSub(""));
    this.frames = new OutboundBatch(
      (commands, msgs, write) => {
        // A connection that closed since the frames were written loses them, as nats.js's own queue would.
        const raw = this.raw;
        if (raw && !raw.closing()) raw.send(commands, msgs, write);
      },
      this.later,
      () => this.raw?.maxPayload() ?? 1024 * 1024,
    );
  }

  state() {
    return this.current;
  }

  private setState(s: BrokerState) {
    if (this.current === s) return;
    this.current = s;
    this.hooks.onState(s);
  }

  /** Which nats.js fast paths run on the installed client: both on, 0 fallbacks, unless nats.js changed shape. */
  internals(): { leanSubscriptions: boolean; headerFallbacks: number; rawPublish: boolean } {
    return { ...this.fastPaths };
  }

  start(): Promise<void> {
    log("info", "nats settings", this.link.describe);
    void this.connectLoop();
    return Promise.resolve();
  }

  private async connectLoop() {
    const options = connectOptions(this.link, this.name);
    let attempt = 0;
    while (!this.stopping) {
      attempt++;
      try {
        const nc = await connect(options);
        if (this.stopping) {
          await nc.close();
          return;
        }
        this.batched = flushAfterEvents(nc, this.later, () => this.frames.move());
        if (!this.batched) log("warn", "nats.js protocol internals changed: one socket write per command (see app/broker/nats-internals.ts)");
        log("info", "nats connected", { server: nc.getServer(), attempt });
        await this.prepare(nc);
        if (this.stopping) return;
        this.nc = nc;
        this.linkDown = downSignal();
        this.lean = leanProtocol(nc);
        this.fastPaths.leanSubscriptions = this.lean !== null;
        if (!this.lean) log("warn", "nats.js protocol internals changed: stock subscriptions (~1.1 KB each) instead of lean ones (see app/broker/nats-internals.ts)");
        this.raw = rawSink(nc);
        this.fastPaths.rawPublish = this.raw !== null;
        if (!this.raw) log("warn", "nats.js protocol internals changed: client frames published through nc.publish (see app/broker/nats-internals.ts)");
        this.hooks.rewatchAll();
        this.listeners.resubscribe(nc);
        this.setState("connected");
        void this.watchStatus(nc);
        const err = await nc.closed();
        this.linkDown.fire();
        this.nc = null;
        this.lean = null;
        this.raw = null;
        if (this.stopping) return;
        log("error", "nats connection closed; connecting again", { error: err ? String(err) : undefined });
        this.setState("connecting");
        attempt = 0;
      } catch (err) {
        const retryInMs = backoff(attempt - 1);
        const why = connectFailure(err, this.link);
        log(why.level, why.message, { servers: this.link.redacted, ...why.fields, attempt, retryInMs, error: String(err) });
        await new Promise((r) => setTimeout(r, retryInMs));
      }
    }
  }

  /** Retries the connection's preparation (mailbox streams) until it works or the connection goes. */
  private async prepare(nc: NatsConnection) {
    if (!this.hooks.prepare) return;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.hooks.prepare(nc);
        return;
      } catch (err) {
        if (this.stopping || nc.isClosed()) throw err;
        const retryInMs = backoff(attempt);
        log("error", "broker connected but not usable yet; retrying", { retryInMs, error: String(err) });
        await new Promise((r) => setTimeout(r, retryInMs));
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
    if (!hdrs && this.pubBatched(subject, data)) return;
    this.frames.flush(); // client frames written before this go out before it
    if (hdrs) {
      const h = natsHeaders();
      for (const k in hdrs) h.set(k, hdrs[k]);
      nc.publish(subject, data, { headers: h });
    } else {
      nc.publish(subject, data);
    }
  }

  publishText(subject: string, text: string) {
    if (!this.pubBatched(subject, text)) this.publish(subject, encoder.encode(text));
  }

  /** A message without headers into the outbound batch; false when this connection has no batch to write it into. */
  private pubBatched(subject: string, data: Uint8Array | string): boolean {
    const raw = this.raw;
    if (!raw || !this.batched) return false;
    if (raw.closing()) throw new Error("nats connection is closing");
    this.frames.pub(subject, data);
    return true;
  }

  publishFrame(subject: string, data: Uint8Array | string, node: string, conn: number, binary: boolean) {
    const nc = this.nc;
    if (!nc) throw new Error("nats is not connected");
    const raw = this.raw;
    if (raw) {
      if (raw.closing()) throw new Error("nats connection is closing");
      this.frames.frame(subject, data, node, conn, binary);
      return;
    }
    const h = natsHeaders();
    h.set(HEADER.conn, `${node}.${conn}`);
    h.set(HEADER.node, node);
    h.set(HEADER.frame, binary ? "binary" : "text");
    nc.publish(subject, data, { headers: h });
  }

  publishStored(subject: string, data: Uint8Array, hdrs?: Record<string, string>, msgId?: string): Promise<void> {
    return publishStored(this.connection, subject, data, hdrs, msgId);
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
    const proto = this.lean;
    if (!proto) return nc.subscribe(subject, { queue: Kind.prototype.queue, callback: Kind.prototype.callback });
    const sub = (Kind === this.UserSub ? this.spareSubs : this.spareRequestSubs).take();
    sub.subject = subject;
    leanRegister(proto, sub);
    if (this.raw && this.batched) this.frames.sub(subject, sub.sid, sub.queue);
    else proto._sub(sub);
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
    this.frames.flush();
    const h = natsHeaders();
    for (const k in hdrs) h.set(k, hdrs[k]);
    nc.publish(subject, data, { reply: this.inbox + "." + token, headers: h });
  }

  unwatch(handle: unknown) {
    if (handle instanceof LeanSub) {
      if (!leanForget(this.lean, handle) || this.nc?.isClosed() !== false) return;
      if (this.raw && this.batched) this.frames.unsub(handle.sid);
      else this.lean!.unsub(handle);
      return;
    }
    const sub = handle as Subscription | null;
    if (sub && !sub.isClosed()) sub.unsubscribe();
  }

  renewed(handle: unknown, subject: string) {
    if (handle instanceof LeanSub) handle.subject = subject;
  }

  async close() {
    this.stopping = true;
    const nc = this.nc;
    this.frames.flush();
    if (nc && !nc.isClosed()) {
      try {
        await nc.drain();
      } catch {
        await nc.close();
      }
    }
    this.setState("closed");
  }

  /** Cluster plumbing (app/cluster): listeners outlive a connection (nats-listeners.ts). */
  listen(subject: string, handler: Listener, queue?: string): () => void {
    return this.listeners.add(subject, handler, queue, this.nc);
  }

  publishReply(subject: string, data: Uint8Array, reply: string) {
    const nc = this.nc;
    if (!nc) throw new Error("nats is not connected");
    nc.publish(subject, data, { reply });
  }

  newInbox(): string {
    return createInbox();
  }
}
