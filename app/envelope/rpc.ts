// Request/reply both ways through the wsgate.v1 envelope, and the envelope's other client frames.
//   service → client: request on <prefix>.req.<svc>.<user> → `request` frame → client `reply` → requester's inbox
//   client → service: `request` frame → request on <prefix>.call.<svc>.<method> → `reply` or `error` frame
// Raw-mode users never reach this module. A user costs something here only while it has an
// envelope connection on this node (one queue subscription and one small record); a
// connection gets a record only while it has requests or calls in flight. Timeouts are
// swept by one interval that runs only while something waits, never a timer per request.
import { type Broker, type FrameHint, HEADER } from "../broker/broker.ts";
import { errorFrame, frameBytes, idFrame, parseClientFrame } from "./frames.ts";
import { ERROR } from "../../protocol/envelope.ts";
import type { Conn, UserEntry } from "../core/conn.ts";
import type { ClientPublisher } from "../core/publish.ts";
import type { Subjects } from "../core/subjects.ts";
import { sendCounted, type Transport } from "../core/transport.ts";
import type { Config } from "../ops/config.ts";
import type { Metrics } from "../ops/metrics.ts";
import { log } from "../ops/log.ts";
import { removeUnordered } from "../util/unordered.ts";
import { TimerWheel, type WheelItem } from "../util/wheel.ts";
import { isUtf8 } from "../util/utf8.ts";

/** Ceiling on a requester's Ws-Timeout-Ms: bounds how long a forgotten request holds memory. */
export const MAX_REQUEST_TIMEOUT_MS = 10 * 60_000;

/** Resolution of every timeout here. */
const TICK_MS = 25;

/** A user with envelope connections on this node: its request subscription and those sockets. */
type Watch = { svc: string; user: string; handle: unknown; conns: Conn[]; next: number };

/** Shared by both waits: where it sits in the timeout wheel, and whether it is over. */
type Timed = WheelItem & { done: boolean };
/** A service's request forwarded to a client, waiting for the client's reply. */
type Pending = Timed & { kind: 0; id: string; conn: Conn; reply: string };
/** A client's call, or a request from the HTTP API, waiting for the broker's answer. */
type Call = Timed & { kind: 1; token: string; conn: Conn | null; id: string; ms: number; settle: ((a: Answer) => void) | null };

/** A connection's requests and calls in flight; exists only while it has some. */
type Link = { reqs: Pending[]; calls: number };

export type Answer = { ok: true; data: Uint8Array; hint: FrameHint } | { ok: false; code: string; message: string };

