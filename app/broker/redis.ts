// Redis broker (REDIS_URL), the same contract as NATS on Redis's own primitives:
//   services → user:   PUBLISH <prefix>.recv.<svc>.<user>; a node SUBSCRIBEs that channel while it
//                      serves the user (first connection to last), so a message reaches only those nodes
//   client → service:  XADD <prefix>.send.<svc> (one stream per service, read with consumer groups)
//   requests:          PUBLISH with a header block (redis-frame.ts); the receiver count PUBLISH
//                      returns is how "no responders" is known at once
//   cluster:           listen/publishReply (redis-listen.ts): channels and patterns, queue groups by claim
// Two connections: one in subscriber mode, one for commands. Interest is not re-sent by the
// client after a reconnect (autoResubscribe off): the gateway re-watches its users (rewatchAll).
import { Redis } from "ioredis";
import type { Broker, BrokerHooks, BrokerState, Listener } from "./broker.ts";
import { HEADER, NotStored, parseFrameHint, StoreUnconfirmed } from "./broker.ts";
import { decodeFramed, encodeFramed, framed, header, hintOf, type LiveScan, REPLY, scanLive } from "./redis-frame.ts";
import { RedisListeners } from "./redis-listen.ts";
import type { RedisSettings } from "./redis-options.ts";
import type { Subjects } from "../core/subjects.ts";
import { log } from "../ops/log.ts";
import { backoff } from "../util/backoff.ts";

const encoder = new TextEncoder();

/** The Node Buffer class ioredis writes binary arguments with (see bufferClass). */
type BufferClass = { from(ab: ArrayBufferLike, offset: number, length: number): Uint8Array };

export type RedisBrokerOptions = {
  settings: RedisSettings;
  nodeId: string;
  subjects: Subjects;
  /** XADD MAXLEN ~ bound of each service's stream */
  sendMaxLen: number;
  /** the durable mailbox is on: messages for users go through the wsgate_send function */
  mailbox: boolean;
};

export class RedisBroker implements Broker {
  readonly kind = "redis";
  private readonly cmd: Redis;
  private readonly sub: Redis;
  private current: BrokerState = "connecting";
  private stopping = false;
  private Buf: BufferClass | null = null;
  private readonly sendPrefix: string;
  private readonly recvPrefix: string;
  private readonly mailboxPrefix: string;
  private readonly inbox: string;
  /** interest changes gathered in one tick and sent as one SUBSCRIBE / UNSUBSCRIBE */
  private toSub = new Set<string>();
  private toUnsub = new Set<string>();
  private flushQueued = false;
  /** request channels this node watches (to tell them from user channels on arrival) */
  private requestChannels = new Map<string, number>();
  private attempts = 0;
  /** a ready() is under way: both connections' "ready" events lead to one */
  private readying = false;
  /** counts the connections' "ready" events: one during a ready() means it must run again */
  private readyEvents = 0;
  /** the cluster's listeners (app/cluster) */
  private readonly listeners: RedisListeners;

