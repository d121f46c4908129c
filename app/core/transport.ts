// What a runtime adapter gives the core to write to and close its native sockets, and the
// one counted send every framed write to a single socket goes through.
import type { Metrics, ProcessStats } from "../ops/metrics.ts";

/** Send outcome as the runtimes report it: >0 sent, -1 queued behind backpressure, 0 dropped. */
export type SendStatus = number;

export interface Transport<WS = any> {
  readonly runtime: "bun" | "node" | "deno";
  /** The runtime can only send a text frame from a string (Bun's sendText, Deno). */
  readonly textAsString: boolean;
  send(ws: WS, data: Uint8Array | string, text: boolean): SendStatus;
  close(ws: WS, code: number, reason: string): void;
  /** Unsent bytes queued on the socket; without it slow consumers cannot be detected. */
  buffered?(ws: WS): number;
  /** Drops the socket at once, no close handshake: the peer never answered one. */
  terminate?(ws: WS): void;
  /**
   * Runs `fn` once the socket events the runtime read in this turn of its event loop are
   * handled (setImmediate). The broker batches client frames until then: microtasks run after
   * every single socket event, which would mean one write to NATS per frame.
   */
  afterEvents?(fn: () => void): void;
  /** Asks the runtime to collect garbage soon (after a burst of catch-ups, see mailbox/delivery.ts). */
  collectGarbage?(): void;
  /** Memory, CPU and descriptors of this process for /metrics (the adapter reads the OS). */
  processStats?(): ProcessStats;
  /** The runtime's own topics (Bun, uWS): a group message reaches all its local sockets in one native call. Without it the groups module loops. */
  readonly topics?: Topics<WS>;
}

/** Optional transport capability: the runtime's publish/subscribe over its own sockets (app/groups/fanout.ts). */
export interface Topics<WS = any> {
  join(ws: WS, topic: string): void;
  /** Also called for a socket that is closing; must then do nothing harmful. */
  leave(ws: WS, topic: string): void;
  /** One frame to every socket joined to `topic` on this node; `data` is a string for text frames when the runtime wants one. */
  publishLocal(topic: string, data: Uint8Array | string, text: boolean): void;
}

/** Sends one text frame to one socket and counts it (`bytes`: the payload size the metrics report). */
export function sendCounted(transport: Transport, metrics: Metrics, ws: unknown, frame: string, bytes: number): void {
  const status = transport.send(ws, frame, true);
  if (status === 0) {
    metrics.dropped++;
    return;
  }
  metrics.messagesOut++;
  metrics.bytesOut += bytes;
  if (status < 0) metrics.backpressure++;
}
