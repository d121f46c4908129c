// Shared pieces of the benchmarks: ports, nats-server, the gateway, the reference servers,
// the load client and the publisher as child processes, /proc readings, tables.
// Every process started here is recorded and stopped by its own PID at the end (never by
// name); every wait is bounded.
import type { Subprocess } from "bun";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

export const ROOT = resolve(import.meta.dir, "../..");
export const BUN = process.execPath;
export const NATS_SERVER = process.env.NATS_SERVER ?? "/usr/sbin/nats-server";

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

// ───────────────────────── process registry and cleanup ─────────────────────────

const children = new Set<{ name: string; proc: Subprocess; extraPids: number[] }>();

function track(name: string, proc: Subprocess) {
  const rec = { name, proc, extraPids: [] as number[] };
  children.add(rec);
  proc.exited.then(() => children.delete(rec));
  return rec;
}

/** Kills what is still running, by PID only. Safe to call more than once. */
export function killAll(signal: NodeJS.Signals | number = "SIGKILL") {
  for (const c of children) {
    for (const pid of c.extraPids) {
      try {
        process.kill(pid, signal);
      } catch {}
    }
    try {
      c.proc.kill(signal);
    } catch {}
  }
}

let cleanupsInstalled = false;
const tempDirs: string[] = [];
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

/** Sends SIGTERM, waits up to `ms`, then SIGKILL; the PID is always one we started. */
async function stopProc(proc: Subprocess, extraPids: number[] = [], ms = 8000) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  try {
    proc.kill("SIGTERM");
  } catch {}
  const done = await Promise.race([proc.exited.then(() => true), sleep(ms).then(() => false)]);
  if (!done) {
    for (const pid of extraPids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    proc.kill("SIGKILL");
    await Promise.race([proc.exited, sleep(2000)]);
  }
}

// ───────────────────────── ports ─────────────────────────

function rangeFromEnv(name: string): [number, number] | null {
  const v = process.env[name];
  if (!v) return null;
  const m = /^(\d+)-(\d+)$/.exec(v);
  if (!m) throw new Error(`${name} must look like 18300-18499`);
  return [Number(m[1]), Number(m[2])];
}

const handedOut = new Set<number>();
function canListen(port: number): boolean {
  try {
    const s = Bun.listen({ hostname: "0.0.0.0", port, socket: { data() {} } });
    s.stop(true);
    return true;
  } catch {
    return false;
  }
}

/**
 * A free TCP port: from $WSGATE_BENCH_PORTS (HTTP) or $WSGATE_BENCH_NATS_PORTS (NATS) when set,
 * e.g. "18300-18499", otherwise one the kernel picks.
 */
