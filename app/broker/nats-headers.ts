// The live path's reader of a NATS header block: the mailbox's sequences and the frame
// hint, straight from the bytes, so no header object is built per delivered message.
import type { FrameHint } from "./broker.ts";
import { HEADER } from "./broker.ts";

/** What the live path reads from a message's headers; one object, filled again for each message. */
export type HeaderScan = { seq: number; prev: number; hint: FrameHint };

const NATS_SEQUENCE = ascii("nats-sequence");
const NATS_LAST_SEQUENCE = ascii("nats-last-sequence");
const WS_FRAME = ascii(HEADER.frame.toLowerCase());
const TEXT = ascii("text");
const BINARY = ascii("binary");

function ascii(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/**
 * Reads Nats-Sequence, Nats-Last-Sequence and Ws-Frame from the first `end` bytes of a NATS
 * header block ("NATS/1.0\r\nName: value\r\n...\r\n"), allocating nothing. Names match
 * ignoring ASCII case, values are trimmed. For the sequences the last occurrence counts:
 * JetStream appends its own after whatever headers the publisher sent, so a publisher's
 * `Nats-Sequence` cannot stand in for the stream's. A sequence that is not a plain decimal
 * number reads as 0 (not a mailbox message).
 */
export function scanHeaders(b: Uint8Array, end: number, out: HeaderScan): void {
  out.seq = 0;
  out.prev = 0;
  out.hint = undefined;
  let hintSeen = false;
  let i = b.indexOf(10); // past the status line
  if (i < 0 || i >= end) return;
  i++;
  while (i < end) {
    const start = i;
    let colon = -1;
    while (i < end && b[i] !== 10) {
      if (colon < 0 && b[i] === 58) colon = i;
      i++;
    }
    const lineEnd = i > start && b[i - 1] === 13 ? i - 1 : i;
    i++;
    if (colon <= start) continue;
    let v = colon + 1;
    let ve = lineEnd;
    while (v < ve && (b[v] === 32 || b[v] === 9)) v++;
    while (ve > v && (b[ve - 1] === 32 || b[ve - 1] === 9)) ve--;
    if (nameIs(b, start, colon, NATS_SEQUENCE)) out.seq = decimal(b, v, ve);
    else if (nameIs(b, start, colon, NATS_LAST_SEQUENCE)) out.prev = decimal(b, v, ve);
    else if (!hintSeen && nameIs(b, start, colon, WS_FRAME)) {
      hintSeen = true;
      out.hint = nameIs(b, v, ve, TEXT) ? "text" : nameIs(b, v, ve, BINARY) ? "binary" : undefined;
    }
  }
}

/** Whether b[from, to) equals the lower-case ASCII `name`, ignoring ASCII case. */
function nameIs(b: Uint8Array, from: number, to: number, name: Uint8Array): boolean {
  if (to - from !== name.length) return false;
  for (let k = 0; k < name.length; k++) {
    let c = b[from + k];
    if (c >= 65 && c <= 90) c |= 32;
    if (c !== name[k]) return false;
  }
  return true;
}

/** b[from, to) as a non-negative decimal integer; 0 when empty, not all digits, or beyond 2^53. */
function decimal(b: Uint8Array, from: number, to: number): number {
  if (from === to || to - from > 16) return 0;
  let n = 0;
  for (let k = from; k < to; k++) {
    const d = b[k] - 48;
    if (d < 0 || d > 9) return 0;
    n = n * 10 + d;
  }
  return Number.isSafeInteger(n) ? n : 0;
}