  constructor(
    private readonly o: RedisBrokerOptions,
    private readonly hooks: BrokerHooks,
  ) {
    const common = {
      lazyConnect: true,
      enableOfflineQueue: false,
      autoResubscribe: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 3_000,
      retryStrategy: (n: number) => (this.stopping ? null : backoff(n - 1)),
      connectionName: `wsgate-${o.nodeId}`,
    };
    const s = o.settings.sentinel;
    // Behind Sentinels the client asks them for the master on every (re)connect, so a failover is a reconnect.
    this.cmd = s ? new Redis({ ...common, ...s }) : new Redis(o.settings.url, common);
    this.sub = s ? new Redis({ ...common, ...s }) : new Redis(o.settings.url, common);
    this.sendPrefix = o.subjects.send("", "").slice(0, -1);
    this.recvPrefix = o.subjects.recv("", "").slice(0, -1);
    this.mailboxPrefix = o.subjects.send("", "").slice(0, -"send..".length) + "mailbox.";
    this.inbox = `${this.sendPrefix.slice(0, -"send.".length)}_inbox.${o.nodeId}.${crypto.randomUUID().slice(0, 8)}.`;
    this.listeners = new RedisListeners(this.sub, this.cmd);
    const listeners = this.listeners;
    const deliver = hooks.deliver;
    const scan: LiveScan = { seq: 0, prev: 0, hint: undefined, bodyAt: 0 };
    // The one listener of every user channel: a message to users costs its channel string and
    // a view of the payload, nothing more (requests, rare, are decoded in full).
    // ioredis hands Node Buffers: toString() is the UTF-8 text.
    this.sub.on("messageBuffer", (channelBytes: Uint8Array, msg: Uint8Array) => {
      const channel = channelBytes.toString();
      if (this.requestChannels.size > 0 && this.requestChannels.has(channel)) {
        if (framed(msg)) void this.onRequest(channel, decodeFramed(msg));
        return;
      }
      const heard = listeners.of(channel);
      if (heard) return listeners.heard(heard, channel, msg);
      if (!framed(msg) || !scanLive(msg, scan)) return deliver(channel, msg, undefined, 0, 0);
      deliver(channel, msg.subarray(scan.bodyAt), scan.hint, scan.seq, scan.seq ? scan.prev : 0);
    });
    this.sub.on("pmessageBuffer", (pattern: Uint8Array, channelBytes: Uint8Array, msg: Uint8Array) => {
      const channel = channelBytes.toString();
      if (listeners.heardByPattern(pattern.toString(), channel, msg)) return;
      const token = channel.slice(this.inbox.length);
      const d = framed(msg) ? decodeFramed(msg) : { headers: {}, data: msg };
      hooks.answer?.(token, d.data, hintOf(d), header(d, HEADER.error) || null);
    });
    for (const [name, c] of [["commands", this.cmd], ["subscriber", this.sub]] as const) {
      c.on("ready", () => {
        this.readyEvents++;
        void this.ready();
      });
      c.on("close", () => this.lost(name));
      c.on("error", (err: Error) => {
        if (this.stopping) return;
        const auth = /NOAUTH|WRONGPASS|AUTH/i.test(String(err));
        log(auth ? "error" : "warn", auth ? "redis refused the gateway's credentials; retrying" : "redis unreachable; retrying", {
          url: o.settings.redacted,
          connection: name,
          error: String(err.message ?? err),
        });
      });
    }
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
    log("info", "redis settings", { url: this.o.settings.redacted, mailbox: this.o.mailbox });
    // Failed first attempts are retried by the client's retryStrategy; errors are logged above.
    this.cmd.connect().catch(() => {});
    this.sub.connect().catch(() => {});
    return Promise.resolve();
  }

  /** Both connections up: prepare (the mailbox's function), then interest again, then ready. */
  private async ready() {
    if (this.cmd.status !== "ready" || this.sub.status !== "ready" || this.current === "connected" || this.stopping || this.readying) return;
    this.readying = true;
    const events = this.readyEvents;
    try {
      // ioredis writes only its own Buffer class as binary: taken from a reply so the core imports no node:buffer.
      const pong = (await this.cmd.callBuffer("PING")) as Uint8Array;
      this.Buf = pong.constructor as unknown as BufferClass;
      if (this.hooks.prepare) await this.hooks.prepare(this.cmd);
      await this.sub.psubscribe(this.inbox + "*");
      await this.listeners.resubscribe();
    } catch (err) {
      const retryInMs = backoff(this.attempts++);
      log("error", "redis connected but not usable yet; retrying", { retryInMs, error: String(err) });
      setTimeout(() => void this.ready(), retryInMs);
      return;
    } finally {
      this.readying = false;
    }
    // A connection that dropped (and maybe came back) meanwhile lost what was just set up.
    if (this.readyEvents !== events) return void this.ready();
    if (this.cmd.status !== "ready" || this.sub.status !== "ready") return;
    this.attempts = 0;
    log("info", "redis connected", { url: this.o.settings.redacted });
    this.toSub.clear();
    this.toUnsub.clear();
    this.requestChannels.clear();
    this.hooks.rewatchAll();
    this.setState("connected");
  }

