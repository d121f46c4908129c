// nats-server for tests and benchmarks: on free ports, with or without JetStream, its store
// in a temp dir, ready once its monitoring port says healthy. Can be stopped and started
// again on the same ports and store (a server restart).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Child, freePort, startProcess, waitHttpOk } from "./procs.ts";

/** Debian installs it in /usr/sbin, which is not on every PATH. */
export const NATS_SERVER = process.env.NATS_SERVER ?? "/usr/sbin/nats-server";

export type Nats = {
  port: number;
  url: string;
  monitor: number;
  storeDir: string;
  proc: Child["proc"];
  stop(): Promise<void>;
  start(): Promise<void>;
  /** stops it and removes its store */
  clean(): Promise<void>;
  /** subscriptions the server holds for the named client connection */
  subsOf(clientName: string): Promise<string[]>;
  /** subscriptions the server holds in all */
  subscriptions(): Promise<number>;
};

export type NatsOptions = {
  jetstream?: boolean;
  port?: number;
  monitor?: number;
  /** nats-server configuration text, written beside the store */
  config?: string;
  /** where its output goes (default: kept in memory) */
  logFile?: string;
  /** prefix of the store's temp dir */
  tmpPrefix?: string;
};

export async function startNats(opts: NatsOptions = {}): Promise<Nats> {
  const port = opts.port ?? freePort();
  const monitor = opts.monitor ?? freePort();
  const storeDir = mkdtempSync(join(tmpdir(), opts.tmpPrefix ?? "wsgate-nats-"));
  let child: Child | null = null;
  const nats: Nats = {
    port,
    url: `nats://127.0.0.1:${port}`,
    monitor,
    storeDir,
    proc: null as unknown as Child["proc"],
    async start() {
      const args = [NATS_SERVER, "-a", "127.0.0.1", "-p", String(port), "-m", String(monitor)];
      if (opts.jetstream) args.push("-js", "-sd", storeDir);
      if (opts.config) {
        const file = join(storeDir, "nats.conf");
        writeFileSync(file, opts.config);
        args.push("-c", file);
      }
      const c = startProcess({ name: `nats-server-${port}`, cmd: args, env: process.env as Record<string, string>, logFile: opts.logFile });
      child = c;
      nats.proc = c.proc;
      await waitHttpOk(`nats-server on ${port}`, `http://127.0.0.1:${monitor}/healthz`, c, 10_000).catch((err) => {
        throw new Error(`${err.message}\n${c.output().slice(-2000)}`);
      });
    },
    async stop() {
      await child?.stop("SIGTERM", 5_000);
    },
    async clean() {
      await nats.stop();
      rmSync(storeDir, { recursive: true, force: true });
    },
    async subsOf(clientName) {
      const r = await (await fetch(`http://127.0.0.1:${monitor}/connz?subs=1`)).json();
      const c = (r.connections ?? []).find((x: { name?: string }) => x.name?.includes(clientName));
      return c?.subscriptions_list ?? [];
    },
    async subscriptions() {
      const r = await fetch(`http://127.0.0.1:${monitor}/subsz`);
      return Number(((await r.json()) as { num_subscriptions: number }).num_subscriptions);
    },
  };
  await nats.start();
  return nats;
}
