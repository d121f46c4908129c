// The cluster's listeners on Redis (Broker.listen for app/cluster): node announces, the scatter's
// questions and answers, the service API. Exact subjects are channels (SUBSCRIBE); a subject
// with NATS wildcards is a pattern (PSUBSCRIBE), its glob wider than the subject (`*` in a glob
// also matches dots), so each message is checked against the subject itself.
// Redis pub/sub has no queue groups: every node hears a queued message, and the one that first
// claims its reply channel (`SET <reply>.claim NX`, as requests do) handles it.
import type { Redis } from "ioredis";
import type { HeaderLookup, Listener } from "./broker.ts";
import { subjectMatches } from "./embedded.ts";
import { decodeFramed, framed, REPLY } from "./redis-frame.ts";
import { log } from "../ops/log.ts";

type Listening = { subject: string; handler: Listener; queue: string | undefined };

/** How long a queued message's claim is kept: longer than any answer takes. */
const CLAIM_MS = 60_000;
const NO_HEADERS: HeaderLookup = () => null;

/** The PSUBSCRIBE glob of a subject with wildcards: `*` for a `*` or `>` token, the rest escaped. */
export function globOf(subject: string): string {
  return subject
    .split(".")
    .map((t) => (t === "*" || t === ">" ? "*" : t.replace(/[?*[\]\\]/g, "\\$&")))
    .join(".");
}

const hasWildcard = (subject: string) => subject.split(".").some((t) => t === "*" || t === ">");

export class RedisListeners {
  /** channel → its listeners */
  private exact = new Map<string, Listening[]>();
  /** glob → its listeners */
  private wild = new Map<string, Listening[]>();

  constructor(
    private readonly sub: Redis,
    private readonly cmd: Redis,
  ) {}

  listen(subject: string, handler: Listener, queue?: string): () => void {
    const wild = hasWildcard(subject);
    const key = wild ? globOf(subject) : subject;
    const map = wild ? this.wild : this.exact;
    const entry: Listening = { subject, handler, queue };
    const list = map.get(key);
    if (list) list.push(entry);
    else {
      map.set(key, [entry]);
      // Not ready: resubscribe() on the next ready sends it.
      if (this.sub.status === "ready") (wild ? this.sub.psubscribe(key) : this.sub.subscribe(key)).catch((err) => log("warn", "redis subscribe failed", { subject, error: String(err) }));
    }
    return () => {
      const l = map.get(key);
      const i = l?.indexOf(entry) ?? -1;
      if (i < 0) return;
      l!.splice(i, 1);
      if (l!.length > 0) return;
      map.delete(key);
      if (this.sub.status === "ready") (wild ? this.sub.punsubscribe(key) : this.sub.unsubscribe(key)).catch(() => {});
    };
  }

  /** A new subscriber connection holds nothing: every channel and pattern again. */
  async resubscribe(): Promise<void> {
    if (this.exact.size > 0) await this.sub.subscribe(...this.exact.keys());
    if (this.wild.size > 0) await this.sub.psubscribe(...this.wild.keys());
  }

  /** The listeners of a channel, if any: the broker's message handler asks this first. */
  of(channel: string): Listening[] | undefined {
    return this.exact.size > 0 ? this.exact.get(channel) : undefined;
  }

  /** A message that came by a pattern; false when the pattern is not a listener's. */
  heardByPattern(pattern: string, channel: string, msg: Uint8Array): boolean {
    const list = this.wild.get(pattern);
    if (!list) return false;
    this.heard(list, channel, msg);
    return true;
  }

  heard(list: Listening[], channel: string, msg: Uint8Array) {
    let data = msg;
    let reply = "";
    let headers = NO_HEADERS;
    if (framed(msg)) {
      const d = decodeFramed(msg);
      data = d.data;
      reply = d.headers[REPLY.toLowerCase()] ?? "";
      headers = (name) => d.headers[name.toLowerCase()] ?? null;
    }
    let queued: Listening | null = null;
    for (const l of list) {
      if (l.subject !== channel && !subjectMatches(l.subject, channel)) continue;
      if (l.queue === undefined || !reply) l.handler(channel, data, reply, headers);
      else queued ??= l;
    }
    if (!queued) return;
    const l = queued;
    this.cmd.set(`${reply}.claim`, "1", "PX", CLAIM_MS, "NX").then(
      (won) => won === "OK" && l.handler(channel, data, reply, headers),
      () => {},
    );
  }
}