export function freePort(kind: "http" | "nats"): number {
  const range = rangeFromEnv(kind === "http" ? "WSGATE_BENCH_PORTS" : "WSGATE_BENCH_NATS_PORTS");
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

// ───────────────────────── /proc ─────────────────────────

export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

export type KernelStats = { slabBytes: number; sockUsed: number; tcpInuse: number; tcpAlloc: number; tcpTw: number; tcpMemBytes: number };
export function kernelStats(): KernelStats {
  const mi = readFileSync("/proc/meminfo", "utf8");
  const slab = Number(/^Slab:\s+(\d+) kB/m.exec(mi)?.[1] ?? NaN) * 1024;
  const ss = readFileSync("/proc/net/sockstat", "utf8");
  const used = Number(/sockets: used (\d+)/.exec(ss)?.[1] ?? NaN);
  const tcp = /TCP: inuse (\d+) orphan \d+ tw (\d+) alloc (\d+) mem (\d+)/.exec(ss);
  return {
    slabBytes: slab,
    sockUsed: used,
    tcpInuse: Number(tcp?.[1] ?? NaN),
    tcpTw: Number(tcp?.[2] ?? NaN),
    tcpAlloc: Number(tcp?.[3] ?? NaN),
    tcpMemBytes: Number(tcp?.[4] ?? NaN) * 4096, // sockstat counts pages
  };
}

/** The process that actually serves: follows `sh -> exec bun` or `sh -> child bun`. */
function servingPid(pid: number): number {
  for (let depth = 0; depth < 3; depth++) {
    let comm = "";
    try {
      comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    } catch {
      return pid;
    }
    if (comm !== "sh" && comm !== "dash" && comm !== "bash") return pid;
    let kids: string[] = [];
    try {
      kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
    } catch {}
    if (kids.length !== 1) return pid;
    pid = Number(kids[0]);
  }
  return pid;
}

// ───────────────────────── nats-server ─────────────────────────

export type Nats = { url: string; port: number; monitorPort: number; pid: number; stop(): Promise<void>; subscriptions(): Promise<number> };

export async function startNats(): Promise<Nats> {
  const port = freePort("nats");
  const monitorPort = freePort("nats");
  const store = mkdtempSync(join(tmpdir(), "wsgate-bench-nats-"));
  tempDirs.push(store);
  const logFile = join(runDir(), `nats-${port}.log`);
  const proc = Bun.spawn({
    cmd: [NATS_SERVER, "-a", "127.0.0.1", "-p", String(port), "-m", String(monitorPort), "-js", "-sd", store],
    stdio: ["ignore", Bun.file(logFile), Bun.file(logFile)],
  });
  const rec = track("nats-server", proc);
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`nats-server exited at start; see ${logFile}`);
    try {
      const r = await fetch(`http://127.0.0.1:${monitorPort}/healthz`);
      if (r.ok) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`nats-server not ready in 10 s; see ${logFile}`);
    await sleep(50);
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    monitorPort,
    pid: proc.pid,
    async subscriptions() {
      const r = await fetch(`http://127.0.0.1:${monitorPort}/subsz`);
      return Number(((await r.json()) as { num_subscriptions: number }).num_subscriptions);
    },
    async stop() {
      await stopProc(proc, rec.extraPids, 5000);
      rmSync(store, { recursive: true, force: true });
    },
  };
}

// ───────────────────────── servers under test ─────────────────────────

export type HeapInfo = { heapSize: number; objectCount: number; extraMemorySize: number; rss: number; top: [string, number][] };

export type Server = {
  name: string;
  port: number;
  /** the serving process (with WSGATE_WORKERS: the first worker) */
  pid: number;
  /** every serving process: one, or each worker of WSGATE_WORKERS */
  pids: number[];
  wsUrl: string;
  metricsUrl: string;
  logFile: string;
  /** One process's metrics (with workers: whichever takes the request). */
  metrics(): Promise<Record<string, number>>;
  /** With workers: every worker's metrics, by node id (scraped on fresh connections until each answered). */
  metricsAll(): Promise<Map<string, Record<string, number>>>;
  /** RSS of every serving process, summed. */
  rss(): number;
  /** CPU seconds of every serving process, summed. */
  cpu(): number;
  /** Full GC in every serving process (SIGUSR2 to the preloaded hook); resolves with the heap figures, summed. */
  gc(): Promise<HeapInfo | null>;
  stop(): Promise<void>;
};

/** Environment for a server child: ours without any WSGATE_* / NATS_* / BUN_OPTIONS / NODE_OPTIONS, plus `extra`. */
function childEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith("WSGATE_") || k.startsWith("NATS_") || k === "BUN_OPTIONS" || k === "NODE_OPTIONS" || k.startsWith("REF_")) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

