// The one process harness of the tests and the benchmarks: free ports, child processes
// with their output kept (in memory or in a log file), bounded waits, and stopping by PID.
// Every process started here is stopped by its own PID (its children found through /proc),
// never by name, and all are killed when this process exits.
import type { Subprocess } from "bun";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "..", "..");

/** Thrown inside a waitFor condition: the wait is over, it can never come true (a process exited). */
export class GiveUp extends Error {}

/**
 * Polls `fn` until it returns something truthy (errors count as not yet, except GiveUp);
 * throws after `timeoutMs`.
 */
export async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 10_000, everyMs = 25): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      if (err instanceof GiveUp) throw err;
      last = err;
    }
    await Bun.sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

const handedOut = new Set<number>();

function canListen(port: number): boolean {
  try {
    Bun.listen({ hostname: "0.0.0.0", port, socket: { data() {} } }).stop(true);
    return true;
  } catch {
    return false;
  }
}

/** A "lo-hi" port range from an environment variable, or null when it is not set. */
export function portRangeFromEnv(name: string): [number, number] | null {
  const v = process.env[name];
  if (!v) return null;
  const m = /^(\d+)-(\d+)$/.exec(v);
  if (!m) throw new Error(`${name} must look like 18300-18499`);
  return [Number(m[1]), Number(m[2])];
}

/**
 * A port nobody listens on right now and that this process has not handed out before:
 * from `range` when given, otherwise one the kernel picks.
 */
export function freePort(range: [number, number] | null = null): number {
  if (range) {
    const [lo, hi] = range;
    const n = hi - lo + 1;
    const start = Math.floor(Math.random() * n);
    for (let i = 0; i < n; i++) {
      const p = lo + ((start + i) % n);
      if (!handedOut.has(p) && canListen(p)) {
        handedOut.add(p);
        return p;
      }
    }
    throw new Error(`no free port in ${lo}-${hi}`);
  }
  for (let i = 0; i < 20; i++) {
    const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const p = s.port;
    s.stop(true);
    if (!handedOut.has(p)) {
      handedOut.add(p);
      return p;
    }
  }
  throw new Error("no free port");
}

/** The children of a process (all its threads' children), from /proc. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        out.push(...readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number));
      } catch {}
    }
  } catch {}
  return out;
}

/** SIGKILL cannot be forwarded by a supervisor: its children are killed by PID first. */
export function killTree(pid: number, signal: NodeJS.Signals = "SIGKILL") {
  for (const kid of childPids(pid)) killTree(kid, signal);
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

const SHELLS = new Set(["sh", "dash", "bash"]);

export function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

/** The process that actually serves: follows `sh -> exec bun` or `sh -> child bun`. */
export function servingPid(pid: number): number {
  for (let depth = 0; depth < 3; depth++) {
    if (!SHELLS.has(comm(pid))) return pid;
    const kids = childPids(pid);
    if (kids.length !== 1) return pid;
    pid = kids[0];
  }
  return pid;
}

/** Is the process a shell (a start script not yet exec'd into its runtime)? */
export const isShell = (pid: number) => SHELLS.has(comm(pid));

/** A process started (or adopted) here: stopped by its PID, with `extraPids` of its own. */
export type Tracked = {
  proc: Subprocess;
  /** processes of its own that outlive it if it dies first (a supervisor's workers): killed with it */
  extraPids: number[];
};

export type Child = Tracked & {
  name: string;
  /** everything it wrote so far, stdout and stderr */
  output(): string;
  /** the exit code, once it has exited and everything it wrote is in output() */
  finished(): Promise<number>;
  /** `signal` (SIGKILL: to the whole tree), then SIGKILL after `graceMs`; resolves with the exit code, -1 if it had to be killed */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number>;
};

const running = new Set<Tracked>();
let exitHook = false;

/** Records a process spawned elsewhere, so that killAll and the exit hook reach it. */
export function track(proc: Subprocess): Tracked {
  if (!exitHook) {
    exitHook = true;
    process.on("exit", () => killAll("SIGKILL"));
  }
  const t: Tracked = { proc, extraPids: [] };
  running.add(t);
  proc.exited.then(() => {
    if (t.extraPids.length === 0) running.delete(t);
  });
  return t;
}

/** `signal` (SIGKILL: to the whole tree), then SIGKILL to the tree after `graceMs`; the exit code, -1 if it had to be killed. */
export async function stopTracked(t: Tracked, signal: NodeJS.Signals = "SIGTERM", graceMs = 15_000): Promise<number> {
  const proc = t.proc;
  if (proc.exitCode === null && proc.signalCode === null) {
    if (signal === "SIGKILL") kill(t);
    else proc.kill(signal);
  }
  const code = await Promise.race([proc.exited, Bun.sleep(graceMs).then(() => -1)]);
  if (code === -1) {
    kill(t);
    await Promise.race([proc.exited, Bun.sleep(2_000)]);
  }
  running.delete(t);
  return code;
}

export type StartOptions = {
  name: string;
  cmd: string[];
  env: Record<string, string>;
  cwd?: string;
  /** write stdout and stderr to this file (kept for reading after the run) instead of memory */
  logFile?: string;
};

export function startProcess(o: StartOptions): Child {
  let out = "";
  const proc = o.logFile
    ? Bun.spawn({ cmd: o.cmd, cwd: o.cwd ?? ROOT, env: o.env, stdio: ["ignore", Bun.file(o.logFile), Bun.file(o.logFile)] })
    : Bun.spawn({ cmd: o.cmd, cwd: o.cwd ?? ROOT, env: o.env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of s) out += dec.decode(chunk, { stream: true });
  };
  const pumped = o.logFile ? Promise.resolve() : Promise.all([pump(proc.stdout as ReadableStream<Uint8Array>), pump(proc.stderr as ReadableStream<Uint8Array>)]);
  const logFile = o.logFile;
  const t = track(proc);
  return Object.assign(t, {
    name: o.name,
    output: () => (logFile ? readLog(logFile) : out),
    finished: () => Promise.all([proc.exited, pumped]).then(([code]) => code),
    stop: (signal?: NodeJS.Signals, graceMs?: number) => stopTracked(t, signal, graceMs),
  });
}

/** Polls `url` until it answers 200; gives up at once if `child` exits first. */
export function waitHttpOk(what: string, url: string, child: Tracked, timeoutMs: number, init?: RequestInit): Promise<true> {
  return waitFor(
    what,
    async () => {
      if (child.proc.exitCode !== null) throw new GiveUp(`${what}: the process exited with ${child.proc.exitCode}`);
      return (await fetch(url, init)).status === 200 || null;
    },
    timeoutMs,
  ) as Promise<true>;
}

function readLog(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

function kill(t: Tracked, signal: NodeJS.Signals = "SIGKILL") {
  for (const pid of t.extraPids) killTree(pid, signal);
  killTree(t.proc.pid, signal);
}

/** Signals everything started here that is still running, by PID. Safe to call more than once. */
export function killAll(signal: NodeJS.Signals = "SIGKILL") {
  for (const t of running) kill(t, signal);
}
