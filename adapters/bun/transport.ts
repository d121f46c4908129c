// Bun's native WebSockets as the gateway's transport: the send result is already the
// gateway's (>0 sent, -1 queued behind backpressure, 0 dropped).
import type { ServerWebSocket } from "bun";
import type { Conn, Transport } from "../../app/startup.ts";
import { processStats } from "../process-stats.ts";

export type BunSocket = Pick<ServerWebSocket<Conn>, "sendText" | "sendBinary" | "close" | "getBufferedAmount" | "terminate">;

/** A full collection, then the freed memory handed back to the system (JSC and the allocator keep it otherwise). */
function collectAndShrink() {
  Bun.gc(true);
  Bun.shrink();
}

export function bunTransport(gc: () => void = collectAndShrink): Transport<BunSocket> {
  return {
    runtime: "bun",
    textAsString: true,
    send: (ws, data, text) => (text ? ws.sendText(data as string) : ws.sendBinary(data as Uint8Array)),
    collectGarbage: gc,
    afterEvents: (fn) => void setImmediate(fn),
    processStats,
    close: (ws, code, reason) => ws.close(code, reason),
    buffered: (ws) => ws.getBufferedAmount(),
    terminate: (ws) => ws.terminate(),
  };
}
