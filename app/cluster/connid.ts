// Connection ids that name one socket in the whole cluster, across restarts too:
// `<node>.<n>`, where n counts up from the node's start time in microseconds (ms × 1000), so
// a node restarted with the same WSGATE_NODE_ID starts past every id it gave before (unless
// it opened more than 1,000 sockets per millisecond over its whole life), and n / 1000 is
// close to the epoch ms the socket opened.
import { ID_RULE_TEXT } from "../../protocol/ids.ts";

/** `<node>.<n>`: the node id, a dot, then a token of the id alphabet. */
export const CONN_ID_PATTERN = /^([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{1,64})$/;

export function connIdError(): string {
  return `conn must be <node>.<n>, both parts matching ${ID_RULE_TEXT}`;
}

/** The node a connection id belongs to, or null when it is not a connection id. */
export function nodeOf(connId: string): string | null {
  const m = CONN_ID_PATTERN.exec(connId);
  return m ? m[1] : null;
}

/** The numbers of one node's connections: each call gives the next, at least now × 1000. */
export function connNumbers(): () => number {
  let last = 0;
  return () => (last = Math.max(last + 1, Date.now() * 1000));
}

/** Epoch ms a connection numbered `n` opened (exact unless over 1,000 opened in one millisecond). */
export function openedAt(n: number): number {
  return Math.floor(n / 1000);
}

/** Makes the ids of one node's boot (tests and tools; the gateway numbers its Conns itself). */
export function connIds(nodeId: string): (n: number) => string {
  const next = connNumbers();
  return () => `${nodeId}.${next()}`;
}