function parseMetrics(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

/** Children of a process (all its threads' children), from /proc. */
function childPids(pid: number): number[] {
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

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

export type ServerOptions = {
  /** the runtime that serves: bun (GC hook via BUN_OPTIONS --preload) or node (NODE_OPTIONS --expose-gc --import) */
  runtime?: "bun" | "node";
  /** WSGATE_WORKERS: this many serving processes are children of scripts/start.sh */
  workers?: number;
  /** a fixed port (several reference processes sharing one with reusePort) */
  port?: number;
  /** ready once this line shows up in the log (for a reusePort group, where /readyz may answer from a sibling) */
  readyLogLine?: string;
};

const IS_SHELL = new Set(["sh", "dash", "bash"]);

async function startServer(name: string, cmd: string[], env: Record<string, string>, readyPath: string, opts: ServerOptions = {}): Promise<Server> {
  const port = opts.port ?? freePort("http");
  const workers = opts.workers ?? 1;
  const hookOut = join(runDir(), `${name}-${port}${opts.port ? `-${Math.random().toString(36).slice(2, 7)}` : ""}.heap`);
  const logFile = hookOut.replace(/\.heap$/, ".log");
  const hookEnv: Record<string, string> =
    opts.runtime === "node"
      ? { NODE_OPTIONS: `--expose-gc --import ${pathToFileURL(join(import.meta.dir, "gc-hook-node.mjs")).href}` }
      : { BUN_OPTIONS: `--preload ${join(import.meta.dir, "gc-hook.ts")}` };
  const proc = Bun.spawn({
    cmd,
    cwd: ROOT,
    env: childEnv({
      ...env,
      PORT: String(port),
      HOST: "127.0.0.1",
      ...hookEnv,
      WSGATE_BENCH_HOOK_OUT: hookOut,
    }),
    stdio: ["ignore", Bun.file(logFile), Bun.file(logFile)],
  });
  const rec = track(name, proc);
  const base = `http://127.0.0.1:${port}`;
  // Node's first start bundles the adapter (scripts/start.sh): allow for it.
  // and a second more per worker: 55 workers start on two shared cores (scripts/bench/million.ts).
  const readyMs = (opts.runtime === "node" ? 60_000 : 20_000) + workers * 1000;
  const deadline = Date.now() + readyMs;
  const metricsOnce = async (fresh: boolean) =>
    parseMetrics(await (await fetch(`${base}/metrics`, fresh ? { headers: { connection: "close" }, keepalive: false } : {})).text());
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${name} exited at start (code ${proc.exitCode}); see ${logFile}`);
    try {
      if (opts.readyLogLine) {
        if (readFileSync(logFile, "utf8").includes(opts.readyLogLine)) break;
      } else if (workers > 1) {
        // every worker answers and is connected to NATS (reusePort spreads fresh connections over them)
        const seen = new Set<string>();
        for (let i = 0; i < workers * 8 && seen.size < workers; i++) {
          const m = await metricsOnce(true);
          const node = Object.keys(m).find((k) => k.startsWith("wsgate_info{"));
          if (node && m.wsgate_broker_connected === 1) seen.add(node);
        }
        if (seen.size >= workers) break;
      } else {
        const r = await fetch(base + readyPath);
        if (r.ok) break;
      }
    } catch {}
    if (Date.now() > deadline) throw new Error(`${name} not ready in ${readyMs / 1000} s; see ${logFile}`);
    await sleep(50);
  }
  let pids: number[];
  if (workers > 1) {
    // scripts/start.sh runs each worker as `( ... exec runtime )`: its children, once exec'd, are the servers
    const until = Date.now() + 10_000;
    for (;;) {
      pids = childPids(proc.pid).filter((p) => !IS_SHELL.has(comm(p)));
      if (pids.length >= workers || Date.now() > until) break;
      await sleep(50);
    }
    if (pids.length < workers) throw new Error(`${name}: found ${pids.length} of ${workers} worker processes; see ${logFile}`);
  } else {
    pids = [servingPid(proc.pid)];
  }
  for (const p of pids) if (p !== proc.pid) rec.extraPids.push(p);
  const hookFile = (p: number) => `${hookOut}.${p}.json`;
  const readHook = (p: number): (HeapInfo & { at: number }) | null => {
    try {
      return JSON.parse(readFileSync(hookFile(p), "utf8"));
    } catch {
      return null;
    }
  };
  return {
    name,
    port,
    pid: pids[0],
    pids,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    metricsUrl: `${base}/metrics`,
    logFile,
    metrics: () => metricsOnce(false),
    async metricsAll() {
      const byNode = new Map<string, Record<string, number>>();
      for (let i = 0; i < Math.max(1, workers * 12) && byNode.size < workers; i++) {
        try {
          const m = await metricsOnce(workers > 1);
          const info = Object.keys(m).find((k) => k.startsWith("wsgate_info{")) ?? `#${i}`;
          byNode.set(info, m);
        } catch {}
      }
      return byNode;
    },
    rss: () => pids.reduce((a, p) => a + rssBytes(p), 0),
    cpu: () => pids.reduce((a, p) => a + cpuSeconds(p), 0),
    async gc() {
      const before = pids.map((p) => readHook(p)?.at ?? 0);
      for (const p of pids) process.kill(p, "SIGUSR2");
      const until = Date.now() + 10_000;
      while (Date.now() < until) {
        await sleep(50);
        const hs = pids.map(readHook);
        if (hs.every((h, i) => h && h.at !== before[i])) {
          const sum = (f: (h: HeapInfo) => number) => hs.reduce((a, h) => a + (f(h!) || 0), 0);
          return { heapSize: sum((h) => h.heapSize), objectCount: sum((h) => h.objectCount), extraMemorySize: sum((h) => h.extraMemorySize), rss: sum((h) => h.rss), top: hs[0]!.top ?? [] };
        }
      }
      return null;
    },
    stop: () => stopProc(proc, rec.extraPids, 8000),
  };
}

