// One JSON line per event on stdout. No per-message logging: the hot path never calls this.
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type Level = keyof typeof LEVELS;

let threshold: number = LEVELS.info;
/** Fields every line carries (node, worker), so lines of several workers in one journal can be told apart. */
let base: Record<string, unknown> = {};

export function setLogLevel(level: Level): void {
  threshold = LEVELS[level];
}

/** Set once at start, before the first line that should carry them. */
export function setLogBase(fields: Record<string, unknown>): void {
  base = { ...fields };
}

/** For call sites that would build fields only to have them dropped (a close, a refusal). */
export function logEnabled(level: Level): boolean {
  return LEVELS[level] >= threshold;
}

export function log(level: Level, msg: string, fields?: Record<string, unknown>): void {
  if (LEVELS[level] < threshold) return;
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...base, ...fields });
  if (LEVELS[level] >= LEVELS.warn) console.error(line);
  else console.log(line);
}
