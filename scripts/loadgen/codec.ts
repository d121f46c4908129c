// The client side of RFC 6455, hand-written so the load client is never the bottleneck:
// the upgrade request's key and its expected accept, masked frames out, frames in parsed
// in place from the bytes the socket handed over.

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** A frame announcing more than this is treated as a broken stream. */
const MAX_FRAME = 64 * 1024 * 1024;

// Random bytes for keys and masks, refilled in bulk.
const rnd = new Uint8Array(65536);
let rndPos = rnd.length;
function rand4(): number {
  if (rndPos + 4 > rnd.length) {
    crypto.getRandomValues(rnd);
    rndPos = 0;
  }
  rndPos += 4;
  return rndPos - 4;
}

/** A fresh Sec-WebSocket-Key. */
export function wsKey(): string {
  const a = rand4(), b = rand4(), c = rand4(), d = rand4();
  const k = new Uint8Array(16);
  k.set(rnd.subarray(a, a + 4), 0);
  k.set(rnd.subarray(b, b + 4), 4);
  k.set(rnd.subarray(c, c + 4), 8);
  k.set(rnd.subarray(d, d + 4), 12);
  return Buffer.from(k).toString("base64");
}

/** The Sec-WebSocket-Accept a server must answer `key` with. */
export function acceptFor(key: string): string {
  return new Bun.CryptoHasher("sha1").update(key + WS_GUID).digest("base64");
}

/** Where the response head ends (the first CRLFCRLF), or -1 when it has not yet. */
export function indexOfCrlf2(b: Uint8Array): number {
  for (let i = 3; i < b.length; i++) {
    if (b[i] === 10 && b[i - 1] === 13 && b[i - 2] === 10 && b[i - 3] === 13) return i - 3;
  }
  return -1;
}

/** One masked client frame. */
export function encodeFrame(op: number, payload: Uint8Array): Uint8Array {
  const len = payload.length;
  const hl = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const f = new Uint8Array(hl + 4 + len);
  f[0] = 0x80 | op;
  if (len < 126) f[1] = 0x80 | len;
  else if (len < 65536) {
    f[1] = 0x80 | 126;
    f[2] = len >>> 8;
    f[3] = len & 255;
  } else {
    f[1] = 0x80 | 127;
    const hi = Math.floor(len / 4294967296), lo = len >>> 0;
    f[2] = hi >>> 24; f[3] = (hi >>> 16) & 255; f[4] = (hi >>> 8) & 255; f[5] = hi & 255;
    f[6] = lo >>> 24; f[7] = (lo >>> 16) & 255; f[8] = (lo >>> 8) & 255; f[9] = lo & 255;
  }
  const m = rand4();
  f[hl] = rnd[m]; f[hl + 1] = rnd[m + 1]; f[hl + 2] = rnd[m + 2]; f[hl + 3] = rnd[m + 3];
  const p = hl + 4;
  for (let i = 0; i < len; i++) f[p + i] = payload[i] ^ f[hl + (i & 3)];
  return f;
}

/** Receives parsed frames; one object per worker, so parsing allocates no callbacks. */
export interface FrameSink<C> {
  /** one whole frame: first header byte, payload at d[ps, ps+len); false stops the read (the connection is gone) */
  frame(c: C, b0: number, d: Uint8Array, ps: number, len: number, t: number): boolean;
  /** a protocol error; `fatal`: the connection must be dropped */
  bad(c: C, kind: string, fatal: boolean): void;
}

/**
 * Hands every whole frame in `d` to the sink. Returns the offset of the first byte of an
 * incomplete frame (d.length when none is left over), or -1 when reading stopped.
 */
export function readFrames<C>(d: Uint8Array, sink: FrameSink<C>, c: C, t: number): number {
  const n = d.length;
  let off = 0;
  while (n - off >= 2) {
    const b0 = d[off], b1 = d[off + 1];
    let len = b1 & 127, h = 2;
    if (len === 126) {
      if (n - off < 4) break;
      len = (d[off + 2] << 8) | d[off + 3];
      h = 4;
    } else if (len === 127) {
      if (n - off < 10) break;
      len = (d[off + 2] * 16777216 + (d[off + 3] << 16) + (d[off + 4] << 8) + d[off + 5]) * 4294967296 +
        (d[off + 6] * 16777216 + (d[off + 7] << 16) + (d[off + 8] << 8) + d[off + 9]);
      h = 10;
    }
    const masked = (b1 & 128) !== 0;
    if (masked) h += 4;
    if (len > MAX_FRAME) {
      sink.bad(c, "frame_too_big", true);
      return -1;
    }
    if (n - off < h + len) break;
    const ps = off + h;
    if (masked) {
      sink.bad(c, "server_masked", false);
      for (let i = 0; i < len; i++) d[ps + i] ^= d[ps - 4 + (i & 3)];
    }
    if (!sink.frame(c, b0, d, ps, len, t)) return -1;
    off = ps + len;
  }
  return off;
}
