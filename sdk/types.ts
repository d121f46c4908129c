// The SDK's public types: options, states, events, the socket it runs on, its error.
export type State = "connecting" | "open" | "reconnecting" | "closed";

/** Text travels as a string, anything else as bytes (base64 on the wire). */
export type Data = string | Uint8Array;
export type DataInput = string | Uint8Array | ArrayBuffer | ArrayBufferView;

/**
 * An event handler property, checked bivariantly (as the DOM's own are), so a real
 * WebSocket whose handlers take a full MessageEvent or CloseEvent is accepted.
 */
type Handler<E> = { bivarianceHack(ev: E): void }["bivarianceHack"];

/** The part of the WHATWG WebSocket the client uses. */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  binaryType: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Handler<any> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<any> | null;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export type ClientOptions = {
  /**
   * Production mode: the JWT, sent as a query parameter (browsers cannot set headers on a
   * WebSocket; cookies are sent by the browser itself). A function is called before every
   * connection attempt, so an expired token (close 4001) is replaced by a fresh one.
   */
  token?: string | (() => string | Promise<string>);
  /** the gateway's WSGATE_JWT_QUERY_PARAM; default `access_token` */
  tokenParam?: string;
  /** the WebSocket class where the runtime has none (Node 20: `import WebSocket from "ws"`) */
  WebSocket?: WebSocketConstructor;
  /** builds the socket yourself, e.g. to add headers where the runtime allows it */
  createWebSocket?: (url: string, protocols: string[]) => WebSocketLike;
  /** reconnect delays: a random wait between 0 and min(maxMs, initialMs * 2^attempt); defaults 250 ms and 30 s */
  backoff?: { initialMs?: number; maxMs?: number };
  /** give up (state `closed`) after this many failed attempts in a row; default never */
  maxAttempts?: number;
  /** default timeout of request(); default 10 s */
  requestTimeoutMs?: number;
  /** the last `seq` an earlier session saw (kept by the app): delivery resumes after it */
  lastSeq?: number;
  /** frames kept while not connected; past it send() and request() throw; default 1000 */
  maxQueued?: number;
};

export type CloseInfo = {
  code: number;
  reason: string;
  /** false when the client stays closed: close() was called, or the code is terminal (shouldReconnect) */
  reconnect: boolean;
  /** wait before the next attempt */
  delayMs: number;
};

/** `group` names the group a group message came through; `broadcast` marks a message to every connection of the service. */
export type MessageInfo = { seq?: number; group?: string; broadcast?: true };
export type RequestInfo = { id: string };
/** Answers a service's request; the returned value (or promise) is the reply, a throw becomes an error. */
export type RequestHandler = (data: Data, info: RequestInfo) => DataInput | void | Promise<DataInput | void>;

/** The client's events and their listeners' signatures. */
export type Events = {
  state: (state: State) => void;
  open: () => void;
  close: (info: CloseInfo) => void;
  message: (data: Data, info: MessageInfo) => void;
  /** an error frame that belongs to no call of this client (e.g. a frame the gateway refused) */
  error: (err: WsgateError) => void;
};

/** A failed request(), or an error frame from the gateway. `code` is the protocol's error code. */
export class WsgateError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "WsgateError";
  }
}
