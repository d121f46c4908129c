// The checks of the environment beyond one variable's own rule: rules over several variables,
// and unknown WSGATE_* names (a typo must not leave a setting at its default in silence).

/**
 * Names that are not settings: test and benchmark launchers set them for themselves, and
 * scripts/start.sh hands Deno the open-files limit (read by adapters/deno/start.ts).
 */
const NOT_OURS = /^WSGATE_(BENCH_|RUNTIMES$|TEST_|OPEN_FILES_LIMIT$)/;

/** A misspelt name would otherwise be ignored in silence and its default used. */
export function unknownNames(env: Record<string, string | undefined>, settings: string[]): string[] {
  const known = settings.filter((k) => k.startsWith("WSGATE_"));
  const out: string[] = [];
  for (const name of Object.keys(env)) {
    if (!name.startsWith("WSGATE_") || NOT_OURS.test(name) || known.includes(name)) continue;
    let best = "";
    let bestD = Infinity;
    for (const k of known) {
      const d = levenshtein(name, k);
      if (d < bestD) [best, bestD] = [k, d];
    }
    out.push(`config: ${name} is not a wsgate setting and is ignored${bestD <= 3 ? `; did you mean ${best}?` : ""}`);
  }
  return out;
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** Rules that involve more than one variable, on the raw strings (a malformed number fails its own rule). */
export function crossChecks(e: Record<string, string>): string[] {
  const errors: string[] = [];
  if (e.WSGATE_JWT_SECRET && e.WSGATE_JWT_PUBLIC_KEY) {
    errors.push("config: WSGATE_JWT_SECRET and WSGATE_JWT_PUBLIC_KEY rejected: set one of them, not both");
  }
  if (!e.WSGATE_TLS_CERT !== !e.WSGATE_TLS_KEY) {
    const [missing, set] = e.WSGATE_TLS_CERT ? ["WSGATE_TLS_KEY", "WSGATE_TLS_CERT"] : ["WSGATE_TLS_CERT", "WSGATE_TLS_KEY"];
    errors.push(`config: ${missing} is required when ${set} is set`);
  }
  if (e.NATS_URL && e.REDIS_URL) {
    errors.push("config: NATS_URL and REDIS_URL rejected: set one of them, not both (a gateway runs on one broker; neither set: the embedded broker)");
  }
  const workers = Number(e.WSGATE_WORKERS ?? 1);
  if (workers > 1 && !e.NATS_URL && !e.REDIS_URL) {
    errors.push(`config: WSGATE_WORKERS=${JSON.stringify(e.WSGATE_WORKERS)} rejected: more than one worker needs NATS_URL or REDIS_URL (workers are separate nodes that meet in the broker)`);
  }
  if (workers > 1 && e.PORT === "0") {
    errors.push(`config: PORT="0" rejected: workers must share one fixed port`);
  }
  const metrics = Number(e.WSGATE_METRICS_PORT);
  if (workers >= 1 && metrics + workers - 1 > 65535) {
    errors.push(`config: WSGATE_METRICS_PORT=${JSON.stringify(e.WSGATE_METRICS_PORT)} rejected: worker ${workers} would listen past port 65535`);
  }
  const port = Number(e.PORT ?? 8080);
  if (workers >= 1 && metrics <= port && port <= metrics + workers - 1) {
    errors.push(`config: WSGATE_METRICS_PORT=${JSON.stringify(e.WSGATE_METRICS_PORT)} rejected: the metrics port${workers > 1 ? "s" : ""} must not include PORT (${port})`);
  }
  return errors;
}
