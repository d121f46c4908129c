// Questions asked of the whole cluster: one publish to the query subject with a reply
// inbox, every live node answers for what it holds. An ask finishes when every node that
// was live when it started has answered, or at the bound, naming the nodes that did not.
import type { Broker } from "../broker/broker.ts";
import type { Membership } from "./membership.ts";
import type { ClusterSubjects } from "./subjects.ts";

/** A question: the operation, its JSON arguments, and raw bytes for sends. */
export type Query = { op: string; args: Record<string, unknown>; payload: Uint8Array | null };

/** Answers one query for this node; the value goes back as JSON. */
export type Answerer = (q: Query) => unknown;

export type Gathered = {
  /** each answering node's value, this node's included */
  answers: { node: string; value: unknown }[];
  /** nodes live when the ask started that did not answer within the bound */
  missing: string[];
};

/** How long an ask waits for the slowest live node. */
export const DEFAULT_BOUND_MS = 250;

/** Deadlines are checked by one timer while asks are open, not one timer per ask. */
const SWEEP_MS = 20;

type Pending = { expect: Set<string>; got: { node: string; value: unknown }[]; deadline: number; done: (g: Gathered) => void };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Scatter {
  private inbox = "";
  private next = 0;
  private pending = new Map<string, Pending>();
  private sweep: ReturnType<typeof setInterval> | null = null;
  private unlisten: (() => void)[] = [];

  constructor(
    private readonly broker: Broker,
    private readonly subjects: ClusterSubjects,
    private readonly members: Membership,
    private readonly nodeId: string,
    private readonly answer: Answerer,
    private readonly boundMs = DEFAULT_BOUND_MS,
  ) {}

  start() {
    this.inbox = this.broker.newInbox();
    const respond = (_s: string, data: Uint8Array, reply: string) => this.respond(data, reply);
    this.unlisten.push(
      this.broker.listen(this.subjects.query, respond),
      this.broker.listen(this.subjects.node(this.nodeId), respond),
      this.broker.listen(this.inbox + ".*", (subject, data) => this.collect(subject, data)),
    );
  }

  stop() {
    for (const u of this.unlisten) u();
    this.unlisten = [];
    for (const [token, p] of this.pending) this.finish(token, p);
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = null;
  }

  /** Asks every live node; this node answers in place. */
  ask(q: Query): Promise<Gathered> {
    const peers = this.peers();
    const mine = { node: this.nodeId, value: this.answer(q) };
    if (peers.length === 0) return Promise.resolve({ answers: [mine], missing: [] });
    return this.send(this.subjects.query, q, peers, [mine]);
  }

  /** Asks every other live node (the caller knows its own answer); null when there is none. */
  askPeers(q: Query): Promise<Gathered> | null {
    const peers = this.peers();
    return peers.length === 0 ? null : this.send(this.subjects.query, q, peers, []);
  }

  hasPeers(): boolean {
    return this.members.peerCount() > 0;
  }

  private peers(): string[] {
    return this.members.live().filter((n) => n !== this.nodeId);
  }

  /** Asks one node; null when it is not live or did not answer within the bound. */
  async askNode(node: string, q: Query): Promise<unknown | null> {
    if (node === this.nodeId) return this.answer(q);
    if (!this.members.isLive(node)) return null;
    const g = await this.send(this.subjects.node(node), q, [node], []);
    return g.answers.length ? g.answers[0].value : null;
  }

  private send(subject: string, q: Query, expect: string[], got: Pending["got"]): Promise<Gathered> {
    const token = (this.next++).toString(36);
    return new Promise<Gathered>((done) => {
      this.pending.set(token, { expect: new Set(expect), got, deadline: Date.now() + this.boundMs, done });
      this.sweep ??= setInterval(() => this.expire(), SWEEP_MS);
      try {
        this.broker.publishReply(subject, encodeQuery(q, this.nodeId), `${this.inbox}.${token}`);
      } catch {
        this.finish(token, this.pending.get(token)!);
      }
    });
  }

  private collect(subject: string, data: Uint8Array) {
    const token = subject.slice(this.inbox.length + 1);
    const p = this.pending.get(token);
    if (!p) return; // too late: the ask already finished
    let a: { node: string; value: unknown };
    try {
      a = JSON.parse(decoder.decode(data));
    } catch {
      return;
    }
    p.got.push(a);
    p.expect.delete(a.node);
    if (p.expect.size === 0) this.finish(token, p);
  }

  private finish(token: string, p: Pending) {
    this.pending.delete(token);
    p.done({ answers: p.got, missing: [...p.expect].sort() });
  }

  private expire() {
    const now = Date.now();
    for (const [token, p] of this.pending) if (p.deadline <= now) this.finish(token, p);
    if (this.pending.size === 0 && this.sweep) {
      clearInterval(this.sweep);
      this.sweep = null;
    }
  }

  private respond(data: Uint8Array, reply: string) {
    if (!reply) return;
    const q = decodeQuery(data);
    if (!q || q.from === this.nodeId) return; // this node answered its own ask in place
    let value: unknown;
    try {
      value = this.answer(q);
    } catch (err) {
      value = { error: String(err) };
    }
    try {
      this.broker.publish(reply, encoder.encode(JSON.stringify({ node: this.nodeId, value })));
    } catch {
      // broker away: the asker's bound covers it
    }
  }
}

/** `{"op","args","from"}` then, for sends, a newline and the raw bytes (JSON never holds a raw newline). */
export function encodeQuery(q: Query, from: string): Uint8Array {
  const head = encoder.encode(JSON.stringify({ op: q.op, args: q.args, from }));
  if (!q.payload) return head;
  const out = new Uint8Array(head.length + 1 + q.payload.length);
  out.set(head);
  out[head.length] = 10;
  out.set(q.payload, head.length + 1);
  return out;
}

export function decodeQuery(data: Uint8Array): (Query & { from: string }) | null {
  const nl = data.indexOf(10);
  try {
    const head = JSON.parse(decoder.decode(nl < 0 ? data : data.subarray(0, nl)));
    if (typeof head?.op !== "string" || typeof head.args !== "object" || head.args === null) return null;
    return { op: head.op, args: head.args, from: String(head.from ?? ""), payload: nl < 0 ? null : data.subarray(nl + 1) };
  } catch {
    return null;
  }
}
