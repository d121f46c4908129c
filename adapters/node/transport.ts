// uWebSockets.js sockets as the gateway's transport, and the two places where uWS's
// own reports differ from what the gateway counts on.
import type { WebSocket } from "@btc-vision/uwebsockets.js";
import type { Conn, Transport } from "../../app/startup.ts";
import { CLOSE } from "../../protocol/close-codes.ts";

/** uWS copies these properties onto the socket object, so keep exactly one. */
export type Data = { conn: Conn };
export type WS = Pick<WebSocket<Data>, "send" | "end" | "close" | "getBufferedAmount">;

/** uWS's send result (1 sent, 0 queued behind backpressure, 2 dropped) as the gateway's (1, -1, 0). */
export function sendStatus(r: number): number {
  return r === 1 ? 1 : r === 0 ? -1 : 0;
}

/** What uWS says (code 1006) when it cut a client off for a frame over maxPayloadLength. */
const TOO_BIG_REASON = "Received too big message";

/**
 * The close code the gateway should see. uWS reports a frame over its limit as 1006 with
 * its own reason text; the client was closed for size, which the gateway counts as 1009.
 */
export function closeCode(code: number, reason: string | undefined): number {
  return code === 1006 && reason === TOO_BIG_REASON ? CLOSE.TOO_BIG.code : code;
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
};
