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
