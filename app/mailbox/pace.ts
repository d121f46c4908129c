// A backlog is read from the stream as fast as it answers; this paces it to the sockets it
// goes to, so a catch-up or resume never overruns a socket's outbound buffer.
import type { Conn } from "../core/conn.ts";
import type { Transport } from "../core/transport.ts";

export class Pacer {
  /** half of WSGATE_MAX_BUFFERED_BYTES: the slow-consumer rule keeps the other half */
  private readonly half: number;

  constructor(
    private readonly transport: Transport,
    maxBufferedBytes: number,
  ) {
    this.half = maxBufferedBytes / 2;
  }

  /** Some open socket holds more than half the outbound limit (runtimes that cannot tell never do). */
  backedUp(conns: Conn | Conn[]): boolean {
    const t = this.transport;
    if (!t.buffered) return false;
    const over = (c: Conn) => !c.refuse && t.buffered!(c.ws) > this.half;
    return Array.isArray(conns) ? conns.some(over) : over(conns);
  }

  /** Resolves once no socket is backed up; bounded: after ~30 s the slow-consumer rule decides. */
  async writable(conns: () => Conn | Conn[]): Promise<void> {
    for (let i = 0; i < 3_000; i++) {
      if (!this.backedUp(conns())) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
