// Log-bucketed histogram of milliseconds: ~1% relative precision from 1 µs up to hours.
// Workers fill a dense array; it travels to the parent as sparse [bucket, count] pairs.

export const HB = 2400;
const LOG_STEP = Math.log(1.01);

export type Sparse = [number, number][];

export function hAdd(h: Uint32Array, ms: number) {
  const us = ms * 1000;
  h[us < 1 ? 0 : Math.min(HB - 1, 1 + Math.floor(Math.log(us) / LOG_STEP))]++;
}

function hBucketMs(i: number) {
  return i === 0 ? 0.0005 : Math.pow(1.01, i - 0.5) / 1000;
}

export function hSparse(h: Uint32Array): Sparse {
  const out: Sparse = [];
  for (let i = 0; i < HB; i++) if (h[i]) out.push([i, h[i]]);
  return out;
}

export function hMergeSparse(h: Uint32Array, s: Sparse) {
  for (const [i, n] of s) h[i] += n;
}

export function hPercentiles(h: Uint32Array, ps: number[]): number[] {
  let total = 0;
  for (let i = 0; i < HB; i++) total += h[i];
  if (total === 0) return ps.map(() => NaN);
  return ps.map((p) => {
    const rank = Math.max(1, Math.ceil(p * total));
    let acc = 0;
    for (let i = 0; i < HB; i++) {
      acc += h[i];
      if (acc >= rank) return hBucketMs(i);
    }
    return hBucketMs(HB - 1);
  });
}
