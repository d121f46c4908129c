// What the service API's routes read from a request, checked the same way on every route:
// the path's ids, the Ws-Frame header, and the body under one size limit.
import type { Context } from "hono";
import { type FrameHint, HEADER } from "../broker/broker.ts";
import { idError, isId } from "../../protocol/ids.ts";

/** NATS's default max_payload: the broker would refuse a larger message. Adapters that read bodies themselves use it too. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** The 400 response for the first path parameter that is not a valid id, or null when all are. */
export function badIds(c: Context, params: Record<string, string>): Response | null {
  for (const [part, value] of Object.entries(params)) if (!isId(value)) return c.json({ error: idError(part) }, 400);
  return null;
}

/** The Ws-Frame header a caller may set (text or binary), or the 400 response for any other value. */
export function frameHeader(c: Context): FrameHint | Response {
  const frame = c.req.header(HEADER.frame);
  if (frame === undefined || frame === "text" || frame === "binary") return frame;
  return c.json({ error: `${HEADER.frame} must be text or binary` }, 400);
}

/**
 * The request body, or the 413 response when it is over MAX_BODY_BYTES. A declared length
 * is refused before reading; a chunked body declares none and is measured once read.
 */
export async function readBody(c: Context): Promise<Uint8Array | Response> {
  const tooLarge = () => c.json({ error: `body over ${MAX_BODY_BYTES} bytes` }, 413);
  if (Number(c.req.header("content-length") ?? 0) > MAX_BODY_BYTES) return tooLarge();
  const body = new Uint8Array(await c.req.arrayBuffer());
  return body.length > MAX_BODY_BYTES ? tooLarge() : body;
}
