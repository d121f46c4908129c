// The two records the live paths are made of: one small Conn per socket, and one UserEntry
// per (svc, user) this node serves. They sit in one file because each points at the other.
import type { CloseCode } from "../../protocol/close-codes.ts";
import type { Identity } from "../security/identity.ts";
import type { Held } from "../mailbox/replay.ts";
import { log } from "../ops/log.ts";

/**
 * The one small object each socket carries. Idle sockets are most of what a gateway holds,
 * so it keeps only what an idle socket needs; the rest (a number and a rate budget from the
 * first frame, a close reason, envelope state) lives in a side object made on first write.
 * The accessors keep one flat set of names for the rest of the code.
 */
export class Conn {
  ws: unknown = null;
  user: UserEntry | null = null;
  /** identity between the upgrade decision and open */
  pending: Identity | null;
  /** gateway second of the next time-driven close (token expiry, close grace); 0 = none (deadlines.ts) */
  tick = 0;
  /** index in that second's bucket; -1 = none */
  slot = -1;
  /**
   * Given at open, from the node's start time in µs (cluster/connid.ts): `<node>.<id>` names the
   * socket in the whole cluster (Ws-Conn, events, presence), and id / 1000 is when it opened.
   */
  id = 0;
  private more: ConnMore | null = null;

  constructor(pending: Identity | null) {
    this.pending = pending;
  }

  private side(): ConnMore {
    return (this.more ??= { ...FRESH });
  }

  /** frames from and to the client, for its disconnect event: counted on the side object, so an idle socket pays nothing */
  get framesIn(): number {
    return (this.more ?? FRESH).framesIn;
  }
  set framesIn(v: number) {
    this.side().framesIn = v;
  }
  get framesOut(): number {
    return (this.more ?? FRESH).framesOut;
  }
  set framesOut(v: number) {
    this.side().framesOut = v;
  }
  /** why the socket is being closed (or is to be closed right after it opens, node full); nothing more is sent */
  get refuse(): CloseCode | null {
    return (this.more ?? FRESH).refuse;
  }
  set refuse(v: CloseCode | null) {
    this.side().refuse = v;
  }
  /** the client chose the wsgate.v1 envelope (subprotocol) */
  get envelope(): boolean {
    return (this.more ?? FRESH).envelope;
  }
  set envelope(v: boolean) {
    this.side().envelope = v;
  }
  /** message-rate token bucket (limits.ts): frames left, and the gateway second they were counted at */
  get budget(): number {
    return (this.more ?? FRESH).budget;
  }
  set budget(v: number) {
    this.side().budget = v;
  }
  get budgetAt(): number {
    return (this.more ?? FRESH).budgetAt;
  }
  set budgetAt(v: number) {
    this.side().budgetAt = v;
  }
  /** `<prefix>.send.<svc>.<user>`, made on the first frame: idle sockets never need it */
  get send(): string | null {
    return (this.more ?? FRESH).send;
  }
  set send(v: string | null) {
    this.side().send = v;
  }
  /** envelope + mailbox: last stream sequence sent on this socket, the resume floor */
  get seq(): number {
    return (this.more ?? FRESH).seq;
  }
  set seq(v: number) {
    this.side().seq = v;
  }
  /** envelope + mailbox: messages held until the client says where to resume; null when live */
  get held(): Held[] | null {
    return (this.more ?? FRESH).held;
  }
  set held(v: Held[] | null) {
    this.side().held = v;
  }
}

type ConnMore = { framesIn: number; framesOut: number; refuse: CloseCode | null; envelope: boolean; budget: number; budgetAt: number; send: string | null; seq: number; held: Held[] | null };

/**
 * A socket's side fields before it has any. A socket that never sent a frame has its whole
 * burst: takeMessage refills from `budgetAt` -1 and caps at the burst.
 */
const FRESH: Readonly<ConnMore> = Object.freeze({ framesIn: 0, framesOut: 0, refuse: null, envelope: false, budget: Infinity, budgetAt: -1, send: null, seq: 0, held: null });

export type UserEntry = {
  /** the subject this node watches for the user (recv, or live with the mailbox); the map key */
  key: string;
  /** the user's sockets on this node: most users hold one, kept inline; an array from the second (connCount, connAt, connsOf) */
  conns: Conn | Conn[];
  handle: unknown;
  /** mailbox: last stream sequence delivered to this user's sockets here; -1 until the cursor is read */
  lastSeq: number;
  /** mailbox: last sequence every socket took without queueing it: what the cursor may record */
  safeSeq: number;
  /** mailbox: live messages held while the backlog is read from the stream; null when live */
  held: Held[] | null;
};


/** WSGATE_LOG_LEVEL=debug: why each socket went, to follow one client's trouble (`svcUser` of an opened socket). */
export function logClose(conn: Conn, svcUser: string | undefined, code?: number, reason?: string) {
  const who = svcUser ?? (conn.pending ? `${conn.pending.svc}.${conn.pending.user}` : undefined);
  log("debug", "connection closed", { user: who, conn: conn.user ? conn.id : undefined, code, reason, closedBy: conn.refuse ? "gateway" : "peer or runtime", refused: conn.refuse?.code });
}
