// The three-server NATS cluster of scripts/nats-cluster.ts as the benchmarks' `Nats`: the URL
// list for clients, and every server's PID so CPU and memory are counted for all three.
import { startCluster } from "../nats-cluster.ts";
import type { Nats } from "./lib.ts";

export type ClusterNats = Nats & { pids: number[] };

export async function startClusterNats(): Promise<ClusterNats> {
  const c = await startCluster();
  const first = c.nodes[0];
  return {
    url: c.url,
    port: first.port,
    monitorPort: first.monitorPort,
    pid: first.proc!.pid,
    pids: c.nodes.map((n) => n.proc!.pid),
    // interest propagates over the routes: one server's table counts every client's subscriptions
    async subscriptions() {
      const r = await fetch(`http://127.0.0.1:${first.monitorPort}/subsz`);
      return Number(((await r.json()) as { num_subscriptions: number }).num_subscriptions);
    },
    stop: () => c.close(),
  };
}

/** Every PID of a `Nats`: the cluster's three, or the single server's one. */
export function natsPids(n: Nats): number[] {
  return "pids" in n ? (n as ClusterNats).pids : [n.pid];
}
