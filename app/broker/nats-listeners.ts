// The cluster's listeners on NATS (Broker.listen): each outlives the connection it was made
// on, so every new connection subscribes them all again.
import { Match } from "@nats-io/transport-node";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Listener } from "./broker.ts";

type Entry = { subject: string; handler: Listener; queue: string | undefined; sub: Subscription | null };

export class NatsListeners {
  private readonly all = new Set<Entry>();

  /** Keeps the listener and subscribes it on `nc` when connected; the function returned drops it. */
  add(subject: string, handler: Listener, queue: string | undefined, nc: NatsConnection | null): () => void {
    const l: Entry = { subject, handler, queue, sub: null };
    this.all.add(l);
    if (nc) subscribe(nc, l);
    return () => {
      this.all.delete(l);
      if (l.sub && !l.sub.isClosed()) l.sub.unsubscribe();
    };
  }

  /** A new connection: every listener subscribed on it. */
  resubscribe(nc: NatsConnection) {
    for (const l of this.all) subscribe(nc, l);
  }
}

function subscribe(nc: NatsConnection, l: Entry) {
  l.sub = nc.subscribe(l.subject, {
    queue: l.queue,
    callback: (err, msg) => {
      if (err) return;
      const h = msg.headers;
      l.handler(msg.subject, msg.data, msg.reply ?? "", (name) => h?.get(name, Match.IgnoreCase) || null);
    },
  });
}
