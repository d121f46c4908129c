// The wsgate.v1 envelope as both ends see it: the subprotocol name, the frames and the
// error codes. Types and constants only, so the SDK bundle stays free of dependencies;
// the gateway checks incoming frames against valibot schemas in app/envelope/frames.ts,
// which are type-checked against ClientFrame below.

/** Offered in Sec-WebSocket-Protocol by a client that speaks the envelope; raw mode offers none. */
export const SUBPROTOCOL = "wsgate.v1";

/** A frame `id`: printable ASCII without spaces, 1 to 64 characters (names a request in frames and logs). */
export const FRAME_ID_PATTERN = /^[\x21-\x7e]{1,64}$/;

/** Text as is, binary as base64 with `encoding: "base64"`; `data` left out means empty. */
type Payload = { data?: string; encoding?: "base64" };

/** client → gateway */
export type ClientFrame =
  | ({ type: "message" } & Payload)
  /** calls `<prefix>.call.<svc>.<method>`; `timeout` in ms, capped by WSGATE_CALL_TIMEOUT_MS */
  | ({ type: "request"; id: string; method: string; timeout?: number } & Payload)
  /** answers the gateway's `request` with that id */
  | ({ type: "reply"; id: string } & Payload)
  /** the client cannot answer that `request`: the requester gets `code` at once */
  | { type: "error"; id: string; code?: string; message?: string }
  /** where the client is: the last `seq` it has, or none */
  | { type: "resume"; after?: number };

/** gateway → client */
export type ServerFrame =
  /** the first frame: this socket's cluster-wide id (`<node>.<n>`, what services see in Ws-Conn) and its node */
  | { type: "hello"; conn: string; node: string }
  /** `seq`: the mailbox stream sequence, when the message came through the mailbox */
  | ({ type: "message"; seq?: number } & Payload)
  | ({ type: "request"; id: string } & Payload)
  | ({ type: "reply"; id: string } & Payload)
  /** a call with that id failed, or a frame was refused (with its id when readable) */
  | { type: "error"; id?: string; code: string; message: string };

/**
 * Error codes in `error` frames and in the Ws-Error header of replies to requesters. A
 * service may also answer a call with a code of its own (any id-rule name).
 */
export const ERROR = {
  /** the gateway refused a client frame (not JSON, failed the schema, binary, bad base64) */
  BAD_FRAME: "bad_frame",
  /** nobody listens: no service on the call's subject, or the user has no envelope connection */
  NO_RESPONDERS: "no_responders",
  TIMEOUT: "timeout",
  /** more than WSGATE_MAX_CALLS_PER_CONN calls waiting on this connection */
  TOO_MANY_CALLS: "too_many_calls",
  /** the broker is down */
  UNAVAILABLE: "unavailable",
  /** a resume with `after` on a gateway without the mailbox */
  NO_MAILBOX: "no_mailbox",
  /** to a requester: the socket the request went to closed before answering */
  CONNECTION_CLOSED: "connection_closed",
  /** to a requester: each of the user's sockets already has WSGATE_MAX_REQUESTS_PER_CONN requests waiting */
  OVERLOADED: "overloaded",
  /** to a requester: the client's handler failed and gave no code */
  CLIENT_ERROR: "client_error",
  /** to a requester: the SDK client has no request handler */
  NO_HANDLER: "no_handler",
  /** SDK only: the client is closed */
  CLOSED: "closed",
  /** SDK only: the connection closed before a sent call was answered (it may or may not have run) */
  DISCONNECTED: "disconnected",
  /** SDK only: too many frames wait for the connection */
  QUEUE_FULL: "queue_full",
} as const;

export type ErrorCode = (typeof ERROR)[keyof typeof ERROR];
