// Bun and uWebSockets.js share uWS's WebSocket code, and with it one report that differs
// from what the gateway counts on.
import { CLOSE } from "../../protocol/close-codes.ts";

/** What both say (code 1006) when they cut a client off for a frame over maxPayloadLength. */
const TOO_BIG_REASON = "Received too big message";

/**
 * The close code the gateway should see. A frame over the limit is reported as 1006 with
 * this reason text (the client itself gets 1009 on Bun, 1006 on uWS); the client was
 * closed for size, which the gateway counts as 1009.
 */
export function closeCode(code: number, reason: string | undefined): number {
  return code === 1006 && reason === TOO_BIG_REASON ? CLOSE.TOO_BIG.code : code;
}