  private lost(name: string) {
    if (this.stopping || this.current !== "connected") return;
    log("warn", "redis disconnected; reconnecting", { connection: name });
    this.setState("reconnecting");
  }

  private buf(data: Uint8Array): Uint8Array {
    return this.Buf ? this.Buf.from(data.buffer, data.byteOffset, data.byteLength) : data;
  }

  publish(subject: string, data: Uint8Array, headers?: Record<string, string>) {
    if (this.current !== "connected") throw new Error("redis is not connected");
    if (subject.startsWith(this.sendPrefix)) return this.toService(subject, data, headers);
    if (this.o.mailbox && subject.startsWith(this.recvPrefix)) {
      const key = this.mailboxPrefix + subject.slice(this.recvPrefix.length);
      const hint = headers?.[HEADER.frame];
      this.cmd.fcall("wsgate_send", 1, key, this.buf(data) as never, parseFrameHint(hint) ?? "").catch((err) => log("warn", "mailbox append failed", { error: String(err) }));
      return;
    }
    const payload = headers && needsFrame(subject, this.recvPrefix, headers) ? encodeFramed(data, headers) : data;
    this.cmd.publish(subject, this.buf(payload) as never).catch((err) => log("warn", "redis publish failed", { error: String(err) }));
  }

  publishText(subject: string, text: string) {
    this.publish(subject, encoder.encode(text));
  }

  /** A client's frame (Broker.publishFrame): the same stream entry as publish() with its three headers. */
  publishFrame(subject: string, data: Uint8Array | string, node: string, conn: number, binary: boolean) {
    this.publish(subject, typeof data === "string" ? encoder.encode(data) : data, { [HEADER.conn]: `${node}.${conn}`, [HEADER.node]: node, [HEADER.frame]: binary ? "binary" : "text" });
  }

