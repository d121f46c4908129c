// The Redis broker's pure parts: the header block, the live scan, stream ids as numbers, REDIS_URL.
import { expect, test } from "bun:test";
import fc from "fast-check";
import { decodeFramed, encodeFramed, framed, header, type LiveScan, scanLive } from "../../app/broker/redis-frame.ts";
import { redactRedisUrl, redisSettings } from "../../app/broker/redis-options.ts";
import { idOf, seqOf } from "../../app/mailbox/redis-store.ts";
import { checkConfig } from "../../app/ops/config.ts";

const enc = new TextEncoder();

test("redis frame - a header block round-trips with any payload, and a plain message is all payload", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.constantFrom("text", "binary"), (data, frame) => {
      const msg = encodeFramed(data, { "Ws-Frame": frame, "Ws-Reply": "ws._inbox.n1.x.7" });
      expect(framed(msg)).toBe(true);
      const d = decodeFramed(msg);
      expect(header(d, "ws-frame")).toBe(frame);
      expect(header(d, "Ws-Reply")).toBe("ws._inbox.n1.x.7");
      expect([...d.data]).toEqual([...data]);
    }),
  );
  expect(framed(enc.encode("hello"))).toBe(false);
  expect(framed(enc.encode("WSGATE/2\r\n\r\nx"))).toBe(false);
});

test("redis frame - the live scan reads seq, prev and frame type without decoding, and finds the payload", () => {
  const out: LiveScan = { seq: 0, prev: 0, hint: undefined, bodyAt: 0 };
  const msg = enc.encode("WSGATE/1\r\nWs-Seq: 1764500000123042\r\nWs-Prev: 1764500000123041\r\nWs-Frame: binary\r\n\r\n\r\nbody");
  expect(scanLive(msg, out)).toBe(true);
  expect(out).toEqual({ seq: 1764500000123042, prev: 1764500000123041, hint: "binary", bodyAt: msg.length - 6 });
  expect(new TextDecoder().decode(msg.subarray(out.bodyAt))).toBe("\r\nbody");
  expect(scanLive(enc.encode("WSGATE/1\r\n\r\n"), out)).toBe(true);
  expect(out.seq).toBe(0);
  expect(scanLive(enc.encode("WSGATE/1\r\nWs-Seq: 5"), out)).toBe(false);
});

test("redis mailbox - stream ids and sequences map both ways, in order", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 9_000_000_000_000 }), fc.integer({ min: 0, max: 999 }), (ms, n) => {
      const seq = seqOf(`${ms}-${n}`);
      expect(Number.isSafeInteger(seq)).toBe(true);
      expect(idOf(seq)).toBe(`${ms}-${n}`);
      expect(seqOf(`${ms}-${n + 1 > 999 ? 999 : n}`)).toBeLessThan(seqOf(`${ms + 1}-0`));
    }),
  );
});

test("REDIS_URL - passwords hidden in logs; malformed URLs and NATS_URL beside it refused with the rule", () => {
  expect(redactRedisUrl("redis://app:s3cret@h:6379/0")).toBe("redis://app:***@h:6379/0");
  expect(redactRedisUrl("rediss://s3cret@h")).toBe("rediss://***@h");
  expect(redactRedisUrl("redis://h:6379")).toBe("redis://h:6379");
  const bad = checkConfig({ REDIS_URL: "http://x:pw@h" });
  expect(bad.errors.join("\n")).toContain('REDIS_URL="http://x:***@h" rejected: REDIS_URL must be one redis://');
  expect(bad.errors.join("\n")).not.toContain("pw");
  const both = checkConfig({ REDIS_URL: "redis://h", NATS_URL: "nats://h" });
  expect(both.errors).toContain("config: NATS_URL and REDIS_URL rejected: set one of them, not both (a gateway runs on one broker; neither set: the embedded broker)");
  const ok = checkConfig({ REDIS_URL: "redis://h", WSGATE_WORKERS: "2", PORT: "9000" });
  expect(ok.errors).toEqual([]);
  expect(ok.config?.mailbox).not.toBeNull();
  expect(checkConfig({ REDIS_URL: "redis://h", WSGATE_MAILBOX: "off" }).config?.mailbox).toBeNull();
});

test("REDIS_URL - a Sentinel URL names the Sentinels, the master and the server's credentials", () => {
  const s = redisSettings("redis-sentinel://app:p%40ss@10.0.0.1:26379,sentinel-b:26380/mymaster/2");
  expect(s.sentinel).toEqual({ sentinels: [{ host: "10.0.0.1", port: 26379 }, { host: "sentinel-b", port: 26380 }], name: "mymaster", username: "app", password: "p@ss", db: 2 });
  expect(s.redacted).toBe("redis-sentinel://app:***@10.0.0.1:26379,sentinel-b:26380/mymaster/2");
  expect(redisSettings("redis://h:1").sentinel).toBeNull();
  expect(checkConfig({ REDIS_URL: "redis-sentinel://h:26379/m" }).errors).toEqual([]);
  for (const bad of ["redis-sentinel://h/m", "redis-sentinel://h:26379", "redis://a,b"]) {
    expect(checkConfig({ REDIS_URL: bad }).errors.join("\n")).toContain("REDIS_URL must be one redis://");
  }
});
