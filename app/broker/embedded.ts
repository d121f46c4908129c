// Single-node bus for running without NATS: exact-subject interest, synchronous delivery.
import type { Broker, BrokerHooks } from "./broker.ts";
import { HEADER, parseFrameHint } from "./broker.ts";

export type Tap = (subject: string, data: Uint8Array, headers: Record<string, string>) => void;

const encoder = new TextEncoder();

/** Reply subjects of in-process requests: `<INBOX><token>`. */
const INBOX = "_INBOX.embedded.";

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
  }

  publishFrame(subject: string, data: Uint8Array | string, node: string, conn: number, binary: boolean) {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    this.publish(subject, bytes, { [HEADER.conn]: String(conn), [HEADER.node]: node, [HEADER.frame]: binary ? "binary" : "text" });
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
