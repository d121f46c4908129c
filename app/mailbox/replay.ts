// Reading one user's messages from the mailbox stream and joining them with the live
// messages held meanwhile, in sequence order, with nothing twice. Used for a user's
// catch-up on a node (all its sockets) and for one envelope socket's resume.
import type { FrameHint } from "../broker/broker.ts";
import type { MailboxStoreApi } from "./store-api.ts";

/** A live message held back while the stream is read. */
export type Held = { data: Uint8Array; hint: FrameHint; seq: number; prev: number };

/** Held messages kept per target; past it they are dropped and re-read from the stream. */
export const HOLD_MAX = 1_000;

export interface ReplayTarget {
  /** the last stream sequence this target has */
  floor(): number;
  /** sends one message; must move floor() to `seq` */
  send(data: Uint8Array, hint: FrameHint, seq: number, prev: number): void;
  /** live messages held for this target; set to null when it is live again */
  held: Held[] | null;
  /** resolves when the target's sockets can take more (a backlog must not overrun their buffers) */
  ready(): Promise<void>;
  /** the target's sockets hold more than they should take from a backlog right now */
  backedUp(): boolean;
}

/**
 * Reads the stream after floor(), then releases held messages while the user's chain
 * is unbroken. A break (a held message whose previous sequence is past the floor) means
 * the stream has something the live path skipped: read it again. A break that a fresh
 * read cannot fill is a message the limits already dropped, and is accepted.
 * `scanned`: the stream is already read for this target up to that sequence (a shared pass),
 * so the first read is skipped and later ones start past it.
 * Returns the number of messages read from the stream, or -1 when `gone()` turned true.
 */
export async function replay(store: MailboxStoreApi, svcUser: string, t: ReplayTarget, gone: () => boolean, scanned = 0): Promise<number> {
  let read = 0;
  for (let pass = 0; ; pass++) {
    const start = t.floor();
    for (;;) {
      if (pass === 0 && scanned > 0) break;
      await t.ready();
      const m = await store.next(svcUser, Math.max(t.floor(), scanned) + 1);
      if (gone()) return -1;
      if (!m || m.seq <= t.floor()) break;
      t.send(m.data, m.hint, m.seq, m.seq);
      read++;
    }
    const strict = pass === 0 || t.floor() !== start;
    const held = t.held ?? [];
    let i = 0;
    let broken = held.length >= HOLD_MAX;
    for (; i < held.length && !broken; i++) {
      const h = held[i];
      if (h.seq <= t.floor()) continue;
      if (h.prev > t.floor() && strict) {
        broken = true;
        break;
      }
      t.send(h.data, h.hint, h.seq, h.prev);
    }
    if (!broken) {
      t.held = null;
      return read;
    }
    t.held = held.length >= HOLD_MAX ? [] : held.slice(i);
  }
}
