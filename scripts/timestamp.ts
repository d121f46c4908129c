// The load tools embed the send time at the start of a payload as text
// ("1732361234567" or "1732361234567.123"): this reads it back without allocating.

/** Leading wall-clock ms timestamp of `len` bytes at `start`, or -1 when there is none. */
export function leadingTimestampMs(d: Uint8Array, start = 0, len = d.length - start): number {
  const end = start + Math.min(len, 40);
  let i = start;
  let v = 0;
  let digits = 0;
  while (i < end && d[i] >= 48 && d[i] <= 57) {
    v = v * 10 + (d[i] - 48);
    digits++;
    i++;
  }
  if (digits < 12 || digits > 16) return -1;
  if (i < end && d[i] === 46) {
    i++;
    let scale = 0.1;
    while (i < end && d[i] >= 48 && d[i] <= 57) {
      v += (d[i] - 48) * scale;
      scale *= 0.1;
      i++;
    }
  }
  return v;
}
