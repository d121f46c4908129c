// Reading an open connection: frames in, messages counted (with their latency when they
// carry a timestamp), pings answered, the close handshake completed.
import { leadingTimestampMs } from "../timestamp.ts";
import { encodeFrame, type FrameSink, readFrames } from "./codec.ts";
import { type Conn, S_CLOSING, S_OPEN, withCarry, write } from "./conn.ts";
import type { Recorder } from "./recorder.ts";

export class Reader implements FrameSink<Conn> {
  constructor(
    private readonly rec: Recorder,
    private readonly countTo: number,
  ) {}

  frames(c: Conn, chunk: Uint8Array, t: number) {
    const d = withCarry(c, chunk);
    const off = readFrames(d, this, c, t);
    if (off >= 0 && off < d.length) c.buf = d.slice(off);
  }

  bad(c: Conn, kind: string, fatal: boolean) {
    this.rec.err(kind);
    if (fatal) c.sock?.terminate();
  }

  frame(c: Conn, b0: number, d: Uint8Array, ps: number, len: number, t: number): boolean {
    const op = b0 & 15;
    const fin = (b0 & 128) !== 0;
    switch (op) {
      case 1:
      case 2:
        if (c.fragOp) this.rec.err("protocol_interleaved");
        if (fin) this.message(c, len, leadingTimestampMs(d, ps, len), t);
        else {
          c.fragOp = op;
          c.fragLen = len;
          c.fragTs = leadingTimestampMs(d, ps, len);
        }
        break;
      case 0:
        if (!c.fragOp) {
          this.rec.err("protocol_continuation");
          break;
        }
        c.fragLen += len;
        if (fin) {
          this.message(c, c.fragLen, c.fragTs, t);
          c.fragOp = 0;
        }
        break;
      case 8: {
        const code = len >= 2 ? (d[ps] << 8) | d[ps + 1] : 1005;
        if (c.st === S_OPEN) {
          c.closeCode = code;
          c.st = S_CLOSING;
          const echo = new Uint8Array(code === 1005 ? 0 : 2);
          if (echo.length) {
            echo[0] = code >> 8;
            echo[1] = code & 255;
          }
          write(c, encodeFrame(8, echo));
        } else {
          // the server's answer to our close: the TCP close is ours to finish
          c.sock?.end();
        }
        break;
      }
      case 9:
        this.rec.ph.pings++;
        write(c, encodeFrame(10, d.slice(ps, ps + len)));
        break;
      case 10:
        break;
      default:
        this.rec.err("protocol_opcode");
    }
    return c.sock !== null;
  }

  private message(c: Conn, len: number, ts: number, t: number) {
    this.rec.message(this.countTo > 0 ? ++c.got : 0, c.tStart, len, ts, t);
  }
}
