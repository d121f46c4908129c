// The benchmarks' ground floor: the repo root, the log line, the run directory, ports and
// nats-server from the shared harness (scripts/harness), and stopping every child at exit.
import { mkdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { NATS_SERVER, startNats as harnessNats } from "../harness/nats.ts";
import { freePort as harnessPort, killAll, portRangeFromEnv } from "../harness/procs.ts";

export const ROOT = resolve(import.meta.dir, "../..");
export const BUN = process.execPath;
export { NATS_SERVER };

// ───────────────────────── logging, run directory ─────────────────────────

const started = Date.now();
export function log(msg: string) {
  const t = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  console.error(`[bench ${t}s] ${msg}`);
}

let runDirPath: string | null = null;
/** .tmp/bench/<stamp>/ under the repo (git-ignored): logs of every child, kept for reading. */
export function runDir(): string {
  if (!runDirPath) {
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    runDirPath = join(ROOT, ".tmp", "bench", stamp);
    mkdirSync(runDirPath, { recursive: true });
  }
  return runDirPath;
}

export const sleep = (ms: number) => Bun.sleep(ms);

// ───────────────────────── processes and ports (scripts/harness) ─────────────────────────

export { killAll };

const tempDirs: string[] = [];
let cleanupsInstalled = false;
export function installCleanup() {
  if (cleanupsInstalled) return;
  cleanupsInstalled = true;
  process.on("exit", () => {
    killAll("SIGKILL");
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  });
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      log(`${sig}: stopping every child process`);
      killAll("SIGKILL");
      process.exit(130);
    });
  }
}

/**
 * A free TCP port: from $WSGATE_BENCH_PORTS (HTTP) or $WSGATE_BENCH_NATS_PORTS (NATS) when set,
 * e.g. "18300-18499", otherwise one the kernel picks.
 */
export function freePort(kind: "http" | "nats"): number {
  return harnessPort(portRangeFromEnv(kind === "http" ? "WSGATE_BENCH_PORTS" : "WSGATE_BENCH_NATS_PORTS"));
}

// ───────────────────────── nats-server ─────────────────────────

export type Nats = { url: string; port: number; monitorPort: number; pid: number; stop(): Promise<void>; subscriptions(): Promise<number> };

export async function startNats(): Promise<Nats> {
  const port = freePort("nats");
  const monitorPort = freePort("nats");
  const logFile = join(runDir(), `nats-${port}.log`);
  const n = await harnessNats({ jetstream: true, port, monitor: monitorPort, logFile, tmpPrefix: "wsgate-bench-nats-" }).catch((err) => {
    throw new Error(`${err.message}; see ${logFile}`);
  });
  tempDirs.push(n.storeDir);
  return { url: n.url, port, monitorPort, pid: n.proc.pid, subscriptions: n.subscriptions, stop: n.clean };
}
