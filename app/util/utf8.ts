// Decides whether a service's payload goes out as a text frame: only valid UTF-8 may.
const strict = new TextDecoder("utf-8", { fatal: true });

export function isUtf8(bytes: Uint8Array): boolean {
  // Most payloads are ASCII JSON: a byte scan avoids the decoder's string allocation.
  let i = 0;
  const n = bytes.length;
  while (i < n && bytes[i] < 0x80) i++;
  if (i === n) return true;
  try {
    strict.decode(bytes.subarray(i));
    return true;
  } catch {
    return false;
  }
}

/** Bytes of `s` in UTF-8 (a lone surrogate counts 3, as TextEncoder writes U+FFFD), without encoding it. */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 2; // a pair: 4 bytes for 2 code units
      i++;
    } else n += 2;
  }
  return n;
}
