// Numbers and tables for the benchmark reports, and the option check every benchmark uses.

// ───────────────────────── numbers and tables ─────────────────────────

export function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function fmt(x: number | null | undefined, digits = 0): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return "-";
  return x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** A plain-text table; `left` lists the columns aligned left (default: the first only). */
export function table(head: string[], rows: string[][], left: number[] = [0]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => (left.includes(i) ? c.padEnd(w[i]) : c.padStart(w[i]))).join("  ");
  return [line(head), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(line)].join("\n");
}

export function argInt(v: string | undefined, name: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be a whole number from ${min} to ${max}`);
  return n;
}

/** "1.23×" or "-" */
export function ratio(a: number, b: number, digits = 2): string {
  const x = a / b;
  return Number.isFinite(x) ? `${fmt(x, digits)}×` : "-";
}

export const MiB = 1024 * 1024;
export const users = (n: number, prefix = "u", offset = 0) => Array.from({ length: n }, (_, i) => `${prefix}${offset + i}`);
