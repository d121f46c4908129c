// The gateway measures short text frames without encoding them (gateway.message): the size
// limit and wsgate_bytes_in_total must see the same byte count TextEncoder would send.
import { expect, test } from "bun:test";
import fc from "fast-check";
import { utf8Length } from "../../app/util/utf8.ts";

const encoded = (s: string) => new TextEncoder().encode(s).length;

test("utf8Length equals the encoded length for any string, lone surrogates included", () => {
  fc.assert(fc.property(fc.string({ unit: "binary" }), (s) => utf8Length(s) === encoded(s)), { numRuns: 2000 });
  for (const s of ["", "a", "é", "✓", "🐢", "\ud800", "\udc00x", "a\ud83d", "\ud83d\ud83d\udc22"]) expect(utf8Length(s)).toBe(encoded(s));
});
