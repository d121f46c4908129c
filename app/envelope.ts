// The wsgate.v1 envelope: JSON text frames with a `type`, selected with the
// `Sec-WebSocket-Protocol: wsgate.v1` subprotocol. Raw mode (no subprotocol) never sees these.

export const SUBPROTOCOL = "wsgate.v1";

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

export function errorFrame(code: string, message: string, id?: string): string {
  return JSON.stringify(id === undefined ? { type: "error", code, message } : { type: "error", id, code, message });
}