/** The gateway exactly as operators start it (scripts/start.sh bun|node), plus the GC hook. */
export function startGateway(name: string, natsUrl: string | null, env: Record<string, string> = {}, opts: ServerOptions = {}): Promise<Server> {
  const workers = Number(env.WSGATE_WORKERS ?? 1);
  return startServer(
    name,
    ["sh", "scripts/start.sh", opts.runtime ?? "bun"],
    {
      ...(natsUrl ? { NATS_URL: natsUrl } : {}),
      WSGATE_LOG_LEVEL: "warn",
      // the benchmarks measure capacity, not the abuse limits
      WSGATE_MAX_UPGRADES_PER_SEC: "0",
      ...env,
    },
    "/readyz",
    { ...opts, workers },
  );
}

/**
 * The Node-uWS gateway run with the given node flags instead of the ones scripts/start.sh
 * passes, to measure what such a flag costs: the bundle start.sh builds, the same raised
 * open-files limit, the same environment as startGateway.
 */
export function startNodeGatewayWith(name: string, natsUrl: string, nodeFlags: string[], env: Record<string, string> = {}): Promise<Server> {
  const build = Bun.spawnSync({
    cmd: [BUN, "build", "adapters/node-uws.ts", "--target=node", "--format=esm", "--external", "@btc-vision/uwebsockets.js", "--external", "uws-pack", "--outfile", "dist/node-uws.mjs"],
    cwd: ROOT,
    stdout: "ignore",
    stderr: "pipe",
  });
  if (build.exitCode !== 0) throw new Error(`bundling adapters/node-uws.ts failed: ${build.stderr.toString()}`);
  for (const f of nodeFlags) if (!/^--[a-z0-9-]+(=[\w.-]+)?$/.test(f)) throw new Error(`unexpected node flag ${f}`);
  return startServer(
    name,
    ["sh", "-c", `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec node ${nodeFlags.join(" ")} dist/node-uws.mjs`],
    { NATS_URL: natsUrl, WSGATE_LOG_LEVEL: "warn", WSGATE_MAX_UPGRADES_PER_SEC: "0", ...env },
    "/readyz",
    { runtime: "node" },
  );
}

export function startRef(name: string, mode: "idle" | "nats", natsUrl?: string, prefix = "ws", opts: ServerOptions & { subscribe?: "recv" | "live" } = {}): Promise<Server> {
  return startServer(
    name,
    [BUN, join(import.meta.dir, "ref-bun.ts")],
    {
      REF_MODE: mode,
      REF_PREFIX: prefix,
      ...(natsUrl ? { NATS_URL: natsUrl } : {}),
      ...(opts.port ? { REF_REUSE_PORT: "1" } : {}),
      ...(opts.subscribe ? { REF_SUBSCRIBE: opts.subscribe } : {}),
    },
    "/readyz",
    opts.port ? { ...opts, readyLogLine: "ref-bun listening" } : opts,
  );
}

/** A bare uWebSockets.js server on Node that only holds sockets (scripts/bench/ref-uws.mjs). */
export function startRefUws(name: string): Promise<Server> {
  // Node cannot raise its own open-files limit: the shell does, as scripts/start.sh does for the gateway.
  return startServer(name, ["sh", "-c", `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec node ${join(import.meta.dir, "ref-uws.mjs")}`], {}, "/readyz", { runtime: "node" });
}

