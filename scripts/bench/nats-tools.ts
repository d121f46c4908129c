// Reading and filling NATS for the benchmarks: JetStream stream counts and purges, publishing
// to many users, nats-server's own /varz, waiting for it to go quiet.
import { type Nats, sleep } from "./base.ts";

/** Empties a JetStream stream (the gateway's mailbox) so a run starts below every per-user cap. */
export async function purgeStream(natsUrl: string, stream: string): Promise<number> {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: natsUrl.split(","), name: "wsgate-bench-admin" });
  try {
    const jsm = await jetstreamManager(nc);
    const r = await jsm.streams.purge(stream);
    return r.purged;
  } finally {
    await nc.close();
  }
}

/**
 * Publishes `perUser` messages to each of `users` (core publishes on <prefix>.recv.<svc>.<user>,
 * as a service would), round by round, at most `window` at a time ahead of what the mailbox
 * stream has stored, so nothing is dropped on the way in. With a stream name it waits until
 * the stream holds them all; returns how many messages the stream gained.
 */
export async function publishToUsers(
  natsUrl: string,
  o: { prefix: string; svc: string; users: string[]; perUser: number; size: number; stream?: string; window?: number; tag?: string },
): Promise<{ published: number; stored: number; seconds: number }> {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: natsUrl.split(","), name: "wsgate-bench-backlog" });
  const t0 = performance.now();
  try {
    const jsm = o.stream ? await jetstreamManager(nc) : null;
    const count = async () => (jsm ? Number((await jsm.streams.info(o.stream!)).state.messages) : 0);
    const base = await count();
    const window = o.window ?? 20_000;
    const subjects = o.users.map((u) => `${o.prefix}.recv.${o.svc}.${u}`);
    const tag = o.tag ?? "m";
    let published = 0;
    for (let r = 0; r < o.perUser; r++) {
      for (let i = 0; i < subjects.length; i++) {
        const head = `${tag}${r} `;
        nc.publish(subjects[i], head + "x".repeat(Math.max(0, o.size - head.length)));
        published++;
        if (jsm && published % window === 0) {
          await nc.flush();
          const until = Date.now() + 30_000;
          while ((await count()) - base < published - window && Date.now() < until) await sleep(10);
        }
      }
    }
    await nc.flush();
    let stored = 0;
    if (jsm) {
      const until = Date.now() + 30_000;
      while ((stored = (await count()) - base) < published && Date.now() < until) await sleep(20);
    }
    return { published, stored, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await nc.close();
  }
}

/** nats-server's own view: /varz (cpu %, mem, in/out msgs) from its monitoring port. */
export async function natsVarz(nats: Nats): Promise<{ in_msgs: number; out_msgs: number; mem: number; slow_consumers: number }> {
  const r = await fetch(`http://127.0.0.1:${nats.monitorPort}/varz`);
  return (await r.json()) as never;
}

/** Messages a JetStream stream holds now (NaN when it does not exist). */
export async function streamMessages(natsUrl: string, stream: string): Promise<number> {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: natsUrl.split(","), name: "wsgate-bench-admin" });
  try {
    const jsm = await jetstreamManager(nc);
    return Number((await jsm.streams.info(stream)).state.messages);
  } catch {
    return NaN;
  } finally {
    await nc.close();
  }
}

/** Waits until nats-server's in_msgs stop moving for `quietMs` (bounded by `ms`): a burst has drained. */
export async function natsQuiet(nats: Nats, quietMs = 500, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  let last = -1;
  let since = Date.now();
  while (Date.now() < until) {
    const v = await natsVarz(nats).catch(() => null);
    const n = v ? v.in_msgs + v.out_msgs : -1;
    if (n !== last) {
      last = n;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return;
    await sleep(100);
  }
}
