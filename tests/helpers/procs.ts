// Processes the tests start: nats-server and gateways on free ports, each stopped by its
// own PID, on the harness the benchmarks share (scripts/harness). Nothing here reaches a
// service someone else left running.
import type { Subprocess } from "bun";
import { join } from "node:path";
import { freePort as harnessPort, GiveUp, ROOT, startProcess, waitFor, waitHttpOk } from "../../scripts/harness/procs.ts";
import { type Nats, type NatsOptions, startNats as harnessNats } from "../../scripts/harness/nats.ts";

export { ROOT, waitFor, type Nats };
export type Runtime = "bun" | "node" | "deno";
export const RUNTIMES: Runtime[] = (process.env.WSGATE_RUNTIMES?.split(",") as Runtime[]) ?? ["bun", "node", "deno"];

/** A port nobody listens on right now (the kernel picks it). */
export async function freePort(): Promise<number> {
  return harnessPort();
}

export function startNats(opts: Pick<NatsOptions, "jetstream" | "port" | "config"> = {}): Promise<Nats> {
  return harnessNats(opts);
}

export function stopNatsAndClean(n: Nats) {
  return n.clean();
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
  const port = opts.port ?? harnessPort();
  const nodeId = `t${process.pid}-${++nodeCounter}`;
  const env = { ...process.env, PORT: String(port), HOST: "127.0.0.1", WSGATE_NODE_ID: nodeId, ...opts.env } as Record<string, string>;
  if (!opts.env?.NATS_URL) delete env.NATS_URL;
  const cmd = opts.cmd ?? ["sh", join(ROOT, "scripts", "start.sh"), runtime];
  const child = startProcess({ name: `gateway-${runtime}-${port}`, cmd, env });
  const proc = child.proc;
  const tls = Boolean(opts.env?.WSGATE_TLS_CERT);
  const get = (url: string, init?: RequestInit) => fetch(url, tls ? ({ ...init, tls: { rejectUnauthorized: false } } as RequestInit) : init);
  const gw: Gateway = {
    runtime,
    port,
    http: `${tls ? "https" : "http"}://127.0.0.1:${port}`,
    ws: `${tls ? "wss" : "ws"}://127.0.0.1:${port}/ws`,
    nodeId,
    proc,
    tls,
    fetch: (path, init) => get(gw.http + path, init),
    output: child.output,
    finished: child.finished,
    stop: (signal = "SIGTERM") => child.stop(signal, 15_000),
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
        if (proc.exitCode !== null) throw new GiveUp(`gateway exited with ${proc.exitCode}:\n${child.output()}`);
        return child.output().includes('"wsgate listening"');
      },
      60_000,
    );
    if (opts.waitReady !== false) {
      await waitHttpOk(`${runtime} gateway ready`, `${gw.http}/readyz`, child, 30_000, tls ? ({ tls: { rejectUnauthorized: false } } as RequestInit) : undefined);
    }
  }
  return gw;
}
