// Broker message → every socket of one user on this node. The hottest loop in the gateway:
// nothing is allocated per socket; the envelope frame is built once per message.
import type { FrameHint } from "../broker/broker.ts";
import { messageFrame } from "../envelope/frames.ts";
import { HOLD_MAX } from "../mailbox/replay.ts";
import type { Metrics } from "../ops/metrics.ts";
import { isUtf8 } from "../util/utf8.ts";
import type { Conn, UserEntry } from "./conn.ts";
import { overBuffer } from "./limits.ts";
import type { Transport } from "./transport.ts";
import { connAt, connCount } from "./users.ts";

const decoder = new TextDecoder();

export class FanOut {
  constructor(
    private readonly transport: Transport,
    private readonly metrics: Metrics,
    private readonly maxBufferedBytes: number,
    /** a socket whose unsent data passed the limit: closed as a slow consumer */
    private readonly slowConsumer: (conn: Conn) => void,
  ) {}

  /**
   * Sends one message to every socket of a user. `seq`/`prev` are the mailbox stream's (0 when
   * it did not pass through it). Returns whether every socket took it straight away (nothing
   * queued or refused): only then may the mailbox cursor move past it.
   */
  toUser(entry: UserEntry, data: Uint8Array, hint: FrameHint, seq: number, prev: number): boolean {
    let flushed = true;
    const text = hint !== "binary" && isUtf8(data);
    const payload = text && this.transport.textAsString ? decoder.decode(data) : data;
    let framed: string | null = null; // the envelope frame, built once for all envelope sockets
    const m = this.metrics;
    for (let i = 0; i < connCount(entry); i++) {
      const conn = connAt(entry, i);
      if (conn.refuse) {
        m.dropped++; // closing with a code the client sees; nothing more goes out
        flushed = false;
        continue;
      }
      let status: number;
      if (conn.envelope) {
        if (seq > 0) {
          if (conn.held) {
            if (conn.held.length < HOLD_MAX) conn.held.push({ data, hint, seq, prev });
            continue;
          }
          if (seq <= conn.seq) continue; // already sent by this socket's resume
          conn.seq = seq;
        }
        framed ??= messageFrame(data, text, seq);
        status = this.transport.send(conn.ws, framed, true);
      } else {
        status = this.transport.send(conn.ws, payload, text);
      }
      if (status !== 0) conn.framesOut++;
      if (status > 0) {
        m.messagesOut++;
        m.bytesOut += data.length;
        continue;
      }
      flushed = false;
      if (status < 0) {
        // Queued by the runtime: still delivered, but the reader is behind.
        m.messagesOut++;
        m.bytesOut += data.length;
        m.backpressure++;
      } else {
        m.dropped++;
      }
      if (overBuffer(this.transport, conn.ws, this.maxBufferedBytes)) this.slowConsumer(conn);
    }
    return flushed;
  }
}