/** Polls the server's metrics until `pred` holds (bounded); returns the last reading. */
export async function waitMetrics(s: Server, pred: (m: Record<string, number>) => boolean, ms: number, what: string) {
  const until = Date.now() + ms;
  let m: Record<string, number> = {};
  for (;;) {
    try {
      m = await s.metrics();
      if (pred(m)) return m;
    } catch {}
    if (Date.now() > until) {
      log(`warning: ${s.name}: ${what} not reached in ${ms / 1000} s`);
      return m;
    }
    await sleep(200);
  }
}

/**
 * Mailbox on: each user's first connection starts a catch-up read from JetStream. Waits until
 * `want` have finished, or the count has stopped moving for 2 s (mailbox off: it stays 0).
 */
export async function waitCatchups(s: Server, want: number, ms = 60_000) {
  const key = "wsgate_mailbox_catchup_seconds_count";
  const until = Date.now() + ms;
  let last = -1;
  let since = Date.now();
  for (;;) {
    const m = await s.metrics().catch(() => ({}) as Record<string, number>);
    if (!(key in m)) return;
    const n = m[key];
    if (n >= want) return;
    if (n !== last) {
      last = n;
      since = Date.now();
    } else if (Date.now() - since > 2000) return;
    if (Date.now() > until) {
      log(`warning: ${s.name}: ${n}/${want} mailbox catch-ups after ${ms / 1000} s`);
      return;
    }
    await sleep(200);
  }
}

// ───────────────────────── load client and publisher ─────────────────────────

export type LoadgenSummary = any;

export class Loadgen {
  private out: Promise<string>;
  private readyFile: string;
  constructor(
    readonly name: string,
    private proc: Subprocess<"pipe", "pipe", any>,
    readyFile: string,
    readonly logFile: string,
  ) {
    this.readyFile = readyFile;
    this.out = new Response(proc.stdout).text();
  }

  static start(name: string, args: string[]): Loadgen {
    const dir = runDir();
    const readyFile = join(dir, `${name}.ready.json`);
    const logFile = join(dir, `${name}.log`);
    rmSync(readyFile, { force: true });
    const proc = Bun.spawn({
      cmd: [BUN, join(ROOT, "scripts/loadgen.ts"), ...args, "--control", "stdin", "--ready-file", readyFile],
      cwd: ROOT,
      stdin: "pipe",
      stdout: "pipe",
      stderr: Bun.file(logFile),
    });
    track(name, proc);
    return new Loadgen(name, proc, readyFile, logFile);
  }

  /** Waits until every connection is open (or given up); returns the loadgen's ready line. */
  async ready(ms: number): Promise<{ open: number; dead: number; ms: number; src: string }> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      if (existsSync(this.readyFile)) return JSON.parse(readFileSync(this.readyFile, "utf8"));
      if (this.proc.exitCode !== null) throw new Error(`${this.name} exited before all connections were open; see ${this.logFile}`);
      await sleep(100);
    }
    throw new Error(`${this.name}: connections not open after ${ms / 1000} s; see ${this.logFile}`);
  }

  get pid() {
    return this.proc.pid;
  }

  phase(name: string) {
    this.proc.stdin.write(`phase ${name}\n`);
    this.proc.stdin.flush();
  }

  async stop(ms = 30_000): Promise<LoadgenSummary> {
    try {
      this.proc.stdin.write("stop\n");
      this.proc.stdin.flush();
    } catch {}
    const done = await Promise.race([this.proc.exited.then(() => true), sleep(ms).then(() => false)]);
    if (!done) {
      this.proc.kill("SIGKILL");
      throw new Error(`${this.name} did not stop in ${ms / 1000} s; see ${this.logFile}`);
    }
    const text = await this.out;
    const line = text.trim().split("\n").pop() ?? "";
    try {
      return JSON.parse(line);
    } catch {
      throw new Error(`${this.name}: no summary line (exit ${this.proc.exitCode}); see ${this.logFile}`);
    }
  }

  /** Runs to completion (modes with a duration): returns the summary. */
  async done(ms: number): Promise<LoadgenSummary> {
    const ok = await Promise.race([this.proc.exited.then(() => true), sleep(ms).then(() => false)]);
    if (!ok) return this.stop();
    return JSON.parse((await this.out).trim().split("\n").pop() ?? "{}");
  }
}

