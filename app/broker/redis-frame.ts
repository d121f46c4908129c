// Redis pub/sub carries bytes only, no headers. Where wsgate needs headers (requests, replies,
// a forced frame type, the mailbox's sequence) a message starts with a small text block any
// service can read or write:
//   WSGATE/1\r\nWs-Frame: binary\r\nWs-Reply: ws._inbox.n1.k3.7\r\n\r\n<payload bytes>
// A message without that first line is all payload: services publish plain bytes to a user.
import type { FrameHint } from "./broker.ts";
import { parseFrameHint } from "./broker.ts";

const MAGIC = "WSGATE/1\r\n";
const MAGIC_BYTES = new TextEncoder().encode(MAGIC);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The reply channel of a request (NATS carries it outside the headers). */
export const REPLY = "Ws-Reply";

/** Whether the message carries a header block; looks at 10 bytes, allocates nothing. */
export function framed(msg: Uint8Array): boolean {
  if (msg.length < MAGIC_BYTES.length) return false;
  for (let i = 0; i < MAGIC_BYTES.length; i++) if (msg[i] !== MAGIC_BYTES[i]) return false;
  return true;
}

/** Header block and payload in one buffer; names and values must not hold CR or LF. */
export function encodeFramed(data: Uint8Array, headers: Record<string, string>): Uint8Array {
  let head = MAGIC;
  for (const k in headers) head += `${k}: ${headers[k]}\r\n`;
  const h = encoder.encode(head + "\r\n");
  const out = new Uint8Array(h.length + data.length);
  out.set(h);
  out.set(data, h.length);
  return out;
}

/** What the live path needs from a framed message, filled in place (no allocation per message). */
export type LiveScan = { seq: number; prev: number; hint: FrameHint; bodyAt: number };

const SEQ_LINE = encoder.encode("Ws-Seq: ");
const PREV_LINE = encoder.encode("Ws-Prev: ");
const FRAME_LINE = encoder.encode("Ws-Frame: ");

function startsAt(msg: Uint8Array, at: number, word: Uint8Array): boolean {
  if (at + word.length > msg.length) return false;
  for (let i = 0; i < word.length; i++) if ((msg[at + i] | 0x20) !== (word[i] | 0x20)) return false;
  return true;
}

function digits(msg: Uint8Array, at: number): number {
  let n = 0;
  for (let i = at; i < msg.length && msg[i] >= 48 && msg[i] <= 57; i++) n = n * 10 + (msg[i] - 48);
  return n;
}

/**
 * Reads Ws-Seq, Ws-Prev and Ws-Frame of a framed message (framed() true) byte by byte into
 * `out`; other headers are skipped. Returns false when the block has no end (then it is all payload).
 */
export function scanLive(msg: Uint8Array, out: LiveScan): boolean {
  out.seq = out.prev = 0;
  out.hint = undefined;
  let at = MAGIC_BYTES.length;
  while (at + 1 < msg.length) {
    if (msg[at] === 13 && msg[at + 1] === 10) {
      out.bodyAt = at + 2;
      return true;
    }
    if (startsAt(msg, at, SEQ_LINE)) out.seq = digits(msg, at + SEQ_LINE.length);
    else if (startsAt(msg, at, PREV_LINE)) out.prev = digits(msg, at + PREV_LINE.length);
    else if (startsAt(msg, at, FRAME_LINE)) {
      const v = at + FRAME_LINE.length;
      out.hint = msg[v] === 98 || msg[v] === 66 ? "binary" : msg[v] === 116 || msg[v] === 84 ? "text" : undefined;
    }
    while (at + 1 < msg.length && !(msg[at] === 13 && msg[at + 1] === 10)) at++;
    at += 2;
  }
  return false;
}

export type Decoded = { headers: Record<string, string>; data: Uint8Array };

/** Reads a framed message (framed() true); a block without its blank line is all payload. */
export function decodeFramed(msg: Uint8Array): Decoded {
  let end = -1;
  for (let i = MAGIC_BYTES.length; i + 1 < msg.length; i++) {
    if (msg[i] === 13 && msg[i + 1] === 10 && (i === MAGIC_BYTES.length || (msg[i - 2] === 13 && msg[i - 1] === 10))) {
      end = i;
      break;
    }
  }
  if (end < 0) return { headers: {}, data: msg };
  const headers: Record<string, string> = {};
  const text = decoder.decode(msg.subarray(MAGIC_BYTES.length, end));
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { headers, data: msg.subarray(end + 2) };
}

/** A header of a decoded message, by name in any case. */
export function header(d: Decoded, name: string): string | undefined {
  return d.headers[name.toLowerCase()];
}

export function hintOf(d: Decoded): FrameHint {
  return parseFrameHint(header(d, "Ws-Frame"));
}