  /**
   * The publish API with the mailbox: answered once the user's stream holds the entry (on the
   * master; Redis replicates afterwards). Idempotency keys are not kept here.
   */
  async publishStored(subject: string, data: Uint8Array, headers?: Record<string, string>): Promise<void> {
    if (this.current !== "connected") throw new NotStored("redis is not connected");
    if (!this.o.mailbox || !subject.startsWith(this.recvPrefix)) return this.publish(subject, data, headers);
    const key = this.mailboxPrefix + subject.slice(this.recvPrefix.length);
    const append = this.cmd.fcall("wsgate_send", 1, key, this.buf(data) as never, parseFrameHint(headers?.[HEADER.frame]) ?? "");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new StoreUnconfirmed("no answer from redis within 5 s")), 5_000)));
    try {
      await Promise.race([append, late]);
    } catch (err) {
      throw err instanceof StoreUnconfirmed ? err : new StoreUnconfirmed(`mailbox append failed: ${err}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** One entry per client frame on its service's stream; consumer groups spread them over the service's instances. */
  private toService(subject: string, data: Uint8Array, h: Record<string, string> | undefined) {
    const dot = subject.indexOf(".", this.sendPrefix.length);
    const stream = subject.slice(0, dot);
    this.cmd
      .xadd(stream, "MAXLEN", "~", this.o.sendMaxLen, "*", "user", subject.slice(dot + 1), "conn", h?.[HEADER.conn] ?? "", "node", h?.[HEADER.node] ?? "", "frame", h?.[HEADER.frame] ?? "text", "data", this.buf(data) as never)
      .catch((err) => log("warn", "redis publish failed", { error: String(err) }));
  }

  watch(subject: string): string {
    if (!this.toUnsub.delete(subject)) this.toSub.add(subject);
    this.flushSoon();
    return subject;
  }

  watchRequests(subject: string): { request: string } {
    const n = this.requestChannels.get(subject) ?? 0;
    this.requestChannels.set(subject, n + 1);
    if (n === 0) this.watch(subject);
    return { request: subject };
  }

  unwatch(handle: unknown) {
    if (handle === null || handle === undefined) return;
    let subject: string;
    if (typeof handle === "object") {
      subject = (handle as { request: string }).request;
      const n = (this.requestChannels.get(subject) ?? 0) - 1;
      if (n > 0) return void this.requestChannels.set(subject, n);
      this.requestChannels.delete(subject);
    } else subject = handle as string;
    if (!this.toSub.delete(subject)) this.toUnsub.add(subject);
    this.flushSoon();
  }

  /** One SUBSCRIBE and one UNSUBSCRIBE per tick for every change in it (a connect storm is a few commands). */
  private flushSoon() {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      // Before the connection is ready there is nothing to send: ready() re-watches everyone.
      if (this.sub.status !== "ready") return;
      if (this.toSub.size > 0) {
        const list = [...this.toSub];
        this.toSub.clear();
        this.sub.subscribe(...list).catch((err) => log("warn", "redis subscribe failed", { error: String(err) }));
      }
      if (this.toUnsub.size > 0) {
        const list = [...this.toUnsub];
        this.toUnsub.clear();
        this.sub.unsubscribe(...list).catch(() => {});
      }
    });
  }

  request(subject: string, data: Uint8Array, headers: Record<string, string>, token: string) {
    if (this.current !== "connected") throw new Error("redis is not connected");
    const msg = encodeFramed(data, { ...headers, [REPLY]: this.inbox + token });
    const answer = this.hooks.answer;
    // PUBLISH answers with how many subscribers got it: none is NATS's "no responders".
    this.cmd.publish(subject, this.buf(msg) as never).then(
      (n) => n === 0 && answer?.(token, null, undefined, null),
      () => answer?.(token, null, undefined, null),
    );
  }

  /** Every node serving the user hears a request; the first to claim its reply channel answers it. */
  private async onRequest(channel: string, d: ReturnType<typeof decodeFramed>) {
    const reply = header(d, REPLY) ?? "";
    const timeout = Number(header(d, HEADER.timeout)) || 0;
    if (reply) {
      const won = await this.cmd.set(`${reply}.claim`, "1", "PX", Math.max(timeout, 1_000) + 5_000, "NX").catch(() => null);
      if (won !== "OK") return;
    }
    this.hooks.request?.(channel, d.data, reply, hintOf(d), timeout > 0 ? timeout : 0);
  }

  async close() {
    this.stopping = true;
    await Promise.allSettled([this.cmd.quit(), this.sub.quit()]);
    this.setState("closed");
  }

  // Cluster plumbing (app/cluster): redis-listen.ts. A listener outlives a connection.
  listen(subject: string, handler: Listener, queue?: string): () => void {
    return this.listeners.listen(subject, handler, queue);
  }

  /** The reply channel goes in the header block (`Ws-Reply`), as for requests. */
  publishReply(subject: string, data: Uint8Array, reply: string): void {
    if (this.current !== "connected") throw new Error("redis is not connected");
    this.cmd.publish(subject, this.buf(encodeFramed(data, { [REPLY]: reply })) as never).catch((err) => log("warn", "redis publish failed", { error: String(err) }));
  }

  /** Apart from the requests' inbox (`<inbox>*` is this node's pattern for their answers). */
  newInbox(): string {
    return this.inbox.slice(0, this.inbox.lastIndexOf(".", this.inbox.length - 2) + 1) + crypto.randomUUID().replaceAll("-", "");
  }
}

/** A plain text message to a user goes as is; anything with more to say (frame type, reply, error) gets a header block. */
function needsFrame(subject: string, recvPrefix: string, h: Record<string, string>): boolean {
  if (!subject.startsWith(recvPrefix)) return true;
  for (const k in h) if (k !== HEADER.frame || h[k] === "binary") return true;
  return false;
}
