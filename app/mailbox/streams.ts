// How the mailbox's two streams are made and kept in shape: a new mailbox stream starts above
// every sequence an earlier one gave out, a replicated one is made to store before it takes
// users' subjects (nats-server 2.9), and a stream the cluster cannot place is refused in one
// line an operator can act on.
import { JetStreamApiCodes, JetStreamApiError, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { MailboxConfig } from "../ops/config.ts";
import { log } from "../ops/log.ts";
import { backoff } from "../util/backoff.ts";

/** Publishes tried on a new replicated stream before it counts as broken (see firstStore). */
const FIRST_STORE_ATTEMPTS = 8;

/**
 * Creates the mailbox stream or updates it. A new stream starts its sequence at the
 * microsecond it was created, above any sequence an earlier stream of that name gave out
 * (short of one storing over a million messages a second for its whole life): clients and
 * cursors that still hold such a sequence get everything the new stream keeps, instead of
 * skipping its first messages as already seen. The stream is created on a placeholder
 * subject so nothing is stored before its sequence is set; a node that dies in between
 * leaves it in that state, and the next one finishes the job.
 */
export async function ensureMailbox(jsm: JetStreamManager, js: JetStreamClient, placeholder: string, cfg: Record<string, unknown> & { name: string; subjects: string[] }) {
  // Only a stream that surely is not there is made: a timeout (no leader) is not that.
  let info = await jsm.streams.info(cfg.name).catch((err) => {
    if (isNotFound(err)) return null;
    throw err;
  });
  if (!info) info = await jsm.streams.add({ ...cfg, subjects: [placeholder] } as never);
  if (!info.config.subjects?.includes(cfg.subjects[0])) {
    // Nodes racing here all derive the same start from the stream's creation time.
    if (info.state.last_seq === 0) await jsm.streams.purge(cfg.name, { seq: createdMicros(info.created) });
    await firstStore(js, jsm, cfg.name, placeholder);
  }
  const have = info.config.num_replicas || 1;
  const want = cfg.num_replicas as number;
  if (have < want) {
    // nats-server 2.9.10 scaling up a stream whose sequence was moved by a purge (as this one's
    // is) lost messages it had acknowledged at the next leader change, and the new replicas
    // never caught up (measured). A stream made with its replicas from the start is safe.
    log("error", "the mailbox stream keeps its replica count: scaling it up in place loses messages on nats-server 2.9", {
      stream: cfg.name,
      replicas: have,
      WSGATE_MAILBOX_REPLICAS: want,
      fix: `to move to ${want} replicas, delete the stream (its kept messages are lost: nats stream rm ${cfg.name}); the gateway makes it again with ${want}`,
    });
    cfg = { ...cfg, num_replicas: have };
  }
  await jsm.streams.update(cfg.name, cfg as never);
}

/**
 * On a replicated stream (nats-server 2.9.10) the first publish after a purge to a sequence
 * fails with "expected sequence does not match store"; that failure puts every replica
 * back in step and the next publish is stored (measured, also across a leader change in
 * between). So before the stream takes users' subjects, publishes on the placeholder until
 * one is stored, then drops those: no service message is ever the one that fails.
 */
async function firstStore(js: JetStreamClient, jsm: JetStreamManager, stream: string, placeholder: string) {
  for (let attempt = 1; ; attempt++) {
    try {
      await js.publish(placeholder, new Uint8Array(0), { expect: { streamName: stream } });
      break;
    } catch (err) {
      if (attempt >= FIRST_STORE_ATTEMPTS) throw new Error(`mailbox stream ${stream} stores nothing yet: ${err}`);
      await new Promise((r) => setTimeout(r, backoff(attempt - 1)));
    }
  }
  await jsm.streams.purge(stream, { filter: placeholder });
}

/**
 * JetStream's refusal to place a stream (too many replicas for the cluster, not enough
 * storage for WSGATE_MAILBOX_MAX_BYTES on each replica) as one line an operator can act on.
 */
export async function explainPlacement(err: unknown, c: MailboxConfig, nc: NatsConnection): Promise<never> {
  const text = String(err);
  const was = `(nats: ${text.replace(/^\w*Error: /, "")})`;
  if (/non-clustered mode/i.test(text)) {
    throw new PlacementRefused(`WSGATE_MAILBOX_REPLICAS=${c.replicas} cannot be held: JetStream runs on a single NATS server, not a cluster; set WSGATE_MAILBOX_REPLICAS=1 or run three clustered servers ${was}`);
  }
  if (/insufficient storage/i.test(text)) {
    throw new PlacementRefused(`the mailbox stream cannot be placed: each of its ${c.replicas} replica(s) reserves WSGATE_MAILBOX_MAX_BYTES=${c.maxBytes} on its server, more than JetStream's max_file_store leaves free; lower WSGATE_MAILBOX_MAX_BYTES or raise max_file_store ${was}`);
  }
  if (/insufficient resources|no suitable peers/i.test(text)) {
    // The servers the client was told of: every server of the cluster that takes clients.
    const servers = new Set([...(nc.info?.connect_urls ?? []), nc.getServer()]).size;
    throw new PlacementRefused(`WSGATE_MAILBOX_REPLICAS=${c.replicas} cannot be held: the NATS cluster has ${servers} server(s) for ${c.replicas} replicas; set WSGATE_MAILBOX_REPLICAS to ${Math.min(servers, 3)} or less, or add servers ${was}`);
  }
  throw err;
}

/** The mailbox streams do not fit the NATS cluster as configured: an operator must act. */
export class PlacementRefused extends Error {}

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound;
}

/** The stream's creation time (RFC 3339 with nanoseconds) in microseconds since the epoch. */
export function createdMicros(created: string): number {
  const m = /^(.*?)(?:\.(\d+))?Z$/.exec(created);
  const ms = m ? Date.parse(`${m[1]}Z`) : NaN;
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`mailbox stream has an unreadable creation time: ${created}`);
  return ms * 1000 + Number((m![2] ?? "").padEnd(6, "0").slice(0, 6));
}

export async function upsert(jsm: JetStreamManager, cfg: Record<string, unknown>) {
  const name = cfg.name as string;
  try {
    await jsm.streams.info(name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.streams.add(cfg as never);
    return;
  }
  await jsm.streams.update(name, cfg as never);
}
