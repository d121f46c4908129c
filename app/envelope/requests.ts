// Service → client requests: a NATS request on <prefix>.req.<svc>.<user> becomes a `request`
// frame to one of the user's envelope sockets here; the client's `reply` (or `error`) goes
// back to the requester's inbox. A user costs something here only while it has an envelope
// connection on this node (one queue subscription and one small record); a socket gets a
// record only while requests wait on it.
import { type Broker, type FrameHint, HEADER } from "../broker/broker.ts";
import { ERROR } from "../../protocol/envelope.ts";
import type { Conn } from "../core/conn.ts";
import { sendCounted, type Transport } from "../core/transport.ts";
import type { Metrics } from "../ops/metrics.ts";
import { log } from "../ops/log.ts";
import { removeUnordered } from "../util/unordered.ts";
import { TimerWheel, type WheelItem } from "../util/wheel.ts";
import { isUtf8 } from "../util/utf8.ts";
import { frameBytes, idFrame } from "./frames.ts";

/** Ceiling on a requester's Ws-Timeout-Ms: bounds how long a forgotten request holds memory. */
export const MAX_REQUEST_TIMEOUT_MS = 10 * 60_000;

/** Resolution of request timeouts. */
const TICK_MS = 25;

/** A user with envelope connections on this node: its request subscription and those sockets. */
export type Watch = { svc: string; user: string; handle: unknown; conns: Conn[]; next: number };

/** A service's request forwarded to a client, waiting for the client's reply. */
type Pending = WheelItem & { id: string; conn: Conn; reply: string; done: boolean };

export type RequestsDeps = {
  broker: Broker;
  transport: Transport;
  metrics: Metrics;
  nodeId: string;
  rpc: { requestTimeoutMs: number; maxRequestsPerConn: number };
  /** `<prefix>.req.` */
  reqPrefix: string;
};

const encoder = new TextEncoder();

export class ServiceRequests {
  /** by request subject */
  private watches = new Map<string, Watch>();
  /** a socket's requests waiting for its reply; an entry only while it has some */
  private links = new Map<Conn, Pending[]>();
  private pending = new Map<string, Pending>();
  private counter = 0;
  private readonly wheel = new TimerWheel<Pending>(TICK_MS, (p) => this.expire(p), "expiring a request");

  constructor(private readonly d: RequestsDeps) {}

  /** An envelope connection of `<svc>.<user>` opened: the user's request subject is watched while it has one. */
  opened(conn: Conn, svcUser: string) {
    const subject = this.d.reqPrefix + svcUser;
    let w = this.watches.get(subject);
    if (!w) {
      const dot = svcUser.indexOf(".");
      w = { svc: svcUser.slice(0, dot), user: svcUser.slice(dot + 1), handle: null, conns: [], next: 0 };
      this.watches.set(subject, w);
      w.handle = this.d.broker.watchRequests(subject);
    }
    w.conns.push(conn);
  }

  /** The watch of an open envelope connection's user (it names the svc and user for calls). */
  watchOf(svcUser: string): Watch | undefined {
    return this.watches.get(this.d.reqPrefix + svcUser);
  }

  /** An envelope connection closed: the requesters waiting on it learn now rather than at their timeout. */
  closed(conn: Conn, svcUser: string) {
    const subject = this.d.reqPrefix + svcUser;
    const w = this.watches.get(subject);
    if (w) {
      removeUnordered(w.conns, conn);
      if (w.conns.length === 0) {
        this.watches.delete(subject);
        this.d.broker.unwatch(w.handle);
      }
    }
    const reqs = this.links.get(conn);
    if (!reqs) return;
    this.links.delete(conn);
    for (const p of reqs) {
      this.untrack(p);
      this.pending.delete(p.id);
      this.d.metrics.requests.closed++;
      this.fail(p.reply, ERROR.CONNECTION_CLOSED, "the connection the request went to closed before answering");
    }
  }

  /** A brand-new broker connection: watch every request subject again. */
  rewatch() {
    for (const [subject, w] of this.watches) w.handle = this.d.broker.watchRequests(subject);
  }

  stop() {
    this.wheel.stop();
  }

