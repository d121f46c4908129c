// A redis-server of the test's own: a free port, a temp dir, stopped by its PID. Kept apart
// from procs.ts (startNats) so the two helpers change independently.
import type { Subprocess } from "bun";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, waitFor } from "./procs.ts";

export type Redis = {
  port: number;
  url: string;
  dir: string;
  proc: Subprocess;
  /** starts it again on the same port and dir (after stop() or kill()) */
  start(): Promise<void>;
  /** SIGTERM: Redis saves its data (with `save`) and exits */
  stop(): Promise<void>;
  /** SIGKILL: nothing saved beyond what the AOF already holds */
  kill(): Promise<void>;
  /** one command through redis-cli, its output trimmed */
  cli(...args: string[]): Promise<string>;
  /** stops the server and removes its dir */
  clean(): Promise<void>;
};

const live = new Set<Subprocess>();
process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

/** `aof`: append-only file with fsync every write, so a killed server loses nothing. */
/** `args`: more redis-server options (e.g. ["--requirepass", "pw"]); redis-cli then authenticates with `password`. */
export async function startRedis(opts: { aof?: boolean; port?: number; args?: string[]; password?: string } = {}): Promise<Redis> {
  const port = opts.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "wsgate-redis-"));
  const r: Redis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    proc: null as unknown as Subprocess,
    async start() {
      const args = ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--protected-mode", "no"];
      if (opts.aof) args.push("--appendonly", "yes", "--appendfsync", "always");
      if (opts.args) args.push(...opts.args);
      const proc = Bun.spawn(args, { stdout: "ignore", stderr: "pipe" });
      live.add(proc);
      r.proc = proc;
      await waitFor(`redis-server on ${port}`, async () => (await r.cli("PING")) === "PONG");
    },
    async stop() {
      const p = r.proc;
      if (p && p.exitCode === null && !p.killed) {
        p.kill("SIGTERM");
        await p.exited;
      }
      live.delete(p);
    },
    async kill() {
      const p = r.proc;
      if (p && p.exitCode === null && !p.killed) {
        p.kill("SIGKILL");
        await p.exited;
      }
      live.delete(p);
    },
    async cli(...args) {
      const p = Bun.spawn(["redis-cli", "-p", String(port), ...(opts.password ? ["--no-auth-warning", "-a", opts.password] : []), ...args], { stdout: "pipe", stderr: "pipe" });
      const out = await new Response(p.stdout).text();
      await p.exited;
      return out.trim();
    },
    async clean() {
      await r.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await r.start();
  return r;
}

/** A field of INFO's output as a number (e.g. used_memory). */
export async function redisInfo(r: Redis, field: string): Promise<number> {
  const m = new RegExp(`^${field}:(\\d+)`, "m").exec(await r.cli("INFO"));
  return m ? Number(m[1]) : NaN;
}

export type Sentinel = { port: number; proc: Subprocess; stop(): Promise<void> };

/** A Sentinel watching `master` as `name`, quorum 1, declaring it down after 1 s of silence. */
export async function startSentinel(master: Redis, name: string): Promise<Sentinel> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "wsgate-sentinel-"));
  const conf = join(dir, "sentinel.conf");
  writeFileSync(
    conf,
    [`port ${port}`, "bind 127.0.0.1", `dir ${dir}`, `sentinel monitor ${name} 127.0.0.1 ${master.port} 1`, `sentinel down-after-milliseconds ${name} 1000`, `sentinel failover-timeout ${name} 5000`, ""].join("\n"),
  );
  const proc = Bun.spawn(["redis-server", conf, "--sentinel"], { stdout: "ignore", stderr: "ignore" });
  live.add(proc);
  await waitFor(`sentinel on ${port}`, async () => {
    const p = Bun.spawn(["redis-cli", "-p", String(port), "SENTINEL", "get-master-addr-by-name", name], { stdout: "pipe" });
    return (await new Response(p.stdout).text()).includes(String(master.port));
  });
  return {
    port,
    proc,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
      live.delete(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