export type PublisherSummary = { published: number; seconds: number; ratePerS: number; stalls: number; inFlightAtEnd: number; polls: number; cpuSeconds: number };

export async function runPublisher(name: string, args: string[], ms: number): Promise<PublisherSummary> {
  const logFile = join(runDir(), `${name}.log`);
  const proc = Bun.spawn({
    cmd: [BUN, join(import.meta.dir, "publisher.ts"), ...args],
    cwd: ROOT,
    stdout: "pipe",
    stderr: Bun.file(logFile),
  });
  track(name, proc);
  const out = new Response(proc.stdout).text();
  const ok = await Promise.race([proc.exited.then(() => true), sleep(ms).then(() => false)]);
  if (!ok) {
    proc.kill("SIGKILL");
    throw new Error(`${name} did not finish in ${ms / 1000} s`);
  }
  const line = (await out).trim().split("\n").pop() ?? "";
  let sum: PublisherSummary;
  try {
    sum = JSON.parse(line);
  } catch {
    throw new Error(`${name} failed (exit ${proc.exitCode}); see ${logFile}`);
  }
  const ru = proc.resourceUsage();
  sum.cpuSeconds = ru ? (Number(ru.cpuTime.user) + Number(ru.cpuTime.system)) / 1e6 : NaN;
  return sum;
}

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

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

/** CPU seconds of a process and its direct children (the loadgen and its workers). */
export function treeCpuSeconds(pid: number): number {
  let kids: number[] = [];
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {}
  return cpuSeconds(pid) + kids.reduce((a, k) => a + cpuSeconds(k), 0);
}

/** Busy CPU seconds of the whole machine so far (all cores), from /proc/stat. */
export function machineBusySeconds(): number {
  const l = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = l[3] + (l[4] ?? 0);
  return (l.reduce((a, b) => a + b, 0) - idle) / 100;
}

/** Empties a JetStream stream (the gateway's mailbox) so a run starts below every per-user cap. */
export async function purgeStream(natsUrl: string, stream: string): Promise<number> {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: natsUrl, name: "wsgate-bench-admin" });
  try {
    const jsm = await jetstreamManager(nc);
    const r = await jsm.streams.purge(stream);
    return r.purged;
  } finally {
    await nc.close();
  }
}

/** Cores busy on the machine over `ms` while we do nothing: other people's load skews every figure. */
export async function backgroundLoad(ms = 1000): Promise<number> {
  const a = machineBusySeconds();
  await sleep(ms);
  return (machineBusySeconds() - a) / (ms / 1000);
}

export async function warnIfBusy(what: string) {
  const busy = await backgroundLoad();
  if (busy > 0.25) log(`warning: ${busy.toFixed(2)} of 2 cores already busy before ${what}: other processes on the box will skew the figures`);
  return busy;
}

// ───────────────────────── helpers of the mailbox, workers, setup and inbound benchmarks ─────────────────────────

/** Resets a process's peak RSS (VmHWM) to its current RSS (`echo 5 > /proc/<pid>/clear_refs`); false if not allowed. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** Peak RSS (VmHWM) of a process since its start or its last resetPeakRss. */
export function peakRssBytes(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : NaN;
}

/**
 * Watches the peak RSS and CPU of some processes over a stretch of time: VmHWM after a reset
 * when the kernel allows it, and samples every `everyMs` as a floor either way (for a group of
 * processes the peak of their sum is only known from samples).
 */
