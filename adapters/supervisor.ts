// WSGATE_WORKERS: one small process starts N gateway workers that share the port and keeps
// them running. Runs on Bun and Node (node:child_process); SIGKILL of the supervisor
// cannot be forwarded, so run it under a service manager that kills the whole group.
import { type ChildProcess, spawn } from "node:child_process";
import { backoff } from "../app/util/backoff.ts";

export type SuperviseOptions = {
  workers: number;
  /** the program to run per worker; it gets WSGATE_WORKER=<index> */
  command: string[];
  env: Record<string, string | undefined>;
  nodeId: string;
  /** a worker that dies this many times, each within `quickMs` of its start, is given up */
  maxQuickDeaths?: number;
  quickMs?: number;
  /** after this, workers still running at shutdown are killed */
  stopTimeoutMs?: number;
};

type Worker = { index: number; proc: ChildProcess | null; startedAt: number; quickDeaths: number; restarts: number; timer: ReturnType<typeof setTimeout> | null };

/** Resolves with the exit status once every worker is gone (after SIGTERM/SIGINT, or all given up). */
export function superviseWorkers(o: SuperviseOptions): Promise<number> {
  const maxQuick = o.maxQuickDeaths ?? 5;
  const quickMs = o.quickMs ?? 10_000;
  let stopping = false;
  let status = 0;
  const workers: Worker[] = [];
  let done!: (code: number) => void;
  const finished = new Promise<number>((r) => (done = r));

  const say = (level: string, msg: string, fields: Record<string, unknown>) => {
    const line = JSON.stringify({ time: new Date().toISOString(), level, msg, node: o.nodeId, supervisor: true, ...fields });
    (level === "info" ? console.log : console.error)(line);
  };

  const start = (w: Worker) => {
    w.timer = null;
    w.startedAt = Date.now();
    const proc = spawn(o.command[0], o.command.slice(1), {
      // One node id for the host, suffixed per worker by the config (-w1, -w2): the lines of a host group together.
      env: { ...o.env, WSGATE_NODE_ID: o.nodeId, WSGATE_WORKER: String(w.index) },
      stdio: "inherit",
    });
    w.proc = proc;
    say("info", "worker started", { worker: w.index, pid: proc.pid });
    proc.on("error", (err) => say("error", "worker could not start", { worker: w.index, error: String(err) }));
    proc.on("exit", (code, signal) => {
      w.proc = null;
      if (stopping) {
        if (code !== 0) status = code ?? 1;
        say("info", "worker stopped", { worker: w.index, code, signal });
        return settle();
      }
      if (code === 2) {
        // Status 2 is the gateway's "bad configuration": the next start would fail the same way.
        say("error", "worker refused its configuration; not restarting it", { worker: w.index, code });
        status = 2;
        return settle();
      }
      const lived = Date.now() - w.startedAt;
      w.quickDeaths = lived < quickMs ? w.quickDeaths + 1 : 0;
      if (w.quickDeaths >= maxQuick) {
        say("error", "worker keeps dying at start; giving up on it", { worker: w.index, code, signal, deaths: w.quickDeaths, withinMs: quickMs });
        if (status === 0) status = 1;
        return settle();
      }
      const waitMs = backoff(w.quickDeaths);
      w.restarts++;
      say("error", "worker died; restarting", { worker: w.index, code, signal, livedMs: lived, restartInMs: waitMs, restarts: w.restarts });
      w.timer = setTimeout(() => start(w), waitMs);
    });
  };

  const settle = () => {
    if (workers.some((w) => w.proc || w.timer)) return;
    process.off("SIGTERM", stop);
    process.off("SIGINT", stop);
    done(status);
  };

  // Each worker drains itself (1001 to its clients, in-flight messages flushed) on SIGTERM.
  function stop(signal: NodeJS.Signals) {
    if (stopping) return;
    stopping = true;
    say("info", "stopping workers", { signal });
    for (const w of workers) {
      if (w.timer) clearTimeout(w.timer), (w.timer = null);
      w.proc?.kill("SIGTERM");
    }
    const limit = o.stopTimeoutMs ?? Number(o.env.WSGATE_DRAIN_TIMEOUT_MS ?? 10_000) + 5_000;
    setTimeout(() => {
      for (const w of workers) if (w.proc) say("warn", "worker did not stop in time; killing it", { worker: w.index }), w.proc.kill("SIGKILL");
    }, limit).unref();
    settle();
  }
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  say("info", "supervising workers", { workers: o.workers });
  for (let i = 1; i <= o.workers; i++) {
    const w: Worker = { index: i, proc: null, startedAt: 0, quickDeaths: 0, restarts: 0, timer: null };
    workers.push(w);
    start(w);
  }
  return finished;
}
