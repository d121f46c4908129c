import { expect, test } from "bun:test";
import { isUtf8 } from "../../app/util/utf8.ts";

test("valid UTF-8 is text, anything else is not", () => {
  const enc = new TextEncoder();
  expect(isUtf8(enc.encode("plain ascii {\"a\":1}"))).toBe(true);
  expect(isUtf8(enc.encode("ünïcödé ✓ 𝄞"))).toBe(true);
  expect(isUtf8(new Uint8Array([]))).toBe(true);
  expect(isUtf8(new Uint8Array([0xc3, 0x28]))).toBe(false);
  expect(isUtf8(new Uint8Array([0x61, 0x62, 0xff]))).toBe(false);
  expect(isUtf8(new Uint8Array([0xed, 0xa0, 0x80]))).toBe(false); // a lone surrogate
  expect(isUtf8(new Uint8Array([0xe2, 0x82]))).toBe(false); // truncated sequence
});
