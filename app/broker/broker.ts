// What the gateway needs from a message broker. Two implementations: NATS
// (broker-nats.ts) and the in-process bus for single-node use (broker-embedded.ts).

/** Frame type a service asked for with the `Ws-Frame` header, if any. */
export type FrameHint = "text" | "binary" | undefined;

/**
 * Called for every message on a watched subject. One shared function, no per-message closures.
 * `seq` and `prev` are the mailbox stream's sequence and the user's previous sequence
 * (Nats-Sequence, Nats-Last-Sequence); both 0 for messages that did not pass through it.
 */
export type Deliver = (subject: string, data: Uint8Array, hint: FrameHint, seq: number, prev: number) => void;

export type BrokerState = "connecting" | "connected" | "reconnecting" | "closed";

export interface Broker {
  readonly kind: "nats" | "redis" | "embedded";
  state(): BrokerState;
  /** Begins connecting; never rejects: a broker that is down is retried in the background. */
  start(): Promise<void>;
  publish(subject: string, data: Uint8Array, headers?: Record<string, string>): void;
  /** A text message without headers (a lifecycle event's JSON): the NATS broker writes it without encoding it first. */
  publishText(subject: string, text: string): void;
  /**
   * A client's frame, with the Ws-Conn, Ws-Node and Ws-Frame headers: the inbound hot path, so
   * the broker may write it without building a headers object. Throws when it cannot be sent.
   */
  publishFrame(subject: string, data: Uint8Array | string, node: string, conn: number, binary: boolean): void;
  /**
   * Publishes into the mailbox stream and resolves once the stream stored it (on a quorum of
   * its replicas). Rejects with NotStored when it surely was not, with StoreUnconfirmed when
   * no answer came within the bound (it may have been: a retry can store it twice unless it
   * carries the same `msgId`, which the stream deduplicates).
   */
  publishStored(subject: string, data: Uint8Array, headers?: Record<string, string>, msgId?: string): Promise<void>;
  /** Registers interest in one exact subject; the handle is given back to unwatch. */
  watch(subject: string): unknown;
  unwatch(handle: unknown): void;
  /**
   * The watched subject again, as a fresh string equal to the one given to watch (Users.renewKeys):
   * a broker that keeps the subject keeps this one from now on, so the old one can be collected.
   */
  renewed?(handle: unknown, subject: string): void;
  /**
   * Service → client requests on one exact subject (wsgate.v1). The nodes serving a user
   * share it as a queue group, so each request reaches one node; unwatch() drops it.
   */
  watchRequests(subject: string): unknown;
  /** Sends a request; its answer, or word that no one listens, comes back through hooks.answer with `token`. */
  request(subject: string, data: Uint8Array, headers: Record<string, string>, token: string): void;
  /** Flushes what is in flight and closes. */
  close(): Promise<void>;
  /**
   * Cluster plumbing (app/cluster): a handler for every message on `subject` (NATS wildcards
   * allowed), kept across reconnects until the returned function is called. With `queue`,
   * the listeners sharing that group split the messages: one receives each.
   */
  listen(subject: string, handler: Listener, queue?: string): () => void;
  /** A publish whose receivers answer to `reply` (a subject under newInbox()). */
  publishReply(subject: string, data: Uint8Array, reply: string): void;
  /** A subject prefix no other client replies under: `<inbox>.<token>` reaches only this broker's listeners. */
  newInbox(): string;
}

/** A cluster message: `reply` is "" when the sender expects no answer. */
export type Listener = (subject: string, data: Uint8Array, reply: string, headers: HeaderLookup) => void;

/** Reads one header of a cluster message (case-insensitive); null when absent. */
export type HeaderLookup = (name: string) => string | null;

export type BrokerHooks = {
  deliver: Deliver;
  /** A brand-new broker connection has no interest yet: the gateway re-watches every user. */
  rewatchAll: () => void;
  /** Runs on each new connection before it counts as ready (the mailbox creates its streams). */
  prepare?: (nc: unknown) => Promise<void>;
  onState: (state: BrokerState) => void;
  /** A message on a request subject; `reply` is where the answer goes ("" when the sender expects none). */
  request?: (subject: string, data: Uint8Array, reply: string, hint: FrameHint, timeoutMs: number) => void;
  /** The answer to request(…, token): `data` null when no one listens on the subject; `error` the answer's Ws-Error code. */
  answer?: (token: string, data: Uint8Array | null, hint: FrameHint, error: string | null) => void;
};

/** A stored publish the broker knows was not stored (no stream leader, an error answer): safe to retry. */
export class NotStored extends Error {}
/** A stored publish with no answer in time: it may or may not have been stored. */
export class StoreUnconfirmed extends Error {}

export const HEADER = {
  frame: "Ws-Frame",
  conn: "Ws-Conn",
  node: "Ws-Node",
  /** request/reply (wsgate.v1): the caller's user, how long the requester waits, why a request failed */
  user: "Ws-User",
  timeout: "Ws-Timeout-Ms",
  error: "Ws-Error",
} as const;

export function parseFrameHint(value: string | undefined | null): FrameHint {
  if (!value) return undefined;
  const v = value.trim().toLowerCase();
  return v === "text" ? "text" : v === "binary" ? "binary" : undefined;
}
