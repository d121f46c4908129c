// wsgate client SDK: one WebSocket to the gateway in wsgate.v1 envelope mode, with
// request/reply both ways, reconnect with full-jitter backoff and resume from the last
// message seen. No dependencies: it runs on the runtime's own WebSocket (browsers,
// Bun, Deno, Node 22+), or on one passed in (Node 20: the `ws` package).
import { reconnectAtOnce, shouldReconnect } from "../protocol/close-codes.ts";
import { type ClientFrame, ERROR, SUBPROTOCOL } from "../protocol/envelope.ts";
import { isId } from "../protocol/ids.ts";

export { CLOSE, shouldReconnect } from "../protocol/close-codes.ts";
export { ERROR, SUBPROTOCOL } from "../protocol/envelope.ts";

import {
  type ClientOptions, type CloseInfo, type Data, type DataInput, type Events, type MessageInfo, type RequestHandler, type State, type WebSocketConstructor,
  type WebSocketLike, WsgateError,
} from "./types.ts";
import { decode, encode, frame, resolveUrl, withToken } from "./wire.ts";

export type {
  ClientOptions, CloseInfo, Data, DataInput, MessageInfo, RequestHandler, RequestInfo, State, WebSocketConstructor, WebSocketLike,
} from "./types.ts";
export { WsgateError } from "./types.ts";

type Call = { resolve: (d: Data) => void; reject: (e: WsgateError) => void; timer: ReturnType<typeof setTimeout>; sent: boolean };
type Queued = { frame: string; call: string | null };

/** A connection counts as healthy (backoff starts over) once it stayed open this long. */
const STABLE_MS = 5_000;
const OPEN = 1;

export class WsgateClient {
  private _state: State = "connecting";
  private _lastSeq: number;
  private _lastClose: { code: number; reason: string } | null = null;
  private _connectionId: string | null = null;
  private _node: string | null = null;
  private ws: WebSocketLike | null = null;
  private attempt = 0;
  private openedAt = 0;
  private closing = false;
  private retry: ReturnType<typeof setTimeout> | null = null;
  private nextId = 0;
  private calls = new Map<string, Call>();
  private queue: Queued[] = [];
  private handler: RequestHandler | null = null;
  private listeners: { [K in keyof Events]: Set<Events[K]> } = { state: new Set(), open: new Set(), close: new Set(), message: new Set(), error: new Set() };
  private readonly opts: ClientOptions;

  constructor(
    readonly url: string,
    options: ClientOptions = {},
  ) {
    this.opts = options;
    this._lastSeq = options.lastSeq ?? 0;
    void this.connect();
  }

  get state(): State {
    return this._state;
  }

  /** The highest message `seq` delivered; keep it to resume a later session with `lastSeq`. */
  get lastSeq(): number {
    return this._lastSeq;
  }

  /**
   * This connection's id in the whole cluster (`<node>.<n>`): what services see in Ws-Conn,
   * events and presence, and what they address one tab with. null between connections.
   */
  get connectionId(): string | null {
    return this._connectionId;
  }

  /** The gateway node this connection is on; null between connections. */
  get node(): string | null {
    return this._node;
  }

  /** How the last connection ended, as the gateway (or the network) said: null before any closed. */
  get lastClose(): { code: number; reason: string } | null {
    return this._lastClose;
  }

  on<K extends keyof Events>(event: K, fn: Events[K]): () => void {
    this.listeners[event].add(fn);
    return () => this.listeners[event].delete(fn);
  }

  onMessage(fn: Events["message"]): () => void {
    return this.on("message", fn);
  }

  /** Sets the one handler that answers services' requests (a later call replaces it). */
  onRequest(handler: RequestHandler | null): void {
    this.handler = handler;
  }

  /** Resolves once the client is open (at once if it is). */
  opened(): Promise<void> {
    if (this._state === "open") return Promise.resolve();
    if (this._state === "closed") return Promise.reject(new WsgateError(ERROR.CLOSED, "the client is closed"));
    return new Promise((resolve, reject) => {
      const offOpen = this.on("open", () => {
        offOpen();
        offState();
        resolve();
      });
      const offState = this.on("state", (s) => {
        if (s !== "closed") return;
        offOpen();
        offState();
        reject(new WsgateError(ERROR.CLOSED, "the client closed before it connected"));
      });
    });
  }

  /** Publishes to the service (`<prefix>.send.<svc>.<user>`); queued while reconnecting. */
  send(data: DataInput): void {
    this.enqueue(frame({ type: "message", ...encode(data) }), null);
  }

