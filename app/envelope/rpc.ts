// The wsgate.v1 envelope's client frames, and request/reply both ways:
//   service → client: request on <prefix>.req.<svc>.<user> → `request` frame → client `reply` → requester's inbox (requests.ts)
//   client → service: `request` frame → request on <prefix>.call.<svc>.<method> → `reply` or `error` frame (calls.ts)
// Raw-mode users never reach this module.
import type { Broker, FrameHint } from "../broker/broker.ts";
import type { Conn, UserEntry } from "../core/conn.ts";
import type { ClientPublisher } from "../core/publish.ts";
import type { Subjects } from "../core/subjects.ts";
import { sendCounted, type Transport } from "../core/transport.ts";
import type { Config } from "../ops/config.ts";
import type { Metrics } from "../ops/metrics.ts";
import { type Answer, Calls } from "./calls.ts";
import { errorFrame, frameBytes, parseClientFrame } from "./frames.ts";
import { ServiceRequests } from "./requests.ts";
import { ERROR } from "../../protocol/envelope.ts";

export type { Answer } from "./calls.ts";
export { MAX_REQUEST_TIMEOUT_MS } from "./requests.ts";

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

const decoder = new TextDecoder();

export class Rpc {
  private readonly requests: ServiceRequests;
  private readonly calls: Calls;

  constructor(private readonly deps: RpcDeps) {
    const { broker, transport, metrics, config } = deps;
    const reqPrefix = deps.subjects.req("", "").slice(0, -1);
    this.requests = new ServiceRequests({ broker, transport, metrics, nodeId: config.nodeId, rpc: config.rpc, reqPrefix });
    this.calls = new Calls({ broker, transport, metrics, subjects: deps.subjects, nodeId: config.nodeId, rpc: config.rpc });
  }

  /** An envelope connection opened: its user's request subject is watched while it has one. */
  opened(conn: Conn) {
    this.requests.opened(conn, this.deps.svcUser(conn.user!));
  }

  /**
   * An envelope connection closed (`svcUser` is its user's `<svc>.<user>`). Requests waiting
   * on it fail now; its calls in flight stay until answered or expired, and are then dropped.
   */
  closed(conn: Conn, svcUser: string) {
    this.requests.closed(conn, svcUser);
  }

  /** A brand-new broker connection: watch every request subject again. */
  rewatch() {
    this.requests.rewatch();
  }

  stop() {
    this.requests.stop();
    this.calls.stop();
  }

  /** Broker hook: a request for a user this node watches. */
  onRequest(subject: string, data: Uint8Array, reply: string, hint: FrameHint, timeoutMs: number) {
    this.requests.onRequest(subject, data, reply, hint, timeoutMs);
  }

  /** Broker hook: the answer to a call or an HTTP request, or word that no one listens. */
  onAnswer(token: string, data: Uint8Array | null, hint: FrameHint, error: string | null) {
    this.calls.onAnswer(token, data, hint, error);
  }

  /** POST /v1/request/<svc>/<user>: asks a user over HTTP, through the broker like any service's request. */
  requestUser(svc: string, user: string, data: Uint8Array, hint: FrameHint, ms: number): Promise<Answer> {
    return this.calls.requestUser(svc, user, data, hint, ms);
  }

  /** A frame from an envelope connection, after the gateway's size and rate checks. */
  frame(conn: Conn, data: Uint8Array | string, binary: boolean) {
    if (binary) return this.refuse(conn, "binary frames are not wsgate.v1 frames: send JSON text, binary data as base64");
    const f = parseClientFrame(typeof data === "string" ? data : decoder.decode(data));
    if ("bad" in f) return this.refuse(conn, f.bad, f.id);
    switch (f.type) {
      case "message": {
        const bytes = frameBytes(f);
        if (!bytes) return this.refuse(conn, "data is not valid base64");
        return this.deps.publisher.publish(conn, bytes, f.encoding !== undefined);
      }
      case "reply":
      case "error": {
        const bad = f.type === "reply" ? this.requests.replied(conn, f.id, f, "", "") : this.requests.replied(conn, f.id, null, f.code, f.message);
        if (bad) this.refuse(conn, bad, f.id);
        return;
      }
      case "request": {
        const bytes = frameBytes(f);
        if (!bytes) return this.refuse(conn, "data is not valid base64", f.id);
        const w = this.requests.watchOf(this.deps.svcUser(conn.user!))!;
        return this.calls.call(conn, w.svc, w.user, f, bytes);
      }
      case "resume":
        return this.deps.resume(conn, f.after);
    }
  }

  private refuse(conn: Conn, why: string, id?: string) {
    this.deps.metrics.envelopeErrors++;
    const frame = errorFrame(ERROR.BAD_FRAME, why, id);
    sendCounted(this.deps.transport, this.deps.metrics, conn.ws, frame, frame.length);
  }
}
