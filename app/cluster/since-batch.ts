// The online/offline checks of many users in one scatter: a reconnect storm of 10,000 users
// asks the cluster a few dozen times, not 10,000 times. Checks are gathered for at most
// BATCH_MS (one timer per batch, none per connection) or until BATCH_MAX users wait.
import type { Gathered, Scatter } from "./scatter.ts";

/** The query: `{keys: ["<svc>.<user>", …]}`; each node answers an array of its `since` per key (null: not here). */
export const SINCE_OP = "since";

const BATCH_MS = 5;
const BATCH_MAX = 256;

/** One user's answer: each other node's earliest `since` of that user (null: not held there). */
export type SinceAnswers = { node: string; since: number | null }[];

type Waiting = { keys: string[]; done: ((a: SinceAnswers) => void)[] };

const NO_ANSWERS: SinceAnswers = [];

export class SinceBatch {
  private open: Waiting | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly scatter: Scatter) {}

  /** The other nodes' answers; at once (nothing to ask) while this node has no peer. */
  ask(svc: string, user: string): Promise<SinceAnswers> | SinceAnswers {
    if (!this.open && !this.scatter.hasPeers()) return NO_ANSWERS;
    const w = (this.open ??= { keys: [], done: [] });
    w.keys.push(svc + "." + user);
    const p = new Promise<SinceAnswers>((r) => w.done.push(r));
    if (w.keys.length >= BATCH_MAX) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), BATCH_MS);
    return p;
  }

  private flush() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const w = this.open;
    this.open = null;
    if (!w) return;
    const asked = this.scatter.askPeers({ op: SINCE_OP, args: { keys: w.keys }, payload: null });
    if (asked) void asked.then((g) => spread(g, w));
    else for (const done of w.done) done(NO_ANSWERS);
  }
}

function spread(g: Gathered, w: Waiting) {
  for (let i = 0; i < w.done.length; i++) {
    const per: SinceAnswers = [];
    for (const a of g.answers) {
      const v = Array.isArray(a.value) ? a.value[i] : null;
      per.push({ node: a.node, since: typeof v === "number" ? v : null });
    }
    w.done[i](per);
  }
}

/** A node's answer to SINCE_OP, from its own `since` lookup. */
export function answerSince(keys: unknown, since: (svc: string, user: string) => number | null): (number | null)[] {
  if (!Array.isArray(keys)) return [];
  return keys.map((k) => {
    const dot = typeof k === "string" ? k.indexOf(".") : -1;
    return dot > 0 ? since(k.slice(0, dot), k.slice(dot + 1)) : null;
  });
}