export class ResourceWatch {
  private cpu0: number[];
  private peaks: number[];
  private sumPeak = 0;
  private timer: ReturnType<typeof setInterval>;
  private hwm: boolean;
  readonly t0 = performance.now();
  constructor(
    private pids: number[],
    everyMs = 100,
  ) {
    this.hwm = pids.every((p) => resetPeakRss(p));
    this.cpu0 = pids.map(cpuSeconds);
    this.peaks = pids.map(rssOrZero);
    this.sumPeak = this.peaks.reduce((a, b) => a + b, 0);
    this.timer = setInterval(() => this.sample(), everyMs);
  }
  private sample() {
    let sum = 0;
    this.pids.forEach((p, i) => {
      const r = rssOrZero(p);
      if (r > this.peaks[i]) this.peaks[i] = r;
      sum += r;
    });
    if (sum > this.sumPeak) this.sumPeak = sum;
  }
  /** Stops watching: CPU seconds used, peak RSS (sum of the processes' peaks, and the sampled peak of the sum), seconds. */
  stop(): { cpuS: number; peakRss: number; peakRssSampled: number; seconds: number; hwm: boolean } {
    this.sample();
    clearInterval(this.timer);
    const cpuS = this.pids.reduce((a, p, i) => a + cpuSeconds(p) - this.cpu0[i], 0);
    const peak = this.pids.reduce((a, p, i) => a + (this.hwm ? Math.max(peakRssOrZero(p), this.peaks[i]) : this.peaks[i]), 0);
    return { cpuS, peakRss: peak, peakRssSampled: this.sumPeak, seconds: (performance.now() - this.t0) / 1000, hwm: this.hwm };
  }
}
function rssOrZero(pid: number) {
  try {
    return rssBytes(pid);
  } catch {
    return 0;
  }
}
function peakRssOrZero(pid: number) {
  try {
    return peakRssBytes(pid);
  } catch {
    return 0;
  }
}

/** Samples `read()` until it changed by less than 0.5% over the last 2 s (at least 3 s, at most `maxS`). */
export async function settleOn(read: () => number, maxS = 20): Promise<{ value: number; seconds: number }> {
  const t0 = Date.now();
  const samples: number[] = [];
  for (;;) {
    samples.push(read());
    const n = samples.length;
    const elapsed = (Date.now() - t0) / 1000;
    if (elapsed >= 3 && n >= 5) {
      const a = samples[n - 5], b = samples[n - 1];
      if (Math.abs(b - a) / a < 0.005) return { value: b, seconds: elapsed };
    }
    if (elapsed >= maxS) return { value: samples[n - 1], seconds: elapsed };
    await sleep(500);
  }
}

/** Sums one metric over every worker's metrics (Server.metricsAll). */
export function sumMetric(all: Map<string, Record<string, number>>, key: string): number {
  let s = 0;
  for (const m of all.values()) s += m[key] ?? 0;
  return s;
}

/**
 * Publishes `perUser` messages to each of `users` (core publishes on <prefix>.recv.<svc>.<user>,
 * as a service would), round by round, at most `window` at a time ahead of what the mailbox
 * stream has stored, so nothing is dropped on the way in. With a stream name it waits until
 * the stream holds them all; returns how many messages the stream gained.
 */
export async function publishToUsers(
  natsUrl: string,
  o: { prefix: string; svc: string; users: string[]; perUser: number; size: number; stream?: string; window?: number; tag?: string },
): Promise<{ published: number; stored: number; seconds: number }> {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: natsUrl, name: "wsgate-bench-backlog" });
  const t0 = performance.now();
  try {
    const jsm = o.stream ? await jetstreamManager(nc) : null;
    const count = async () => (jsm ? Number((await jsm.streams.info(o.stream!)).state.messages) : 0);
    const base = await count();
    const window = o.window ?? 20_000;
    const subjects = o.users.map((u) => `${o.prefix}.recv.${o.svc}.${u}`);
    const tag = o.tag ?? "m";
    let published = 0;
    for (let r = 0; r < o.perUser; r++) {
      for (let i = 0; i < subjects.length; i++) {
        const head = `${tag}${r} `;
        nc.publish(subjects[i], head + "x".repeat(Math.max(0, o.size - head.length)));
        published++;
        if (jsm && published % window === 0) {
          await nc.flush();
          const until = Date.now() + 30_000;
          while ((await count()) - base < published - window && Date.now() < until) await sleep(10);
        }
      }
    }
    await nc.flush();
    let stored = 0;
    if (jsm) {
      const until = Date.now() + 30_000;
      while ((stored = (await count()) - base) < published && Date.now() < until) await sleep(20);
    }
    return { published, stored, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await nc.close();
  }
}

