// Single-node bus for running without NATS: exact-subject interest, synchronous delivery.
import type { Broker, BrokerHooks, HeaderLookup, Listener } from "./broker.ts";
import { HEADER, parseFrameHint } from "./broker.ts";

export type Tap = (subject: string, data: Uint8Array, headers: Record<string, string>) => void;

const encoder = new TextEncoder();

/** Reply subjects of in-process requests: `<INBOX><token>`. */
const INBOX = "_INBOX.embedded.";

type Listening = { pattern: string; head: string; handler: Listener; queue: string | undefined };
const NONE: Listening[] = [];

/** NATS subject matching: `*` is one token, a final `>` one or more. */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length || (p[i] !== "*" && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}

/** Handle of a request subject's interest, told apart from a plain watch's. */
class RequestInterest {
  constructor(readonly subject: string) {}
}

export class EmbeddedBroker implements Broker {
  readonly kind = "embedded";
  private interest = new Map<string, number>();
  private requestInterest = new Map<string, number>();
  private taps = new Set<{ prefix: string; fn: Tap }>();
  private closed = false;
  /** cluster listeners (app/cluster): exact subjects by name, wildcard ones by their literal head */
  private exact = new Map<string, Listening[]>();
  private wild: Listening[] = [];

  constructor(private hooks: BrokerHooks) {}

  state() {
    return this.closed ? "closed" : "connected";
  }

  async start() {
    this.hooks.onState("connected");
  }

  publish(subject: string, data: Uint8Array, headers?: Record<string, string>) {
    if (this.closed) throw new Error("embedded broker is closed");
    if (subject.startsWith(INBOX)) {
      this.hooks.answer?.(subject.slice(INBOX.length), data, parseFrameHint(headers?.[HEADER.frame]), headers?.[HEADER.error] || null);
      return;
    }
    if (this.interest.has(subject)) this.hooks.deliver(subject, data, parseFrameHint(headers?.[HEADER.frame]), 0, 0);
    for (const tap of this.taps) if (subject.startsWith(tap.prefix)) tap.fn(subject, data, headers ?? {});
    if (this.exact.size > 0 || this.wild.length > 0) this.toListeners(subject, data, "", headers);
  }

  publishText(subject: string, text: string) {
    this.publish(subject, encoder.encode(text));
  }

  publishReply(subject: string, data: Uint8Array, reply: string) {
    if (this.closed) throw new Error("embedded broker is closed");
    this.toListeners(subject, data, reply, undefined);
  }

  newInbox(): string {
    return "_INBOX.cluster." + crypto.randomUUID().replaceAll("-", "");
  }

  listen(subject: string, handler: Listener, queue?: string): () => void {
    const wildAt = subject.split(".").findIndex((t) => t === "*" || t === ">");
    const entry: Listening = { pattern: subject, head: wildAt < 0 ? subject : subject.split(".").slice(0, wildAt).join(".") + ".", handler, queue };
    if (wildAt < 0) {
      const list = this.exact.get(subject) ?? [];
      list.push(entry);
      this.exact.set(subject, list);
    } else {
      this.wild.push(entry);
    }
    return () => {
      const list = wildAt < 0 ? this.exact.get(subject) : this.wild;
      const i = list?.indexOf(entry) ?? -1;
      if (i >= 0) list!.splice(i, 1);
      if (wildAt < 0 && list?.length === 0) this.exact.delete(subject);
    };
  }

  /** Asynchronous like the network; of the listeners sharing a queue group one (the first) gets the message. */
  private toListeners(subject: string, data: Uint8Array, reply: string, headers: Record<string, string> | undefined) {
    let hit: Listening[] | null = null;
    for (const l of this.exact.get(subject) ?? NONE) (hit ??= []).push(l);
    for (const l of this.wild) if (subject.startsWith(l.head) && subjectMatches(l.pattern, subject)) (hit ??= []).push(l);
    if (!hit) return;
    const groups = new Set<string>();
    const lookup: HeaderLookup = (name) => {
      if (!headers) return null;
      const want = name.toLowerCase();
      for (const k in headers) if (k.toLowerCase() === want) return headers[k];
      return null;
    };
    for (const l of hit) {
      if (l.queue !== undefined) {
        if (groups.has(l.queue)) continue;
        groups.add(l.queue);
      }
      queueMicrotask(() => l.handler(subject, data, reply, lookup));
    }
  }

  /** In process there is nothing to store: delivered is as far as a message goes. */
  async publishStored(subject: string, data: Uint8Array, headers?: Record<string, string>) {
    this.publish(subject, data, headers);
  }

  publishFrame(subject: string, data: Uint8Array | string, node: string, conn: number, binary: boolean) {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    this.publish(subject, bytes, { [HEADER.conn]: `${node}.${conn}`, [HEADER.node]: node, [HEADER.frame]: binary ? "binary" : "text" });
  }

  /** Lets in-process readers (the HTTP event stream) see messages on a subject prefix. */
  tap(prefix: string, fn: Tap): () => void {
    const entry = { prefix, fn };
    this.taps.add(entry);
    return () => this.taps.delete(entry);
  }

  hasTap(prefix: string): boolean {
    for (const tap of this.taps) if (prefix.startsWith(tap.prefix)) return true;
    return false;
  }

  watch(subject: string) {
    this.interest.set(subject, (this.interest.get(subject) ?? 0) + 1);
    return subject;
  }

  watchRequests(subject: string) {
    this.requestInterest.set(subject, (this.requestInterest.get(subject) ?? 0) + 1);
    return new RequestInterest(subject);
  }

  /** Like NATS: a request nobody listens to is answered "no responders" at once, not by a timeout. */
  request(subject: string, data: Uint8Array, headers: Record<string, string>, token: string) {
    if (this.closed) throw new Error("embedded broker is closed");
    const hooks = this.hooks;
    // Asynchronous like the network, so no caller sees its answer before request() returns.
    if (this.requestInterest.has(subject)) {
      const timeout = Number(headers[HEADER.timeout]);
      queueMicrotask(() => hooks.request?.(subject, data, INBOX + token, parseFrameHint(headers[HEADER.frame]), timeout > 0 ? timeout : 0));
    } else {
      queueMicrotask(() => hooks.answer?.(token, null, undefined, null));
    }
  }

  unwatch(handle: unknown) {
    if (handle instanceof RequestInterest) {
      const n = (this.requestInterest.get(handle.subject) ?? 0) - 1;
      if (n > 0) this.requestInterest.set(handle.subject, n);
      else this.requestInterest.delete(handle.subject);
      return;
    }
    const subject = handle as string;
    const n = (this.interest.get(subject) ?? 0) - 1;
    if (n > 0) this.interest.set(subject, n);
    else this.interest.delete(subject);
  }

  async close() {
    this.closed = true;
    this.hooks.onState("closed");
  }
}
