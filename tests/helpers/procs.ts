// Processes the tests start: nats-server and gateways on free ports, each stopped
// by its own PID. Nothing here reaches a service someone else left running.
import type { Subprocess } from "bun";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "..", "..");
export type Runtime = "bun" | "node" | "deno";
export const RUNTIMES: Runtime[] = (process.env.WSGATE_RUNTIMES?.split(",") as Runtime[]) ?? ["bun", "node", "deno"];

/** A port nobody listens on right now (the kernel picks it). */
export async function freePort(): Promise<number> {
  const srv = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = srv.port;
  srv.stop(true);
  return port;
}

export async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 10_000, everyMs = 25): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    await Bun.sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

const live = new Set<Subprocess>();
process.on("exit", () => {
  for (const p of live) killTree(p.pid);
});

/** The direct children of a process (a WSGATE_WORKERS supervisor's workers), from /proc. */
function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim();
      if (kids) out.push(...kids.split(/\s+/).map(Number));
    }
  } catch {
    // gone already
  }
  return out;
}

/** SIGKILL cannot be forwarded by a supervisor: its children are killed by PID first. */
function killTree(pid: number) {
  for (const kid of childPids(pid)) killTree(kid);
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // gone already
  }
}

export type Nats = {
  port: number;
  url: string;
  monitor: number;
  storeDir: string;
  proc: Subprocess;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** subscriptions the server holds for the named client connection */
  subsOf(clientName: string): Promise<string[]>;
};

export async function startNats(opts: { jetstream?: boolean; port?: number; config?: string } = {}): Promise<Nats> {
  const port = opts.port ?? (await freePort());
  const monitor = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), "wsgate-nats-"));
  const nats: Nats = {
    port,
    url: `nats://127.0.0.1:${port}`,
    monitor,
    storeDir,
    proc: null as unknown as Subprocess,
    async start() {
      const args = ["nats-server", "-a", "127.0.0.1", "-p", String(port), "-m", String(monitor)];
      if (opts.jetstream) args.push("-js", "-sd", storeDir);
      if (opts.config) {
        const file = join(storeDir, "nats.conf");
        writeFileSync(file, opts.config);
        args.push("-c", file);
      }
      const proc = Bun.spawn(args, { stdout: "ignore", stderr: "pipe" });
      live.add(proc);
      nats.proc = proc;
      await waitFor(`nats-server on ${port}`, async () => (await fetch(`http://127.0.0.1:${monitor}/healthz`)).ok);
    },
    async stop() {
      const p = nats.proc;
      if (p && p.exitCode === null && !p.killed) {
        p.kill("SIGTERM");
        await p.exited;
      }
      live.delete(p);
    },
    async subsOf(clientName) {
      const r = await (await fetch(`http://127.0.0.1:${monitor}/connz?subs=1`)).json();
      const c = (r.connections ?? []).find((x: { name?: string }) => x.name?.includes(clientName));
      return c?.subscriptions_list ?? [];
    },
  };
  await nats.start();
  return nats;
}

export function stopNatsAndClean(n: Nats) {
  return n.stop().then(() => rmSync(n.storeDir, { recursive: true, force: true }));
}

export type Gateway = {
  runtime: Runtime;
  port: number;
  http: string;
  ws: string;
  nodeId: string;
  proc: Subprocess;
  /** WSGATE_TLS_CERT was given: http and ws are https:// and wss:// */
  tls: boolean;
  /** fetch against this gateway (trusts its self-signed certificate when TLS is on) */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** everything the process wrote so far, stdout and stderr */
  output(): string;
  /** the exit code, once the process has exited and everything it wrote is in output() */
  finished(): Promise<number>;
  stop(signal?: NodeJS.Signals): Promise<number>;
  metric(name: string): Promise<number>;
};

export type GatewayOptions = {
  env?: Record<string, string>;
  /** wait for the listening line (default); false for processes expected to exit */
  waitListening?: boolean;
  /** also wait for /readyz 200 (default), i.e. the broker is connected */
  waitReady?: boolean;
  /** the command to run instead of scripts/start.sh <runtime> */
  cmd?: string[];
  /** listen on this port (a restarted gateway taking over its predecessor's address) */
  port?: number;
};

let nodeCounter = 0;

export async function startGateway(runtime: Runtime, opts: GatewayOptions = {}): Promise<Gateway> {
  const port = opts.port ?? (await freePort());
  const nodeId = `t${process.pid}-${++nodeCounter}`;
  const env = { ...process.env, PORT: String(port), HOST: "127.0.0.1", WSGATE_NODE_ID: nodeId, ...opts.env } as Record<string, string>;
  if (!opts.env?.NATS_URL) delete env.NATS_URL;
  const cmd = opts.cmd ?? ["sh", join(ROOT, "scripts", "start.sh"), runtime];
  const proc = Bun.spawn(cmd, { cwd: ROOT, env, stdout: "pipe", stderr: "pipe" });
  live.add(proc);
  const tls = Boolean(opts.env?.WSGATE_TLS_CERT);
  const get = (url: string, init?: RequestInit) => fetch(url, tls ? ({ ...init, tls: { rejectUnauthorized: false } } as RequestInit) : init);
  let out = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of s) out += dec.decode(chunk, { stream: true });
  };
  const pumped = Promise.all([pump(proc.stdout as ReadableStream<Uint8Array>), pump(proc.stderr as ReadableStream<Uint8Array>)]);
  const gw: Gateway = {
    runtime,
    port,
    http: `${tls ? "https" : "http"}://127.0.0.1:${port}`,
    ws: `${tls ? "wss" : "ws"}://127.0.0.1:${port}/ws`,
    nodeId,
    proc,
    tls,
    fetch: (path, init) => get(gw.http + path, init),
    output: () => out,
    finished: () => Promise.all([proc.exited, pumped]).then(([code]) => code),
    async stop(signal = "SIGTERM") {
      if (proc.exitCode === null && !proc.killed) {
        if (signal === "SIGKILL") killTree(proc.pid);
        else proc.kill(signal);
      }
      const code = await Promise.race([proc.exited, Bun.sleep(15_000).then(() => -1)]);
      if (code === -1) killTree(proc.pid);
      live.delete(proc);
      return code;
    },
    async metric(name) {
      const text = await (await get(`${gw.http}/metrics`)).text();
      const line = text.split("\n").find((l) => l.startsWith(name + " ") || l.startsWith(name + "{"));
      if (!line) throw new Error(`metric ${name} not found`);
      return Number(line.slice(line.lastIndexOf(" ") + 1));
    },
  };
  if (opts.waitListening !== false) {
    await waitFor(
      `${runtime} gateway listening on ${port}`,
      () => {
        if (proc.exitCode !== null) throw new Error(`gateway exited with ${proc.exitCode}:\n${out}`);
        return out.includes('"wsgate listening"');
      },
      60_000,
    );
    if (opts.waitReady !== false) {
      await waitFor(`${runtime} gateway ready`, async () => (await get(`${gw.http}/readyz`)).status === 200, 30_000);
    }
  }
  return gw;
}
