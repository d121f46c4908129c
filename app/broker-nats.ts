// NATS broker: one core subscription per served user subject, shared delivery callback.
import { connect, createInbox, headers as natsHeaders, Match } from "@nats-io/transport-node";
import type { Msg, MsgCallback, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Broker, BrokerHooks, BrokerState } from "./broker.ts";
import { HEADER, parseFrameHint } from "./broker.ts";
import { log } from "./log.ts";

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 5_000;
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
  private readonly onAnswer: MsgCallback<Msg>;
  private readonly inbox = createInbox();
  private inboxOn: NatsConnection | null = null;

  constructor(
    private servers: string,
    private name: string,
    private hooks: BrokerHooks,
  ) {
    const deliver = hooks.deliver;
    // The one callback every user subscription shares: nothing is allocated per subscription or message.
    this.onMsg = (err, msg) => {
      if (err) {
        log("warn", "nats subscription error", { error: String(err) });
        return;
      }
      const h = msg.headers;
      if (!h) return deliver(msg.subject, msg.data, undefined, 0, 0);
      const seq = h.get("Nats-Sequence");
      deliver(
        msg.subject,
        msg.data,
        parseFrameHint(h.get(HEADER.frame, Match.IgnoreCase)),
        seq ? Number(seq) : 0,
        seq ? Number(h.get("Nats-Last-Sequence")) : 0,
      );
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
        this.hooks.rewatchAll();
        this.setState("connected");
        void this.watchStatus(nc);
        const err = await nc.closed();
        this.nc = null;
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
        this.setState("reconnecting");
      } else if (s.type === "reconnect") {
        // nats.js re-sends every live subscription on reconnect. The server may have
        // lost its JetStream state, so the mailbox streams are ensured again.
        log("info", "nats reconnected", { server: s.server });
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
