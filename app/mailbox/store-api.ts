// What the mailbox's delivery logic (delivery.ts, replay.ts, catchup.ts) needs from where
// messages are kept: JetStream (store.ts) or Redis Streams (redis-store.ts).
import type { FrameHint } from "../broker/broker.ts";
import type { MailboxConfig } from "../ops/config.ts";

/** One kept message: its sequence (the number the envelope's `seq` and `resume` use). */
export type StoredMessage = { seq: number; data: Uint8Array; hint: FrameHint };

export interface MailboxStoreApi {
  readonly config: MailboxConfig;
  /** Readies the store on each new broker connection (streams, functions); throws with a clear reason. */
  attach(connection: unknown): Promise<void>;
  /** Last sequence delivered to the user, 0 when none was recorded. */
  loadCursor(svcUser: string): Promise<number>;
  /** Fire-and-forget: cursors are written in batches and a lost write means redelivery, not loss. */
  saveCursor(svcUser: string, seq: number): void;
  /** The user's first kept message at or after `fromSeq`, or null when there is none. */
  next(svcUser: string, fromSeq: number): Promise<StoredMessage | null>;
  /**
   * Reads of one stream shared by many users at once (catchup.ts), where all users' messages
   * sit in one stream and reading one user's costs a scan past the others'; null where each
   * user has a stream of its own and per-user reads are cheap.
   */
  readonly shared: SharedReads | null;
  /** What keeps the store from working as configured (a replica count the cluster cannot hold), for /readyz; null when nothing does. */
  refusal?(): string | null;
  /** What waits for a user past their cursor (`pending`) and what is kept in all (`stored`), for the admin console; absent where it cannot be counted cheaply. */
  pending?(svcUser: string): Promise<{ pending: number; stored: number; cursor: number }>;
}

export interface SharedReads {
  /** First and last sequence the stream holds now. */
  bounds(): Promise<{ first: number; last: number }>;
  /** Reads every kept message from `from` to `to` in order; returns how many. */
  scan(from: number, to: number, each: (svcUser: string, data: Uint8Array, hint: FrameHint, seq: number) => void): Promise<number>;
}
