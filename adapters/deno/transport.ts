// Deno's web-standard WebSocket as the gateway's transport.
import type { Transport } from "../../app/startup.ts";
import { processStats } from "../process-stats.ts";

export type DenoSocket = Pick<WebSocket, "readyState" | "send" | "close" | "bufferedAmount">;

/**
 * `backpressureBytes`: Deno's send never refuses, so past this much unsent data a frame is
 * reported as queued behind backpressure. `abort` drops a socket without a close handshake.
 */
export function denoTransport(backpressureBytes: number, abort: (ws: DenoSocket) => boolean): Transport<DenoSocket> {
  const transport: Transport<DenoSocket> = {
    runtime: "deno",
    textAsString: true,
    send(ws, data) {
      // send() on a closing socket is silently discarded; report it as the drop it is.
      if (ws.readyState !== WebSocket.OPEN) return 0;
      ws.send(data as string | Uint8Array<ArrayBuffer>);
      return ws.bufferedAmount > backpressureBytes ? -1 : 1;
    },
    close(ws, code, reason) {
      if (ws.readyState >= WebSocket.CLOSING) return;
      try {
        ws.close(code, reason);
      } catch {
        // Already gone (the peer closed between the check and here): nothing to send.
      }
    },
    buffered: (ws) => ws.bufferedAmount,
    terminate(ws) {
      if (!abort(ws)) transport.close(ws, 1008, "closing");
    },
    processStats,
    afterEvents: (fn) => void setImmediate(fn),
  };
  return transport;
}

/**
 * Deno has no public call that drops a server WebSocket: close() queues its close frame
 * behind every unsent frame, and a peer that stopped reading never lets those drain, so
 * the socket and its buffer would live as long as the TCP connection. Closing the
 * socket's resource is what Deno's own event loop does to a peer that breaks the close
 * handshake; onclose then fires as usual. False without the internal handle (a later Deno
 * may not have it): the caller falls back to close().
 */
export function abortDenoSocket(ws: DenoSocket): boolean {
  const deno = (globalThis as unknown as { Deno?: Record<symbol, { core?: { tryClose?(rid: number): void } }> & { internal: symbol } }).Deno;
  const core = deno?.[deno.internal]?.core;
  const ridKey = Object.getOwnPropertySymbols(ws).find((s) => s.description === "[[rid]]");
  const rid = ridKey ? (ws as unknown as Record<symbol, unknown>)[ridKey] : undefined;
  if (typeof rid !== "number" || typeof core?.tryClose !== "function") return false;
  core.tryClose(rid);
  return true;
}
