// One load-client connection: its state, its socket and the bytes carried between reads.
import type { Socket } from "bun";

export const S_IDLE = 0,
  S_CONNECTING = 1,
  S_HANDSHAKE = 2,
  S_OPEN = 3,
  S_CLOSING = 4,
  S_CLOSED = 5,
  S_DEAD = 6;

/** Unsent bytes kept per connection; past it a write is refused (counted as skipped). */
const MAX_OUT = 1 << 20;

export class Conn {
  sock: Socket<Conn> | null = null;
  st = S_IDLE;
  gen = 0;
  tries = 0;
  t0 = 0;
  buf: Uint8Array | null = null;
  out: Uint8Array | null = null;
  key = "";
  fragOp = 0;
  fragLen = 0;
  fragTs = -1;
  closeCode = 0;
  dropAt = 0;
  /** --count-to: data messages in this session, and when the session's first attempt started */
  got = 0;
  tStart = 0;
  everOpen = false;
  /** send mode: frames this connection sent, numbered 1, 2, 3... in each payload (send.ts) */
  seq = 0;
  constructor(
    readonly idx: number,
    readonly user: string,
    readonly src: string | null,
  ) {}
}

/** Writes bytes, keeping what the kernel did not take for the drain callback. */
export function write(c: Conn, data: Uint8Array): boolean {
  const s = c.sock;
  if (!s) return false;
  if (c.out) {
    if (c.out.length + data.length > MAX_OUT) return false;
    const o = new Uint8Array(c.out.length + data.length);
    o.set(c.out);
    o.set(data, c.out.length);
    c.out = o;
    return true;
  }
  const n = s.write(data);
  if (n < 0) return false;
  if (n < data.length) c.out = data.slice(n);
  return true;
}

/** The bytes left over from the last read of this connection, followed by `chunk`. */
export function withCarry(c: Conn, chunk: Uint8Array): Uint8Array {
  if (!c.buf) return chunk;
  const b = new Uint8Array(c.buf.length + chunk.length);
  b.set(c.buf);
  b.set(chunk, c.buf.length);
  c.buf = null;
  return b;
}