  /** Broker hook: a request for a user this node watches. */
  onRequest(subject: string, data: Uint8Array, reply: string, hint: FrameHint, timeoutMs: number) {
    if (!reply) return; // published, not requested: nobody waits for an answer
    const m = this.d.metrics;
    const w = this.watches.get(subject);
    if (!w) {
      m.requests.closed++; // the user's last envelope socket closed while the request was on its way
      return this.fail(reply, ERROR.CONNECTION_CLOSED, "the user has no envelope connection on this node any more");
    }
    const conn = this.pick(w);
    if (!conn) {
      m.requests.overloaded++;
      return this.fail(reply, ERROR.OVERLOADED, `every connection of the user already has ${this.d.rpc.maxRequestsPerConn} requests waiting`);
    }
    const ms = Math.min(timeoutMs || this.d.rpc.requestTimeoutMs, MAX_REQUEST_TIMEOUT_MS);
    const p: Pending = { id: (++this.counter).toString(36), conn, reply, tick: 0, slot: -1, done: false };
    this.pending.set(p.id, p);
    const reqs = this.links.get(conn);
    if (reqs) reqs.push(p);
    else this.links.set(conn, [p]);
    this.wheel.add(p, this.wheel.tickAt(Date.now() + ms));
    m.rpcPending++;
    const frame = idFrame("request", p.id, data, hint !== "binary" && isUtf8(data));
    sendCounted(this.d.transport, m, conn.ws, frame, frame.length);
  }

  /** One connection per request, taking turns, skipping closing sockets and full ones. */
  private pick(w: Watch): Conn | null {
    const conns = w.conns;
    const max = this.d.rpc.maxRequestsPerConn;
    for (let i = 0; i < conns.length; i++) {
      const k = (w.next + i) % conns.length;
      const c = conns[k];
      if (c.refuse) continue;
      const reqs = this.links.get(c);
      if (reqs && reqs.length >= max) continue;
      w.next = k + 1;
      return c;
    }
    return null;
  }

  /**
   * The client answered (`f`) or said its handler failed (`code`, `message`). Returns the
   * refusal text when the answer's base64 is bad, so the caller can tell the client.
   */
  replied(conn: Conn, id: string, f: { data: string; encoding?: "base64" } | null, code: string, message: string): string | null {
    const p = this.pending.get(id);
    // Expired (its requester gave up) or never sent to this socket: nobody to tell.
    if (!p || p.conn !== conn) return null;
    const bytes = f ? frameBytes(f) : encoder.encode(message);
    if (!bytes) return "data is not valid base64";
    // The service chose how often to ask: answering must not spend the client's message rate.
    conn.budget++;
    this.pending.delete(id);
    this.untrack(p);
    this.unlink(p);
    const headers: Record<string, string> = { [HEADER.conn]: `${this.d.nodeId}.${conn.id}`, [HEADER.node]: this.d.nodeId };
    if (f) {
      headers[HEADER.frame] = f.encoding ? "binary" : "text";
      this.d.metrics.requests.answered++;
    } else {
      headers[HEADER.error] = code;
      this.d.metrics.requests.client_error++;
    }
    try {
      this.d.broker.publish(p.reply, bytes, headers);
    } catch (err) {
      this.d.metrics.publishErrors++;
      log("warn", "could not pass a reply on; the requester will time out", { error: String(err) });
    }
    return null;
  }

  /** Tells a requester its request failed, with a Ws-Error code. */
  private fail(reply: string, code: string, message: string) {
    try {
      this.d.broker.publish(reply, encoder.encode(message), { [HEADER.error]: code, [HEADER.node]: this.d.nodeId });
    } catch {
      // Broker away: the requester's own timeout tells it.
    }
  }

  private untrack(p: Pending) {
    if (p.done) return;
    p.done = true;
    this.d.metrics.rpcPending--;
    this.wheel.remove(p);
  }

  private unlink(p: Pending) {
    const reqs = this.links.get(p.conn);
    if (!reqs) return;
    removeUnordered(reqs, p);
    if (reqs.length === 0) this.links.delete(p.conn);
  }

  /** The requester has given up: a late reply is dropped, nobody needs telling. */
  private expire(p: Pending) {
    if (p.done) return;
    this.untrack(p);
    this.pending.delete(p.id);
    this.d.metrics.requests.expired++;
    this.unlink(p);
  }
}
