// Unknown WSGATE_* variables: a typo must not leave a setting at its default in silence.

/** Names this process does not read but that test and benchmark launchers set for themselves. */
const NOT_OURS = /^WSGATE_(BENCH_|RUNTIMES$|TEST_)/;

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
