import { describe, expect, test } from "bun:test";
import { headers as natsHeaders, Match } from "@nats-io/transport-node";
import { type HeaderScan, scanHeaders } from "../../app/broker/nats-headers.ts";
import { parseFrameHint } from "../../app/broker/broker.ts";

const enc = new TextEncoder();
function scan(block: string, payload = "payload"): HeaderScan {
  const b = enc.encode(block + payload);
  const out: HeaderScan = { seq: -1, prev: -1, hint: "text" };
  scanHeaders(b, b.length - payload.length, out);
  return out;
}

describe("scanHeaders (the live path's header reader)", () => {
  test("a message republished by JetStream (nats-server 2.9.10, as captured)", () => {
    expect(scan("NATS/1.0\r\nNats-Stream: WSGATE\r\nNats-Subject: ws.recv.s1.u1\r\nNats-Sequence: 1234\r\nNats-Last-Sequence: 1200\r\n\r\n")).toEqual({ seq: 1234, prev: 1200, hint: undefined });
  });

  test("the stream's sequences win over a publisher's own Nats-Sequence headers (the server appends)", () => {
    const block = "NATS/1.0\r\nws-frame: Binary\r\nX-Other: v\r\nNats-Sequence: 999\r\nNats-Last-Sequence: 998\r\nNats-Stream: T\r\nNats-Subject: ws.recv.s1.u1\r\nNats-Sequence: 2\r\nNats-Last-Sequence: 1\r\n\r\n";
    expect(scan(block)).toEqual({ seq: 2, prev: 1, hint: "binary" });
  });

  test("Ws-Frame in any case, trimmed; unknown values give no hint", () => {
    expect(scan("NATS/1.0\r\nWS-FRAME:   TeXt  \r\n\r\n").hint).toBe("text");
    expect(scan("NATS/1.0\r\nws-frame:binary\r\n\r\n").hint).toBe("binary");
    expect(scan("NATS/1.0\r\nWs-Frame: json\r\n\r\n").hint).toBeUndefined();
    expect(scan("NATS/1.0\r\nWs-Frames: text\r\nX-Ws-Frame: text\r\n\r\n").hint).toBeUndefined();
  });

  test("no sequence, malformed or oversized numbers read as 0; odd lines are skipped", () => {
    expect(scan("NATS/1.0\r\n\r\n")).toEqual({ seq: 0, prev: 0, hint: undefined });
    expect(scan("NATS/1.0 503\r\n\r\n")).toEqual({ seq: 0, prev: 0, hint: undefined });
    expect(scan("NATS/1.0\r\nNats-Sequence: 12a\r\nNats-Last-Sequence: -1\r\n\r\n")).toEqual({ seq: 0, prev: 0, hint: undefined });
    expect(scan("NATS/1.0\r\nNats-Sequence: 99999999999999999\r\n\r\n").seq).toBe(0);
    expect(scan("NATS/1.0\r\nno colon here\r\n: empty name\r\nNats-Sequence:7\r\n\r\n").seq).toBe(7);
    expect(scan("NATS/1.0\nNats-Sequence: 8\nNats-Last-Sequence: 5\n\n")).toEqual({ seq: 8, prev: 5, hint: undefined });
  });

  test("stops at the header block's end: a payload that looks like headers is not read", () => {
    const block = "NATS/1.0\r\nNats-Sequence: 3\r\n\r\n";
    expect(scan(block, "\r\nNats-Sequence: 4\r\nWs-Frame: binary\r\n").seq).toBe(3);
    expect(scan(block, "\r\nWs-Frame: binary\r\n").hint).toBeUndefined();
  });

  test("agrees with nats.js's own header parsing on generated blocks", () => {
    const names = ["Nats-Sequence", "nats-sequence", "Nats-Last-Sequence", "Ws-Frame", "ws-frame", "X-A", "Nats-Stream"];
    const values = ["0", "1", "42", "9007199254740991", "text", "binary", "Text", " x ", "abc"];
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    for (let round = 0; round < 500; round++) {
      const h = natsHeaders();
      for (let k = rnd(6); k > 0; k--) h.append(names[rnd(names.length)], values[rnd(values.length)]);
      // written out in the order nats.js keeps them (grouped by name), as it would send them
      let block = "NATS/1.0\r\n";
      for (const name of h.keys()) for (const value of h.values(name)) block += `${name}: ${value}\r\n`;
      const bytes = enc.encode(block + "\r\n");
      const out: HeaderScan = { seq: -1, prev: -1, hint: undefined };
      scanHeaders(bytes, bytes.length, out);
      const lastNum = (name: string) => {
        const vals = h.values(name, Match.IgnoreCase);
        const v = vals.length ? vals[vals.length - 1] : "";
        return /^\d+$/.test(v) && Number.isSafeInteger(Number(v)) ? Number(v) : 0;
      };
      expect(out.seq).toBe(lastNum("Nats-Sequence"));
      expect(out.prev).toBe(lastNum("Nats-Last-Sequence"));
      expect(out.hint).toBe(parseFrameHint(h.get("Ws-Frame", Match.IgnoreCase)));
    }
  });
});
