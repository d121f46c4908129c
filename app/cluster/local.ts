import type { FrameHint } from "../broker/broker.ts";

// What the cluster features need from the node they run on. The core implements it;
// tests implement it with a few maps. Nothing here reaches into the core's own types.

/** One socket as the cluster sees it: what presence lists and what events report. */
export type ConnInfo = {
  /** cluster-wide connection id, `<node>.<n>` (connid.ts) */
  id: string;
  /** epoch ms the socket opened */
  since: number;
  /** the client chose the wsgate.v1 envelope */
  envelope: boolean;
  /** frames received from and sent to the client so far (the admin console's user view) */
  framesIn: number;
  framesOut: number;
};

/** A close the cluster asks for: the code and reason the client sees. */
export type CloseWith = { code: number; reason: string };

export interface LocalNode {
  readonly nodeId: string;
  readonly runtime: string;
  readonly version: string;
  /** epoch ms this node started */
  readonly started: number;
  /** what the node announces about itself */
  stats(): { connections: number; users: number; draining: boolean; broker: string };
  /** the user's sockets on this node; empty once the last one closed (never a closing user's) */
  connections(svc: string, user: string): ConnInfo[];
  /** when the user's earliest open socket here opened (epoch ms); null when it has none */
  earliest(svc: string, user: string): number | null;
  /** users and sockets of one service on this node */
  serviceCounts(svc: string): { users: number; connections: number };
  /** up to `limit` users of the service on this node, sorted, each greater than `after` ("" = from the start) */
  serviceUsers(svc: string, after: string, limit: number): string[];
  /** Closes the user's sockets here (or only `conn`); returns how many it closed. */
  close(svc: string, user: string, conn: string | null, why: CloseWith): number;
  /** Sends to one socket (text or binary as `hint` says, else text when valid UTF-8); false when it is not here or closing. */
  sendTo(svc: string, user: string, conn: string, data: Uint8Array, hint: FrameHint): boolean;
}

/** Who ended a connection, as disconnect events report it. */
export type ClosedBy = "client" | "server" | "drain" | "limit" | "service";

/**
 * A socket as the core hands it to the event hooks. The core's own connection object can
 * implement it, so opening a socket allocates nothing extra for the cluster.
 */
export interface ConnRef {
  readonly svc: string;
  readonly user: string;
  readonly connId: string;
  readonly since: number;
  readonly envelope: boolean;
  readonly framesIn: number;
  readonly framesOut: number;
}

/** The hooks the core calls on its connection lifecycle. */
export interface ConnHooks {
  /** `first`: the user had no other socket on this node */
  opened(c: ConnRef, first: boolean): void;
  /** `last`: the user has no socket left on this node (already removed from connections()) */
  closed(c: ConnRef, last: boolean, code: number, reason: string, closedBy: ClosedBy): void;
}
