// Waits for a broker answer: a client's call (a `request` frame → a NATS request on
// <prefix>.call.<svc>.<method> → a `reply` or `error` frame), and the HTTP API's request to a
// user (POST /v1/request/<svc>/<user> → a NATS request on <prefix>.req.<svc>.<user>).
// Timeouts are swept by a timer wheel, never a timer per call.
import { type Broker, type FrameHint, HEADER } from "../broker/broker.ts";
import { ERROR } from "../../protocol/envelope.ts";
import type { Conn } from "../core/conn.ts";
import type { Subjects } from "../core/subjects.ts";
import { sendCounted, type Transport } from "../core/transport.ts";
import type { Metrics } from "../ops/metrics.ts";
import { TimerWheel, type WheelItem } from "../util/wheel.ts";
import { isUtf8 } from "../util/utf8.ts";
import { errorFrame, idFrame } from "./frames.ts";

/** Resolution of call timeouts. */
const TICK_MS = 25;

export type Answer = { ok: true; data: Uint8Array; hint: FrameHint } | { ok: false; code: string; message: string };

/** A call waiting for the broker's answer: a client's (`conn`, frame `id`) or the HTTP API's (`settle`). */
type Call = WheelItem & { token: string; conn: Conn | null; id: string; ms: number; done: boolean; settle: ((a: Answer) => void) | null };

export type CallsDeps = {
  broker: Broker;
  transport: Transport;
  metrics: Metrics;
  subjects: Subjects;
  nodeId: string;
  rpc: { callTimeoutMs: number; maxCallsPerConn: number };
};

const decoder = new TextDecoder();

export class Calls {
  private calls = new Map<string, Call>();
  /** a socket's calls in flight; an entry only while it has some */
  private perConn = new Map<Conn, number>();
  private counter = 0;
  private readonly wheel = new TimerWheel<Call>(TICK_MS, (c) => this.finish(c, { ok: false, code: ERROR.TIMEOUT, message: `no answer within ${c.ms} ms` }), "expiring a call");

  constructor(private readonly d: CallsDeps) {}

  stop() {
    this.wheel.stop();
  }

  /** The HTTP API's request to a user: the same path a service's NATS request takes, so it reaches the user on any node. */
  requestUser(svc: string, user: string, data: Uint8Array, hint: FrameHint, ms: number): Promise<Answer> {
    return new Promise((resolve) => {
      const call = this.track(null, "", ms, resolve);
      const headers: Record<string, string> = { [HEADER.timeout]: String(ms) };
      if (hint) headers[HEADER.frame] = hint;
      try {
        this.d.broker.request(this.d.subjects.req(svc, user), data, headers, call.token);
      } catch (err) {
        this.finish(call, { ok: false, code: ERROR.UNAVAILABLE, message: String(err) });
      }
    });
  }

  /** A client's call of `f.method` on its own service `svc`, as `user`; it waits `f.timeout`, at most WSGATE_CALL_TIMEOUT_MS. */
  call(conn: Conn, svc: string, user: string, f: { id: string; method: string; encoding?: "base64"; timeout?: number }, bytes: Uint8Array) {
    const cfg = this.d.rpc;
    if ((this.perConn.get(conn) ?? 0) >= cfg.maxCallsPerConn) {
      this.d.metrics.calls.too_many++;
      return this.send(conn, errorFrame(ERROR.TOO_MANY_CALLS, `at most ${cfg.maxCallsPerConn} calls may wait at once per connection (WSGATE_MAX_CALLS_PER_CONN)`, f.id));
    }
    const ms = Math.min(f.timeout ?? cfg.callTimeoutMs, cfg.callTimeoutMs);
    const call = this.track(conn, f.id, ms, null);
    this.perConn.set(conn, (this.perConn.get(conn) ?? 0) + 1);
    const headers = {
      [HEADER.user]: user,
      [HEADER.conn]: `${this.d.nodeId}.${conn.id}`,
      [HEADER.node]: this.d.nodeId,
      [HEADER.frame]: f.encoding ? "binary" : "text",
      [HEADER.timeout]: String(ms),
    };
    try {
      this.d.broker.request(this.d.subjects.call(svc, f.method), bytes, headers, call.token);
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

  private track(conn: Conn | null, id: string, ms: number, settle: Call["settle"]): Call {
    const call: Call = { token: (++this.counter).toString(36), conn, id, ms, tick: 0, slot: -1, done: false, settle };
    this.calls.set(call.token, call);
    this.wheel.add(call, this.wheel.tickAt(Date.now() + ms));
    this.d.metrics.rpcPending++;
    return call;
  }

  private finish(call: Call, a: Answer) {
    if (call.done) return;
    call.done = true;
    this.calls.delete(call.token);
    this.wheel.remove(call);
    const m = this.d.metrics;
    m.rpcPending--;
    if (call.settle) return call.settle(a);
    if (a.ok) m.calls.ok++;
    else if (a.code === "no_responders" || a.code === "timeout" || a.code === "unavailable") m.calls[a.code]++;
    else m.calls.service_error++;
    const conn = call.conn!;
    const left = (this.perConn.get(conn) ?? 1) - 1;
    if (left > 0) this.perConn.set(conn, left);
    else this.perConn.delete(conn);
    if (!conn.user || conn.refuse) return; // the socket went while the service worked
    this.send(conn, a.ok ? idFrame("reply", call.id, a.data, a.hint !== "binary" && isUtf8(a.data)) : errorFrame(a.code, a.message, call.id));
  }

  private send(conn: Conn, frame: string) {
    sendCounted(this.d.transport, this.d.metrics, conn.ws, frame, frame.length);
  }
}