/** What request/reply needs from the rest of the gateway, given at construction. */
export type RpcDeps = {
  config: Config;
  metrics: Metrics;
  transport: Transport;
  subjects: Subjects;
  broker: Broker;
  /** the one client-publish path (a `message` frame goes out exactly as a raw frame) */
  publisher: ClientPublisher;
  /** `<svc>.<user>` of a user this node serves */
  svcUser: (entry: UserEntry) => string;
  /** a `resume` frame (the mailbox's, or the answer that there is none) */
  resume: (conn: Conn, after: number | undefined) => void;
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Rpc {
  /** by request subject */
  private watches = new Map<string, Watch>();
  private links = new Map<Conn, Link>();
  private pending = new Map<string, Pending>();
  private calls = new Map<string, Call>();
  private counter = 0;
  private readonly wheel = new TimerWheel<Pending | Call>(TICK_MS, (t) => this.expire(t), "expiring a request");
  private readonly reqPrefix: string;
  private readonly config: Config;
  private readonly metrics: Metrics;
  private readonly broker: Broker;

  constructor(private readonly deps: RpcDeps) {
    this.reqPrefix = deps.subjects.req("", "").slice(0, -1);
    this.config = deps.config;
    this.metrics = deps.metrics;
    this.broker = deps.broker;
  }

  /** An envelope connection opened: its user's request subject is watched while it has one. */
  opened(conn: Conn) {
    const svcUser = this.deps.svcUser(conn.user!);
    const subject = this.reqPrefix + svcUser;
    let w = this.watches.get(subject);
    if (!w) {
      const dot = svcUser.indexOf(".");
      w = { svc: svcUser.slice(0, dot), user: svcUser.slice(dot + 1), handle: null, conns: [], next: 0 };
      this.watches.set(subject, w);
      w.handle = this.broker.watchRequests(subject);
    }
    w.conns.push(conn);
  }

  /** An envelope connection closed (`svcUser` is its user's `<svc>.<user>`). */
  closed(conn: Conn, svcUser: string) {
    const subject = this.reqPrefix + svcUser;
    const w = this.watches.get(subject);
    if (w) {
      removeUnordered(w.conns, conn);
      if (w.conns.length === 0) {
        this.watches.delete(subject);
        this.broker.unwatch(w.handle);
      }
    }
    const link = this.links.get(conn);
    if (!link) return;
    this.links.delete(conn);
    // The requesters learn now rather than at their timeout. Calls in flight stay until
    // answered or expired; their answers find the socket gone and are dropped.
    for (const p of link.reqs) {
      this.untrack(p);
      this.pending.delete(p.id);
      this.metrics.requests.closed++;
      this.fail(p.reply, ERROR.CONNECTION_CLOSED, "the connection the request went to closed before answering");
    }
  }

  /** A brand-new broker connection: watch every request subject again. */
  rewatch() {
    for (const [subject, w] of this.watches) w.handle = this.broker.watchRequests(subject);
  }

  stop() {
    this.wheel.stop();
  }

  /** A frame from an envelope connection, after the gateway's size and rate checks. */
  frame(conn: Conn, data: Uint8Array | string, binary: boolean) {
    if (binary) return this.refuse(conn, "binary frames are not wsgate.v1 frames: send JSON text, binary data as base64");
    const f = parseClientFrame(typeof data === "string" ? data : decoder.decode(data));
    if ("bad" in f) return this.refuse(conn, f.bad, f.id);
    switch (f.type) {
      case "message":
        return this.publish(conn, f);
      case "reply":
        return this.replied(conn, f.id, f, "", "");
      case "error":
        return this.replied(conn, f.id, null, f.code, f.message);
      case "request":
        return this.call(conn, f);
      case "resume":
        return this.deps.resume(conn, f.after);
    }
  }

  private refuse(conn: Conn, why: string, id?: string) {
    this.metrics.envelopeErrors++;
    this.send(conn, errorFrame(ERROR.BAD_FRAME, why, id));
  }

  /** Same subject and headers as a raw frame: services cannot tell the two modes apart. */
  private publish(conn: Conn, f: { data: string; encoding?: "base64" }) {
    const bytes = frameBytes(f);
    if (!bytes) return this.refuse(conn, "data is not valid base64");
    this.deps.publisher.publish(conn, bytes, f.encoding !== undefined);
  }

  // ---- service → client -------------------------------------------------------------

  /** Broker hook: a request for a user this node watches. */
  onRequest(subject: string, data: Uint8Array, reply: string, hint: FrameHint, timeoutMs: number) {
    if (!reply) return; // published, not requested: nobody waits for an answer
    const m = this.metrics;
    const w = this.watches.get(subject);
    if (!w) {
      m.requests.closed++; // the user's last envelope socket closed while the request was on its way
      return this.fail(reply, ERROR.CONNECTION_CLOSED, "the user has no envelope connection on this node any more");
    }
    const conn = this.pick(w);
    if (!conn) {
      m.requests.overloaded++;
      return this.fail(reply, ERROR.OVERLOADED, `every connection of the user already has ${this.config.rpc.maxRequestsPerConn} requests waiting`);
    }
    const ms = Math.min(timeoutMs || this.config.rpc.requestTimeoutMs, MAX_REQUEST_TIMEOUT_MS);
    const p: Pending = { kind: 0, id: this.token(), conn, reply, tick: 0, slot: -1, done: false };
    this.pending.set(p.id, p);
    this.linkOf(conn).reqs.push(p);
    this.track(p, ms);
    this.send(conn, idFrame("request", p.id, data, hint !== "binary" && isUtf8(data)));
  }

  /** One connection per request, taking turns, skipping closing sockets and full ones. */
  private pick(w: Watch): Conn | null {
    const conns = w.conns;
    const max = this.config.rpc.maxRequestsPerConn;
    for (let i = 0; i < conns.length; i++) {
      const k = (w.next + i) % conns.length;
      const c = conns[k];
      if (c.refuse) continue;
      const link = this.links.get(c);
      if (link && link.reqs.length >= max) continue;
      w.next = k + 1;
      return c;
    }
    return null;
  }

  /** The client answered (`f`) or said its handler failed (`code`, `message`). */
  private replied(conn: Conn, id: string, f: { data: string; encoding?: "base64" } | null, code: string, message: string) {
    const p = this.pending.get(id);
    // Expired (its requester gave up) or never sent to this socket: nobody to tell.
    if (!p || p.conn !== conn) return;
    const bytes = f ? frameBytes(f) : encoder.encode(message);
    if (!bytes) return this.refuse(conn, "data is not valid base64", id);
    // The service chose how often to ask: answering must not spend the client's message rate.
    conn.budget++;
    this.pending.delete(id);
    this.untrack(p);
    const link = this.links.get(conn);
    if (link) {
      removeUnordered(link.reqs, p);
      this.dropIfIdle(conn, link);
    }
    const headers: Record<string, string> = { [HEADER.conn]: String(conn.id), [HEADER.node]: this.config.nodeId };
    if (f) {
      headers[HEADER.frame] = f.encoding ? "binary" : "text";
      this.metrics.requests.answered++;
    } else {
      headers[HEADER.error] = code;
      this.metrics.requests.client_error++;
    }
    try {
      this.broker.publish(p.reply, bytes, headers);
    } catch (err) {
      this.metrics.publishErrors++;
      log("warn", "could not pass a reply on; the requester will time out", { error: String(err) });
    }
  }

  /** Tells a requester its request failed, with a Ws-Error code. */
  private fail(reply: string, code: string, message: string) {
    try {
      this.broker.publish(reply, encoder.encode(message), { [HEADER.error]: code, [HEADER.node]: this.config.nodeId });
    } catch {
      // Broker away: the requester's own timeout tells it.
    }
  }

  /**
   * The HTTP API's request to a user (POST /v1/request/<svc>/<user>): the same path a
   * service's NATS request takes, so it reaches the user on whichever node holds them.
   */
  requestUser(svc: string, user: string, data: Uint8Array, hint: FrameHint, ms: number): Promise<Answer> {
    return new Promise((resolve) => {
      const call: Call = { kind: 1, token: this.token(), conn: null, id: "", ms, tick: 0, slot: -1, done: false, settle: resolve };
      this.calls.set(call.token, call);
      this.track(call, ms);
      const headers: Record<string, string> = { [HEADER.timeout]: String(ms) };
      if (hint) headers[HEADER.frame] = hint;
      try {
        this.broker.request(this.deps.subjects.req(svc, user), data, headers, call.token);
      } catch (err) {
        this.finish(call, { ok: false, code: ERROR.UNAVAILABLE, message: String(err) });
      }
    });
  }

  // ---- client → service -------------------------------------------------------------

  private call(conn: Conn, f: { id: string; method: string; data: string; encoding?: "base64"; timeout?: number }) {
    const bytes = frameBytes(f);
    if (!bytes) return this.refuse(conn, "data is not valid base64", f.id);
    const cfg = this.config.rpc;
    const link = this.linkOf(conn);
    if (link.calls >= cfg.maxCallsPerConn) {
      this.dropIfIdle(conn, link);
      this.metrics.calls.too_many++;
      return this.send(conn, errorFrame(ERROR.TOO_MANY_CALLS, `at most ${cfg.maxCallsPerConn} calls may wait at once per connection (WSGATE_MAX_CALLS_PER_CONN)`, f.id));
    }
    const w = this.watches.get(this.reqPrefix + this.deps.svcUser(conn.user!))!;
    const ms = Math.min(f.timeout ?? cfg.callTimeoutMs, cfg.callTimeoutMs);
    const call: Call = { kind: 1, token: this.token(), conn, id: f.id, ms, tick: 0, slot: -1, done: false, settle: null };
    link.calls++;
    this.calls.set(call.token, call);
    this.track(call, ms);
    try {
      this.broker.request(
        this.deps.subjects.call(w.svc, f.method),
        bytes,
        {
          [HEADER.user]: w.user,
          [HEADER.conn]: String(conn.id),
          [HEADER.node]: this.config.nodeId,
          [HEADER.frame]: f.encoding ? "binary" : "text",
          [HEADER.timeout]: String(ms),
        },
        call.token,
      );
    } catch {
      this.finish(call, { ok: false, code: ERROR.UNAVAILABLE, message: "the broker is not connected; retry shortly" });
    }
  }

  /** Broker hook: the answer to a call or an HTTP request, or word that no one listens. */
  onAnswer(token: string, data: Uint8Array | null, hint: FrameHint, error: string | null) {
    const call = this.calls.get(token);
    if (!call) return; // answered after its timeout
    if (data === null) return this.finish(call, { ok: false, code: ERROR.NO_RESPONDERS, message: call.conn ? "no service is listening for this method" : "the user has no envelope connection" });
    if (error) return this.finish(call, { ok: false, code: error, message: decoder.decode(data) });
    this.finish(call, { ok: true, data, hint });
  }

  private finish(call: Call, a: Answer) {
    if (call.done) return;
    this.calls.delete(call.token);
    this.untrack(call);
    if (call.settle) return call.settle(a);
    const m = this.metrics;
    if (a.ok) m.calls.ok++;
    else if (a.code === "no_responders" || a.code === "timeout" || a.code === "unavailable") m.calls[a.code]++;
    else m.calls.service_error++;
    const conn = call.conn!;
    const link = this.links.get(conn);
    if (link) {
      link.calls--;
      this.dropIfIdle(conn, link);
    }
    if (!conn.user || conn.refuse) return; // the socket went while the service worked
    this.send(conn, a.ok ? idFrame("reply", call.id, a.data, a.hint !== "binary" && isUtf8(a.data)) : errorFrame(a.code, a.message, call.id));
  }

  // ---- bookkeeping ------------------------------------------------------------------

  private token(): string {
    return (++this.counter).toString(36);
  }

  private linkOf(conn: Conn): Link {
    let link = this.links.get(conn);
    if (!link) this.links.set(conn, (link = { reqs: [], calls: 0 }));
    return link;
  }

  private dropIfIdle(conn: Conn, link: Link) {
    if (link.calls === 0 && link.reqs.length === 0) this.links.delete(conn);
  }

  private send(conn: Conn, frame: string) {
    sendCounted(this.deps.transport, this.metrics, conn.ws, frame, frame.length);
  }

  /** Files a wait in the timeout wheel, due `ms` from now. */
  private track(t: Pending | Call, ms: number) {
    this.wheel.add(t, this.wheel.tickAt(Date.now() + ms));
    this.metrics.rpcPending++;
  }

  private untrack(t: Pending | Call) {
    if (t.done) return;
    t.done = true;
    this.metrics.rpcPending--;
    this.wheel.remove(t);
  }

  private expire(t: Pending | Call) {
    if (t.done) return;
    if (t.kind === 1) return this.finish(t, { ok: false, code: ERROR.TIMEOUT, message: `no answer within ${t.ms} ms` });
    // The requester has given up: a late reply is dropped, nobody needs telling.
    this.untrack(t);
    this.pending.delete(t.id);
    this.metrics.requests.expired++;
    const link = this.links.get(t.conn);
    if (!link) return;
    removeUnordered(link.reqs, t);
    this.dropIfIdle(t.conn, link);
  }
}
