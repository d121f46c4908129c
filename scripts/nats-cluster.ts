// A local three-server NATS cluster with JetStream, for development, tests and benchmarks.
//
//   bun scripts/nats-cluster.ts        # prints NATS_URL=…; Ctrl-C stops it and removes its data
//
// Imported, it starts, stops, kills (-9) and restarts single servers and says which one
// leads a stream. Each server's config is deploy/nats-cluster/nats.conf.tmpl with its
// ports and folder filled in, so the committed example is exactly what runs here.
import type { Subprocess } from "bun";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NATS_SERVER } from "./harness/nats.ts";
import { type Child, freePort, GiveUp, startProcess, waitFor } from "./harness/procs.ts";

export { NATS_SERVER };
const TEMPLATE = join(import.meta.dir, "..", "deploy", "nats-cluster", "nats.conf.tmpl");

export type ClusterNode = {
  index: number;
  name: string;
  /** client URL of this server alone */
  url: string;
  port: number;
  clusterPort: number;
  monitorPort: number;
  storeDir: string;
  running: boolean;
  proc: Subprocess | null;
  /** the running server as the harness tracks it (stopped by PID) */
  child: Child | null;
};

export type NatsCluster = {
  nodes: ClusterNode[];
  /** every server, comma-separated: what NATS_URL takes */
  url: string;
  dir: string;
  /** starts a stopped server again with its data and waits until it serves clients */
  start(i: number): Promise<void>;
  /** SIGTERM: a clean shutdown (lame duck, leadership handed over) */
  stop(i: number): Promise<void>;
  /** SIGKILL: the server dies as in a crash, nothing handed over */
  kill(i: number): Promise<void>;
  restart(i: number): Promise<void>;
  /** index of the server leading the stream, null while it has none (or does not exist) */
  streamLeader(stream: string): Promise<number | null>;
  /** waits until the stream has a leader (optionally not `not`) with every replica current */
  waitStreamLeader(stream: string, opts?: { not?: number; timeoutMs?: number }): Promise<number>;
  /** waits until the stream has a leader and every other replica is current (a rejoined server caught up) */
  waitCurrent(stream: string, timeoutMs?: number): Promise<void>;
  /** index of the server the named client connection is on (its CONNECT name contains `name`), null when none */
  serverOf(clientName: string): Promise<number | null>;
  /** waits until every running server sees the same JetStream meta leader */
  waitReady(timeoutMs?: number): Promise<void>;
  /** stops every server and removes the data folder */
  close(): Promise<void>;
};

export type ClusterOptions = {
  /** servers in the cluster (3 unless a test needs another shape) */
  size?: number;
  host?: string;
  /** parent of the per-server folders; a new temp dir when unset (removed by close()) */
  dir?: string;
  maxFileStore?: string;
};

/** Fills the committed template's {{…}} fields; an unknown or missing field is an error. */
export function renderConfig(template: string, values: Record<string, string | number>): string {
  return template.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    if (!(key in values)) throw new Error(`nats.conf.tmpl: no value for {{${key}}}`);
    return String(values[key]);
  });
}

export function readTemplate(): string {
  return readFileSync(TEMPLATE, "utf8");
}

type StreamDetail = { name: string; cluster?: { leader?: string; replicas?: { name: string; current: boolean; offline?: boolean }[] } };
type Jsz = { meta_cluster?: { leader?: string; cluster_size?: number }; account_details?: { stream_detail?: StreamDetail[] }[] };

