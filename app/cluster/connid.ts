// Connection ids that name one socket in the whole cluster, across restarts too: a node
// restarted with the same WSGATE_NODE_ID gets a new boot part, so old ids never come back.
import { ID_RULE_TEXT } from "../../protocol/ids.ts";

/** `<node>.<boot><n>`: the node id, a dot, then a token of the id alphabet. */
export const CONN_ID_PATTERN = /^([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{1,64})$/;

export function connIdError(): string {
  return `conn must be <node>.<n>, both parts matching ${ID_RULE_TEXT}`;
}

/** The node a connection id belongs to, or null when it is not a connection id. */
export function nodeOf(connId: string): string | null {
  const m = CONN_ID_PATTERN.exec(connId);
  return m ? m[1] : null;
}

/** Makes the ids of one node's boot: `<node>.<boot>-<n>`, n counting from 1. */
export function connIds(nodeId: string): (n: number) => string {
  const boot = Date.now().toString(36).slice(-5) + Math.floor(Math.random() * 36 ** 3).toString(36).padStart(3, "0");
  const head = `${nodeId}.${boot}-`;
  return (n) => head + n;
}
