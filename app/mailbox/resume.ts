// Per envelope socket: nothing goes out until the client says which stream sequence it has
// (a resume frame) or RESUME_WAIT_MS passes; then exactly what follows is sent, read from
// the stream for that socket alone, before the live messages held meanwhile.
import type { FrameHint } from "../broker/broker.ts";
import type { Conn } from "../core/conn.ts";
import { sendCounted, type Transport } from "../core/transport.ts";
import type { Users } from "../core/users.ts";
import { messageFrame } from "../envelope/frames.ts";
import { isUtf8 } from "../util/utf8.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { Pacer } from "./pace.ts";
import type { ReplayTarget } from "./replay.ts";

/** How long an envelope socket's messages wait for its resume frame before flowing anyway. */
const RESUME_WAIT_MS = 2_000;

/** What the resume needs from the core: a user's name, the sockets' transport, the counters. */
export type ResumeCore = { readonly users: Users; readonly transport: Transport; readonly metrics: Metrics };

/** What the resume needs from the mailbox: its stream reads, with their retry. */
export type ResumeReads = {
  read(svcUser: string, t: ReplayTarget, gone: () => boolean): Promise<number>;
  withRetry(what: string, svcUser: string, gone: () => boolean, run: (gone: () => boolean) => Promise<void>): Promise<void>;
};

export class SocketResumes {
  /** envelope sockets waiting for their resume frame, with when they opened */
  private awaiting = new Map<Conn, number>();
  private sweep: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly core: ResumeCore,
    private readonly pacer: Pacer,
    private readonly reads: ResumeReads,
  ) {}

  opened(conn: Conn) {
    conn.held = [];
    this.awaiting.set(conn, Date.now());
    this.sweep ??= setInterval(() => this.sweepWaits(), RESUME_WAIT_MS / 2);
  }

  closed(conn: Conn) {
    conn.held = null;
    this.awaiting.delete(conn);
  }

  /**
   * The client says which stream sequence it has: it gets exactly what follows, then the
   * held live messages in order. Without `after` (a new client) the held messages are released.
   */
  resume(conn: Conn, after: number | undefined) {
    if (!conn.envelope || !conn.user || conn.refuse) return;
    this.awaiting.delete(conn);
    if (after === undefined) return this.release(conn);
    const entry = conn.user;
    conn.seq = after;
    conn.held ??= [];
    const target: ReplayTarget = {
      floor: () => conn.seq,
      send: (data, hint, seq) => this.sendFrame(conn, data, hint, seq),
      get held() {
        return conn.held;
      },
      set held(h) {
        conn.held = h;
      },
      ready: () => this.pacer.writable(() => conn),
      backedUp: () => this.pacer.backedUp(conn),
    };
    const svcUser = this.core.users.svcUser(entry);
    void this.reads.withRetry("resume", svcUser, () => conn.user !== entry || conn.refuse !== null, async (gone) => {
      const read = await this.reads.read(svcUser, target, gone);
      if (read > 0) this.core.metrics.mailboxBacklogDelivered += read;
    });
  }

  /** Sends what was held for a socket that gave no resume point, in order. */
  private release(conn: Conn) {
    const held = conn.held;
    conn.held = null;
    if (!held) return;
    for (const h of held) {
      if (h.seq <= conn.seq) continue;
      this.sendFrame(conn, h.data, h.hint, h.seq);
    }
  }

  /** One stream message to one envelope socket, moving its resume floor. */
  private sendFrame(conn: Conn, data: Uint8Array, hint: FrameHint, seq: number) {
    const text = hint !== "binary" && isUtf8(data);
    sendCounted(this.core.transport, this.core.metrics, conn.ws, messageFrame(data, text, seq), data.length);
    conn.seq = seq;
  }

  private sweepWaits() {
    const cutoff = Date.now() - RESUME_WAIT_MS;
    for (const [conn, since] of this.awaiting) {
      if (since > cutoff) continue;
      this.awaiting.delete(conn);
      this.release(conn);
    }
    if (this.awaiting.size === 0 && this.sweep) {
      clearInterval(this.sweep);
      this.sweep = null;
    }
  }
}
