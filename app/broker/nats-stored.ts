// The publish API's stored publish on NATS: a JetStream publish whose answer says whether the
// mailbox stream kept the message, bounded in time, and retried only when it surely was not kept.
import { headers as natsHeaders, RequestError } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { NotStored, StoreUnconfirmed } from "./broker.ts";
import { backoff } from "../util/backoff.ts";

/**
 * How long a stored publish waits for the stream, retries included. A stream whose leader
 * died has none for 4-8 s on nats-server 2.9 (three-node cluster, measured): the caller
 * hears "not stored, retry" within this bound instead of hanging through the election.
 */
const STORED_ACK_MS = 5_000;
const STORED_RETRY = { minMs: 100, maxMs: 1_000 };
const ackDecoder = new TextDecoder();

/** A one-shot signal: `promise` resolves to null once fire() is called. */
export type DownSignal = { promise: Promise<null>; fire: () => void };

export function downSignal(): DownSignal {
  let fire!: () => void;
  const promise = new Promise<null>((r) => (fire = () => r(null)));
  return { promise, fire };
}

/**
 * Resolves once the stream acknowledged the message (stored on a quorum of its replicas).
 * `connection()` gives the current connection and the signal of its loss, read again on each
 * attempt (a reconnect brings a new signal).
 */
export async function publishStored(
  connection: () => { nc: NatsConnection | null; down: DownSignal },
  subject: string,
  data: Uint8Array,
  hdrs?: Record<string, string>,
  msgId?: string,
): Promise<void> {
  let h: ReturnType<typeof natsHeaders> | undefined;
  if (hdrs || msgId) {
    h = natsHeaders();
    for (const k in hdrs) h.set(k, hdrs[k]);
    if (msgId) h.set("Nats-Msg-Id", msgId);
  }
  const deadline = Date.now() + STORED_ACK_MS;
  for (let attempt = 0; ; attempt++) {
    const { nc, down } = connection();
    if (!nc) throw new NotStored("nats is not connected");
    let why: string;
    try {
      // A request sent on a connection that then drops gets no answer (nor a timeout
      // until the deadline): what happened to it is unknown at once.
      const m = await Promise.race([nc.request(subject, data, { timeout: Math.max(1, deadline - Date.now()), headers: h }), down.promise]);
      if (!m) throw new StoreUnconfirmed("the NATS connection dropped before the stream answered");
      const ack = JSON.parse(ackDecoder.decode(m.data)) as { stream?: string; error?: { description?: string } };
      if (ack.stream && !ack.error) return;
      why = ack.error?.description ?? "the stream gave no acknowledgement";
    } catch (err) {
      if (err instanceof StoreUnconfirmed) throw err;
      // Only "nobody listens on the subject" proves the message went nowhere: while a
      // replicated stream has no leader, no server takes its subjects. Anything else
      // (a timeout, a lost connection) leaves the message's fate unknown.
      if (!(err instanceof RequestError && err.isNoResponders())) throw new StoreUnconfirmed(`no acknowledgement from the stream: ${err}`);
      why = "no stream takes the subject right now (no leader, or the mailbox stream is missing)";
    }
    const wait = backoff(attempt, STORED_RETRY);
    if (Date.now() + wait >= deadline) throw new NotStored(why);
    await new Promise((r) => setTimeout(r, wait));
  }
}
