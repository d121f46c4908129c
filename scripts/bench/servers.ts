// Servers under test as child processes: the gateway as operators start it, the reference
// servers, each with the GC hook preloaded; ready checks, metrics and heap readings.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { childPids, isShell, servingPid, startProcess } from "../harness/procs.ts";
import { BUN, freePort, log, ROOT, runDir, sleep } from "./base.ts";
import { cpuSeconds, rssBytes } from "./measure.ts";

// ───────────────────────── servers under test ─────────────────────────

export type HeapInfo = { heapSize: number; heapCapacity: number; objectCount: number; extraMemorySize: number; rss: number; top: [string, number][] };

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

export async function startServer(name: string, cmd: string[], env: Record<string, string>, readyPath: string, opts: ServerOptions = {}): Promise<Server> {
  const port = opts.port ?? freePort("http");
  const workers = opts.workers ?? 1;
  const hookOut = join(runDir(), `${name}-${port}${opts.port ? `-${Math.random().toString(36).slice(2, 7)}` : ""}.heap`);
  const logFile = hookOut.replace(/\.heap$/, ".log");
  const hookEnv: Record<string, string> =
    opts.runtime === "node"
      ? { NODE_OPTIONS: `--expose-gc --import ${pathToFileURL(join(import.meta.dir, "gc-hook-node.mjs")).href}` }
      : { BUN_OPTIONS: `--preload ${join(import.meta.dir, "gc-hook.ts")}` };
  const rec = startProcess({
    name,
    cmd,
    env: childEnv({
      ...env,
      PORT: String(port),
      HOST: "127.0.0.1",
      ...hookEnv,
      WSGATE_BENCH_HOOK_OUT: hookOut,
    }),
    logFile,
  });
  const proc = rec.proc;
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
      pids = childPids(proc.pid).filter((p) => !isShell(p));
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
          return { heapSize: sum((h) => h.heapSize), heapCapacity: sum((h) => h.heapCapacity), objectCount: sum((h) => h.objectCount), extraMemorySize: sum((h) => h.extraMemorySize), rss: sum((h) => h.rss), top: hs[0]!.top ?? [] };
        }
      }
      return null;
    },
    stop: async () => void (await rec.stop("SIGTERM", 8000)),
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
export function startRefUws(name: string, env: Record<string, string> = {}): Promise<Server> {
  // Node cannot raise its own open-files limit: the shell does, as scripts/start.sh does for the gateway.
  return startServer(name, ["sh", "-c", `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec node ${join(import.meta.dir, "ref-uws.mjs")}`], env, "/readyz", { runtime: "node" });
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

/** Sums one metric over every worker's metrics (Server.metricsAll). */
export function sumMetric(all: Map<string, Record<string, number>>, key: string): number {
  let s = 0;
  for (const m of all.values()) s += m[key] ?? 0;
  return s;
}
