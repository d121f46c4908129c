// Services acting on sockets anywhere in the cluster: close every socket of a user, or
// one by its id, and send to one socket. A connection id names its node, so one-socket
// operations go to that node alone; a node that is not live means the socket is gone.
import type { FrameHint } from "../broker/broker.ts";
import type { CloseWith, LocalNode } from "./local.ts";
import type { Scatter } from "./scatter.ts";
import { nodeOf } from "./connid.ts";
import { CLOSE } from "../../protocol/close-codes.ts";

export const CLOSE_OP = "close";
export const SEND_OP = "sendto";

export type DisconnectMode = "terminal" | "reconnect";

/** The close each mode sends (protocol/close-codes.ts: 4100-4199 terminal, 4000-4099 reconnect allowed). */
export const DISCONNECT: Record<DisconnectMode, CloseWith> = {
  /** session revoked, user banned: the SDK never reconnects */
  terminal: CLOSE.DISCONNECTED_TERMINAL,
  /** the service asked for a fresh connection */
  reconnect: CLOSE.DISCONNECTED_RECONNECT,
};

export type Disconnected = { closed: number; missing: string[] };

export class Control {
  constructor(
    private readonly local: LocalNode,
    private readonly scatter: Scatter,
  ) {}

  /** CLOSE_OP on this node. */
  answerClose(svc: string, user: string, conn: string | null, mode: DisconnectMode): number {
    return this.local.close(svc, user, conn, DISCONNECT[mode] ?? DISCONNECT.reconnect);
  }

  /** SEND_OP on this node. */
  answerSend(svc: string, user: string, conn: string, data: Uint8Array, hint: FrameHint): boolean {
    return this.local.sendTo(svc, user, conn, data, hint);
  }

  /** Closes the user's sockets on every live node, or only `conn`. */
  async disconnect(svc: string, user: string, conn: string | null, mode: DisconnectMode): Promise<Disconnected> {
    const q = { op: CLOSE_OP, args: { svc, user, conn, mode }, payload: null };
    if (conn) {
      const node = nodeOf(conn);
      const n = node ? await this.scatter.askNode(node, q) : null;
      return { closed: typeof n === "number" ? n : 0, missing: [] };
    }
    const g = await this.scatter.ask(q);
    let closed = 0;
    for (const a of g.answers) if (typeof a.value === "number") closed += a.value;
    return { closed, missing: g.missing };
  }

  /** Sends to one socket, live only (never through the mailbox); false when it is gone. */
  async send(svc: string, user: string, conn: string, data: Uint8Array, hint: FrameHint): Promise<boolean> {
    const node = nodeOf(conn);
    if (!node) return false;
    return (await this.scatter.askNode(node, { op: SEND_OP, args: { svc, user, conn, hint: hint ?? null }, payload: data })) === true;
  }
}
