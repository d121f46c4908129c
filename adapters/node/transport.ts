// uWebSockets.js sockets as the gateway's transport, with uWS's send result mapped to
// the gateway's.
import type { WebSocket } from "@btc-vision/uwebsockets.js";
import type { Conn, Transport } from "../../app/startup.ts";
import { processStats } from "../process-stats.ts";

/** uWS copies these properties onto the socket object, so keep exactly one. */
export type Data = { conn: Conn };
export type WS = Pick<WebSocket<Data>, "send" | "end" | "close" | "getBufferedAmount">;

/** uWS's send result (1 sent, 0 queued behind backpressure, 2 dropped) as the gateway's (1, -1, 0). */
export function sendStatus(r: number): number {
  return r === 1 ? 1 : r === 0 ? -1 : 0;
}

// conn.ws is null once closed: uWS throws on any call on a closed socket.
export const uwsTransport: Transport<WS | null> = {
  runtime: "node",
  textAsString: false,
  send: (ws, data, text) => (ws === null ? 0 : sendStatus(ws.send(data as Uint8Array, !text))),
  close(ws, code, reason) {
    if (ws !== null) ws.end(code, reason);
  },
  buffered: (ws) => (ws === null ? 0 : ws.getBufferedAmount()),
  terminate(ws) {
    if (ws !== null) ws.close();
  },
  processStats,
  afterEvents: (fn) => void setImmediate(fn),
};