/** temp dirs this process made, removed even when it exits without close() (the harness kills the servers) */
const dirs = new Set<string>();
process.on("exit", () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

export async function startCluster(opts: ClusterOptions = {}): Promise<NatsCluster> {
  const size = opts.size ?? 3;
  const host = opts.host ?? "127.0.0.1";
  const ownDir = !opts.dir;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "wsgate-nats-cluster-"));
  if (ownDir) dirs.add(dir);
  const template = readTemplate();
  const nodes: ClusterNode[] = [];
  for (let i = 0; i < size; i++) {
    const [port, clusterPort, monitorPort] = [freePort(), freePort(), freePort()];
    const name = `n${i + 1}`;
    const storeDir = join(dir, name);
    mkdirSync(storeDir, { recursive: true });
    nodes.push({ index: i, name, url: `nats://${host}:${port}`, port, clusterPort, monitorPort, storeDir, running: false, proc: null, child: null });
  }
  const routes = nodes.map((n) => `nats://${host}:${n.clusterPort}`).join("\n    ");
  for (const n of nodes) {
    const conf = renderConfig(template, {
      name: n.name,
      host,
      client_port: n.port,
      monitor_port: n.monitorPort,
      cluster_port: n.clusterPort,
      store_dir: n.storeDir,
      max_file_store: opts.maxFileStore ?? "64GB",
      routes,
    });
    writeFileSync(join(n.storeDir, "nats.conf"), conf);
  }

  const jsz = async (n: ClusterNode, query = ""): Promise<Jsz> => (await fetch(`http://${host}:${n.monitorPort}/jsz${query}`)).json() as Promise<Jsz>;
  const running = () => nodes.filter((n) => n.running);
  const node = (i: number) => {
    const n = nodes[i];
    if (!n) throw new Error(`no server ${i} in a cluster of ${nodes.length}`);
    return n;
  };

  const cluster: NatsCluster = {
    nodes,
    url: nodes.map((n) => n.url).join(","),
    dir,
    async start(i) {
      const n = node(i);
      if (n.running) return;
      const child = startProcess({
        name: `nats-server ${n.name}`,
        cmd: [NATS_SERVER, "-c", join(n.storeDir, "nats.conf")],
        env: process.env as Record<string, string>,
        logFile: join(n.storeDir, "server.log"),
      });
      n.child = child;
      n.proc = child.proc;
      n.running = true;
      await waitFor(`${n.name} serving on ${n.port}`, async () => {
        if (child.proc.exitCode !== null) throw new GiveUp(`nats-server ${n.name} exited with ${child.proc.exitCode}; see ${join(n.storeDir, "server.log")}`);
        return (await fetch(`http://${host}:${n.monitorPort}/varz`)).ok;
      }, 20_000, 50);
    },
    async stop(i) {
      await end(node(i), "SIGTERM");
    },
    async kill(i) {
      await end(node(i), "SIGKILL");
    },
    async restart(i) {
      await cluster.stop(i);
      await cluster.start(i);
    },
    async streamLeader(stream) {
      const s = await detail(stream);
      return nodes.find((x) => x.name === s?.cluster?.leader && x.running)?.index ?? null;
    },
    async waitCurrent(stream, timeoutMs = 30_000) {
      await waitFor(`every replica of ${stream} current`, async () => {
        const c = (await detail(stream))?.cluster;
        const others = c?.replicas ?? [];
        return Boolean(c?.leader) && others.length === nodes.length - 1 && others.every((r) => r.current && !r.offline);
      }, timeoutMs, 50);
    },
    async serverOf(clientName) {
      for (const n of running()) {
        try {
          const r = (await (await fetch(`http://${host}:${n.monitorPort}/connz?limit=10000`)).json()) as { connections?: { name?: string }[] };
          if (r.connections?.some((c) => c.name?.includes(clientName))) return n.index;
        } catch {
          // going down or not up yet
        }
      }
      return null;
    },
    async waitStreamLeader(stream, o = {}) {
      // boxed: server 0 is a leader too, and waitFor takes a falsy value for "not yet"
      const found = await waitFor(`a leader for stream ${stream}${o.not !== undefined ? ` other than ${nodes[o.not].name}` : ""}`, async () => {
        const i = await cluster.streamLeader(stream);
        return i !== null && i !== o.not ? { i } : null;
      }, o.timeoutMs ?? 30_000, 50);
      return found.i;
    },
    async waitReady(timeoutMs = 30_000) {
      await waitFor("a JetStream meta leader seen by every running server", async () => {
        const leaders = await Promise.all(running().map(async (n) => (await jsz(n)).meta_cluster?.leader ?? ""));
        return leaders.length > 0 && leaders.every((l) => l && l === leaders[0]);
      }, timeoutMs, 50);
    },
    async close() {
      await Promise.all(nodes.map((n) => end(n, "SIGTERM")));
      if (ownDir) {
        rmSync(dir, { recursive: true, force: true });
        dirs.delete(dir);
      }
    },
  };

  /**
   * The stream as its leader describes it: only the leader knows whether the other replicas
   * are current (a follower reports its peers as not current). Null while it has no leader.
   */
  async function detail(stream: string): Promise<StreamDetail | null> {
    for (const n of running()) {
      try {
        const r = await jsz(n, "?streams=true");
        for (const acc of r.account_details ?? []) {
          const s = acc.stream_detail?.find((d) => d.name === stream);
          if (s?.cluster?.leader === n.name) return s;
        }
      } catch {
        // this server is going down or not up yet: ask the next
      }
    }
    return null;
  }

  async function end(n: ClusterNode, signal: "SIGTERM" | "SIGKILL") {
    const c = n.child;
    n.running = false;
    if (!c) return;
    // lame-duck mode can hold a clean shutdown for a while: bounded, then forced
    await c.stop(signal, 15_000);
    n.child = null;
    n.proc = null;
  }

  try {
    await Promise.all(nodes.map((n) => cluster.start(n.index)));
    await cluster.waitReady();
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}

if (import.meta.main) {
  const cluster = await startCluster();
  console.log(`NATS_URL=${cluster.url}`);
  for (const n of cluster.nodes) console.log(`${n.name}: client ${n.url}  monitor http://127.0.0.1:${n.monitorPort}  data ${n.storeDir}`);
  console.log("Ctrl-C stops the cluster and removes its data.");
  const stop = async () => {
    await cluster.close();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
