// The separate /metrics listener (WSGATE_METRICS_PORT). node:http serves it the same way on
// Bun, Node and Deno, so the three adapters share this one small file.
import { createServer } from "node:http";
import type { Gateway } from "../app/core/gateway.ts";
import { log } from "../app/ops/log.ts";
import { metricsFetch } from "../app/ops/metrics-route.ts";

export type MetricsListener = { port: number; close(): void };

/** Resolves once listening; rejects with one line naming the address when it cannot. */
export function listenMetrics(port: number, host: string, fetch: (req: Request) => Response | Promise<Response>): Promise<MetricsListener> {
  const server = createServer(async (req, res) => {
    try {
      const r = await fetch(new Request(`http://${host}:${port}${req.url ?? "/"}`, { method: req.method }));
      res.writeHead(r.status, Object.fromEntries(r.headers));
      res.end(req.method === "HEAD" ? undefined : await r.text());
    } catch (err) {
      res.writeHead(500).end(`internal error: ${String(err)}\n`);
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", (err) => reject(new Error(`metrics listener on ${host}:${port}: ${(err as Error).message}`)));
    server.listen(port, host, () => {
      const addr = server.address();
      resolve({ port: typeof addr === "object" && addr ? addr.port : port, close: () => server.close() });
    });
  });
}

/** Opens the listener when WSGATE_METRICS_PORT is set; a port it cannot take stops the start (status 1). */
export async function serveMetrics(gw: Gateway, exit: (code: number) => never): Promise<void> {
  const m = gw.config.metrics;
  if (!m) return;
  try {
    const l = await listenMetrics(m.port, m.host, metricsFetch(gw));
    log("info", "metrics listening", { host: m.host, port: l.port });
  } catch (err) {
    console.error(`wsgate: ${(err as Error).message}`);
    exit(1);
  }
}