/** nats-server's own view: /varz (cpu %, mem, in/out msgs) from its monitoring port. */
export async function natsVarz(nats: Nats): Promise<{ in_msgs: number; out_msgs: number; mem: number; slow_consumers: number }> {
  const r = await fetch(`http://127.0.0.1:${nats.monitorPort}/varz`);
  return (await r.json()) as never;
}

/** "1.23×" or "-" */
export function ratio(a: number, b: number, digits = 2): string {
  const x = a / b;
  return Number.isFinite(x) ? `${fmt(x, digits)}×` : "-";
}

/** Messages a JetStream stream holds now (NaN when it does not exist). */
export async function streamMessages(natsUrl: string, stream: string): Promise<number> {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: natsUrl, name: "wsgate-bench-admin" });
  try {
    const jsm = await jetstreamManager(nc);
    return Number((await jsm.streams.info(stream)).state.messages);
  } catch {
    return NaN;
  } finally {
    await nc.close();
  }
}

export const MiB = 1024 * 1024;
export const users = (n: number, prefix = "u", offset = 0) => Array.from({ length: n }, (_, i) => `${prefix}${offset + i}`);

/** scripts/bench/subscriber.ts as a child: a NATS subscriber counting messages and their latency. */
export class Subscriber {
  private lines: string[] = [];
  private reader: Promise<void>;
  private constructor(
    readonly name: string,
    private proc: Subprocess<"pipe", "pipe", any>,
    readonly logFile: string,
  ) {
    this.reader = (async () => {
      const dec = new TextDecoder();
      let buf = "";
      for await (const chunk of proc.stdout as unknown as AsyncIterable<Uint8Array>) {
        buf += dec.decode(chunk, { stream: true });
        let i: number;
        while ((i = buf.indexOf("\n")) >= 0) {
          this.lines.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      }
      if (buf.trim()) this.lines.push(buf);
    })();
  }

  static async start(name: string, natsUrl: string, subject: string): Promise<Subscriber> {
    const logFile = join(runDir(), `${name}.log`);
    const proc = Bun.spawn({
      cmd: [BUN, join(import.meta.dir, "subscriber.ts"), "--nats", natsUrl, "--subject", subject, "--max-seconds", "600"],
      cwd: ROOT,
      stdin: "pipe",
      stdout: "pipe",
      stderr: Bun.file(logFile),
    });
    track(name, proc);
    const s = new Subscriber(name, proc, logFile);
    const until = Date.now() + 10_000;
    let line: string | undefined;
    while (!(line = s.lines.find((l) => l.includes('"ready"')))) {
      if (proc.exitCode !== null || Date.now() > until) throw new Error(`${name} did not start; see ${logFile}`);
      await sleep(20);
    }
    s.metricsUrl = `http://127.0.0.1:${JSON.parse(line).port}/metrics`;
    return s;
  }

  /** Its running count, for loadgen --feedback-url (metric wsgate_bench_sub_messages_total). */
  metricsUrl = "";

  get pid() {
    return this.proc.pid;
  }

  async stop(ms = 15_000): Promise<any> {
    try {
      this.proc.stdin.write("stop\n");
      this.proc.stdin.flush();
      this.proc.stdin.end();
    } catch {}
    const ok = await Promise.race([this.proc.exited.then(() => true), sleep(ms).then(() => false)]);
    if (!ok) {
      this.proc.kill("SIGKILL");
      throw new Error(`${this.name} did not stop; see ${this.logFile}`);
    }
    await this.reader;
    return JSON.parse(this.lines.filter((l) => l.startsWith('{"tool"')).pop() ?? "{}");
  }
}

/** Waits until nats-server's in_msgs stop moving for `quietMs` (bounded by `ms`): a burst has drained. */
export async function natsQuiet(nats: Nats, quietMs = 500, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  let last = -1;
  let since = Date.now();
  while (Date.now() < until) {
    const v = await natsVarz(nats).catch(() => null);
    const n = v ? v.in_msgs + v.out_msgs : -1;
    if (n !== last) {
      last = n;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return;
    await sleep(100);
  }
}
