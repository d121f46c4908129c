// The wsgate.v1 envelope: JSON text frames with a `type`, selected with the
// `Sec-WebSocket-Protocol: wsgate.v1` subprotocol. Raw mode (no subprotocol) never sees these.
import * as v from "valibot";
import { ID_PATTERN, idError } from "../../protocol/ids.ts";
import { type ClientFrame, FRAME_ID_PATTERN } from "../../protocol/envelope.ts";

export { SUBPROTOCOL } from "../../protocol/envelope.ts";
export type { ClientFrame } from "../../protocol/envelope.ts";

const utf8 = new TextDecoder();

/** Base64 without a per-byte string spread (payloads reach 1 MiB). */
export function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000) as unknown as number[]);
  return btoa(s);
}

/** A service's message for the client; `seq` only when it came through the mailbox stream. */
export function messageFrame(data: Uint8Array, text: boolean, seq: number): string {
  const body = text ? `"data":${JSON.stringify(utf8.decode(data))}` : `"data":"${toBase64(data)}","encoding":"base64"`;
  return seq > 0 ? `{"type":"message",${body},"seq":${seq}}` : `{"type":"message",${body}}`;
}

/** The first frame on every envelope socket: its cluster-wide connection id and its node (ids need no escaping). */
export function helloFrame(conn: string, node: string): string {
  return `{"type":"hello","conn":"${conn}","node":"${node}"}`;
}

export function errorFrame(code: string, message: string, id?: string): string {
  return JSON.stringify(id === undefined ? { type: "error", code, message } : { type: "error", id, code, message });
}

// ---- Client → server frames ---------------------------------------------------------


const id = v.pipe(v.string("id must be a string"), v.regex(FRAME_ID_PATTERN, "id must be 1 to 64 printable ASCII characters without spaces"));
const data = v.optional(v.string("data must be a string (text, or base64 with \"encoding\":\"base64\")"), "");
const encoding = v.optional(v.literal("base64", 'encoding must be "base64" when given'));

export const ClientFrameSchema = v.variant(
  "type",
  [
    v.object({ type: v.literal("message"), data, encoding }),
    v.object({
      type: v.literal("request"),
      id,
      method: v.pipe(v.string("method must be a string"), v.regex(ID_PATTERN, idError("method"))),
      data,
      encoding,
      /** ms the client waits; the gateway uses the smaller of this and WSGATE_CALL_TIMEOUT_MS */
      timeout: v.optional(v.pipe(v.number("timeout must be a number"), v.safeInteger("timeout must be whole milliseconds"), v.minValue(1, "timeout must be at least 1"))),
    }),
    v.object({ type: v.literal("reply"), id, data, encoding }),
    /** the client's handler failed: the requester gets the code instead of waiting for its timeout */
    v.object({
      type: v.literal("error"),
      id,
      code: v.optional(v.pipe(v.string("code must be a string"), v.regex(ID_PATTERN, idError("code"))), "client_error"),
      message: v.optional(v.pipe(v.string("message must be a string"), v.maxLength(1024, "message must be at most 1024 characters")), ""),
    }),
    v.object({
      type: v.literal("resume"),
      after: v.optional(v.pipe(v.number("after must be a number"), v.safeInteger("after must be a whole number"), v.minValue(0, "after must not be negative"))),
    }),
  ],
  'type must be one of "message", "request", "reply", "error", "resume"',
);

// The schema accepts the frames protocol/envelope.ts describes, no more and no less: a frame
// type, a field or a field's type that differs between the two fails the type check here.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Variant<U, T> = Extract<U, { type: T }>;
type VariantsMatch<A extends { type: string }, B extends { type: string }> = {
  [T in A["type"] | B["type"]]: Same<Variant<A, T>, Variant<B, T>> extends true ? Same<keyof Variant<A, T>, keyof Variant<B, T>> : false;
}[A["type"] | B["type"]];
const schemaMatchesProtocol: false extends VariantsMatch<v.InferInput<typeof ClientFrameSchema>, ClientFrame> ? never : true = true;
void schemaMatchesProtocol;

/** What the parser hands on: defaults filled in (`data` "", an error's `code` and `message`). */
export type ParsedFrame = v.InferOutput<typeof ClientFrameSchema>;
export type BadFrame = { bad: string; id?: string };

/** A client's text frame as a checked envelope, or why it is not one (with its id when readable). */
export function parseClientFrame(text: string): ParsedFrame | BadFrame {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { bad: "frame is not JSON (wsgate.v1 frames are JSON objects with a type)" };
  }
  const r = v.safeParse(ClientFrameSchema, json);
  if (r.success) return r.output;
  const issue = r.issues[0];
  const maybeId = typeof json === "object" && json !== null ? (json as { id?: unknown }).id : undefined;
  const key = issue.path?.[issue.path.length - 1]?.key;
  const message =
    typeof json !== "object" || json === null || Array.isArray(json)
      ? "frame must be a JSON object with a type"
      : issue.received === "undefined" && typeof key === "string"
        ? `${key} is required`
        : issue.message;
  return typeof maybeId === "string" && FRAME_ID_PATTERN.test(maybeId) ? { bad: message, id: maybeId } : { bad: message };
}

/** The bytes a frame's `data` carries; null when base64 was announced but the text is not base64. */
export function frameBytes(f: { data: string; encoding?: "base64" }): Uint8Array | null {
  if (f.encoding !== "base64") return utf8Encoder.encode(f.data);
  let bin: string;
  try {
    bin = atob(f.data);
  } catch {
    return null;
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const utf8Encoder = new TextEncoder();

// ---- Server → client frames with an id --------------------------------------------

/** `request` (a service asks the client) or `reply` (a service answered the client's call). */
export function idFrame(type: "request" | "reply", frameId: string, data: Uint8Array, text: boolean): string {
  const body = text ? `"data":${JSON.stringify(utf8.decode(data))}` : `"data":"${toBase64(data)}","encoding":"base64"`;
  return `{"type":"${type}","id":${JSON.stringify(frameId)},${body}}`;
}