  /** Calls `<prefix>.call.<svc>.<method>` and resolves with the service's answer. */
  request(method: string, data: DataInput = "", options: { timeout?: number } = {}): Promise<Data> {
    if (this._state === "closed") return Promise.reject(new WsgateError(ERROR.CLOSED, "the client is closed"));
    const timeout = options.timeout ?? this.opts.requestTimeoutMs ?? 10_000;
    const id = "c" + (++this.nextId).toString(36);
    const call = frame({ type: "request", id, method, ...encode(data), timeout });
    return new Promise<Data>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.calls.delete(id);
        reject(new WsgateError(ERROR.TIMEOUT, `no answer within ${timeout} ms`));
      }, timeout);
      this.calls.set(id, { resolve, reject, timer, sent: false });
      try {
        this.enqueue(call, id);
      } catch (err) {
        clearTimeout(timer);
        this.calls.delete(id);
        reject(err);
      }
    });
  }

  /** Closes for good: no reconnect; calls in flight fail with code "closed". */
  close(code = 1000, reason = ""): void {
    if (this._state === "closed") return;
    this.closing = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    const ws = this.ws;
    if (ws && ws.readyState <= OPEN) {
      ws.close(code, reason);
      return; // onclose finishes
    }
    this.finish({ code, reason, reconnect: false, delayMs: 0 });
  }

  // ---- connection -------------------------------------------------------------------

  private async connect() {
    let url = this.url;
    try {
      const token = typeof this.opts.token === "function" ? await this.opts.token() : this.opts.token;
      if (this.closing) return;
      url = withToken(resolveUrl(url), token, this.opts.tokenParam ?? "access_token");
    } catch (err) {
      return this.lost(1006, `token: ${err instanceof Error ? err.message : String(err)}`);
    }
    let ws: WebSocketLike;
    try {
      if (this.opts.createWebSocket) ws = this.opts.createWebSocket(url, [SUBPROTOCOL]);
      else {
        const WS = this.opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
        if (!WS) throw new Error("no WebSocket in this runtime: pass the `WebSocket` option (Node 20: the ws package)");
        ws = new WS(url, [SUBPROTOCOL]);
      }
    } catch (err) {
      return this.lost(1006, err instanceof Error ? err.message : String(err));
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => this.onOpen(ws);
    ws.onmessage = (ev) => this.onFrame(ws, ev.data);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.lost(ev.code, ev.reason);
    };
    ws.onerror = () => {}; // onclose follows with the code
  }

  private onOpen(ws: WebSocketLike) {
    if (this.ws !== ws) return;
    if (ws.protocol !== SUBPROTOCOL) {
      // A gateway (or proxy) that did not select wsgate.v1 would treat our JSON as payload.
      ws.close(1002, "wsgate.v1 not selected");
      return;
    }
    this.openedAt = Date.now();
    // Always first: with the mailbox on, the gateway holds this socket's messages until it
    // knows where the client is, so nothing is missed or sent twice across a reconnect.
    ws.send(frame(this._lastSeq > 0 ? { type: "resume", after: this._lastSeq } : { type: "resume" }));
    const queued = this.queue;
    this.queue = [];
    for (const q of queued) {
      if (q.call !== null) {
        const call = this.calls.get(q.call);
        if (!call) continue; // timed out while queued
        call.sent = true;
      }
      ws.send(q.frame);
    }
    this.setState("open");
    this.emit("open");
  }

  private lost(code: number, reason: string) {
    this._lastClose = { code, reason };
    this._connectionId = this._node = null;
    // Sent calls may or may not have run: the caller decides whether to retry.
    for (const [id, call] of this.calls) {
      if (!call.sent) continue;
      this.calls.delete(id);
      clearTimeout(call.timer);
      call.reject(new WsgateError(ERROR.DISCONNECTED, "the connection closed before the answer came"));
    }
    if (this.closing) return this.finish({ code, reason, reconnect: false, delayMs: 0 });
    if (this.openedAt > 0 && Date.now() - this.openedAt >= STABLE_MS) this.attempt = 0;
    this.openedAt = 0;
    const max = this.opts.maxAttempts ?? Infinity;
    if (!shouldReconnect(code) || this.attempt >= max) {
      this.closing = true;
      return this.finish({ code, reason, reconnect: false, delayMs: 0 });
    }
    const initial = this.opts.backoff?.initialMs ?? 250;
    // Draining node or expired token: come back at once, spread over the first step only.
    const ceiling = reconnectAtOnce(code) ? initial : Math.min(this.opts.backoff?.maxMs ?? 30_000, initial * 2 ** this.attempt);
    const delayMs = Math.floor(Math.random() * ceiling);
    this.attempt++;
    this.setState("reconnecting");
    this.emit("close", { code, reason, reconnect: true, delayMs });
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.connect();
    }, delayMs);
  }

  private finish(info: CloseInfo) {
    this._lastClose = { code: info.code, reason: info.reason };
    for (const call of this.calls.values()) {
      clearTimeout(call.timer);
      call.reject(new WsgateError(ERROR.CLOSED, "the client closed"));
    }
    this.calls.clear();
    this.queue = [];
    this.ws = null;
    this.setState("closed");
    this.emit("close", info);
  }

  // ---- frames -----------------------------------------------------------------------

  private onFrame(ws: WebSocketLike, raw: unknown) {
    if (this.ws !== ws || typeof raw !== "string") return;
    // A ServerFrame, read field by field: nothing in it is trusted.
    let f: { type?: unknown; id?: unknown; data?: unknown; encoding?: unknown; seq?: unknown; code?: unknown; message?: unknown; group?: unknown; broadcast?: unknown; conn?: unknown; node?: unknown };
    try {
      f = JSON.parse(raw);
    } catch {
      return;
    }
    switch (f.type) {
      case "hello":
        if (typeof f.conn === "string") this._connectionId = f.conn;
        if (typeof f.node === "string") this._node = f.node;
        return;
      case "message": {
        const seq = typeof f.seq === "number" ? f.seq : undefined;
        if (seq !== undefined) {
          // Resume and live delivery can overlap by a message; the sequence settles it.
          if (seq <= this._lastSeq) return;
          this._lastSeq = seq;
        }
        const info: MessageInfo = { seq };
        if (typeof f.group === "string") info.group = f.group;
        if (f.broadcast === true) info.broadcast = true;
        return this.emit("message", decode(f), info);
      }
      case "request":
        if (typeof f.id === "string") this.answer(ws, f.id, decode(f));
        return;
      case "reply": {
        const call = typeof f.id === "string" ? this.take(f.id) : undefined;
        call?.resolve(decode(f));
        return;
      }
      case "error": {
        const err = new WsgateError(String(f.code ?? "error"), String(f.message ?? ""));
        const call = typeof f.id === "string" ? this.take(f.id) : undefined;
        if (call) call.reject(err);
        else this.emit("error", err);
        return;
      }
    }
  }

  private take(id: string): Call | undefined {
    const call = this.calls.get(id);
    if (!call) return undefined;
    this.calls.delete(id);
    clearTimeout(call.timer);
    return call;
  }

  private answer(ws: WebSocketLike, id: string, data: Data) {
    const handler = this.handler;
    // Replies go on the socket the request came on or nowhere: the gateway forgets a
    // socket's requests when it closes (the requester is told at once).
    const reply = (f: ClientFrame) => {
      if (this.ws === ws && ws.readyState === OPEN) ws.send(frame(f));
    };
    if (!handler) return reply({ type: "error", id, code: ERROR.NO_HANDLER, message: "this client answers no requests" });
    new Promise<DataInput | void>((resolve) => resolve(handler(data, { id }))).then(
      (value) => reply({ type: "reply", id, ...encode(value ?? "") }),
      (err: unknown) => {
        const code = (err as { code?: unknown })?.code;
        const message = err instanceof Error ? err.message : String(err);
        reply({ type: "error", id, code: typeof code === "string" && isId(code) ? code : ERROR.CLIENT_ERROR, message: message.slice(0, 1024) });
      },
    );
  }

  private enqueue(frame: string, call: string | null) {
    const ws = this.ws;
    if (this._state === "open" && ws && ws.readyState === OPEN) {
      if (call !== null) this.calls.get(call)!.sent = true;
      ws.send(frame);
      return;
    }
    if (this._state === "closed") throw new WsgateError(ERROR.CLOSED, "the client is closed");
    if (this.queue.length >= (this.opts.maxQueued ?? 1000)) throw new WsgateError(ERROR.QUEUE_FULL, "too many frames waiting for the connection");
    this.queue.push({ frame, call });
  }

  private setState(s: State) {
    if (this._state === s) return;
    this._state = s;
    this.emit("state", s);
  }

  private emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>) {
    for (const fn of this.listeners[event]) {
      try {
        (fn as (...a: unknown[]) => void)(...args);
      } catch (err) {
        // A listener's bug must not break the connection (nor crash a server process).
        console.error("wsgate client: a listener threw", err);
      }
    }
  }
}

/** Opens a client; it connects (and reconnects) by itself. */
export function connect(url: string, options?: ClientOptions): WsgateClient {
  return new WsgateClient(url, options);
}
