// Every socket is a descriptor, so the gateway caps connections below the open-files
// limit. scripts/start.sh raises the soft limit to the hard one with ulimit, and Bun and
// Deno do the same themselves at start, so the adapters only read what is in effect:
// from /proc on Bun and Node, and from the value start.sh hands to Deno, which reads
// /proc/self only under --allow-all.

/** The soft limit from the text of /proc/self/limits; 0 for "unlimited" or an unreadable text. */
export function softOpenFilesLimit(limitsText: string): number {
  const m = /^Max open files\s+(\d+)/m.exec(limitsText);
  return m ? Number(m[1]) : 0;
}

/** Reads the limit through the runtime's file reader; 0 (no cap known) when /proc cannot be read. */
export function openFilesLimitFromProc(readTextFile: (path: string) => string, warn: (error: string) => void): number {
  try {
    return softOpenFilesLimit(readTextFile("/proc/self/limits"));
  } catch (err) {
    warn(String(err));
    return 0;
  }
}

/** The limit handed over in WSGATE_OPEN_FILES_LIMIT (scripts/start.sh sets it from `ulimit -n`); 0 when absent. */
export function openFilesLimitFromEnv(value: string | undefined): number {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : 0;
}
