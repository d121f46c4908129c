// The Prometheus scrape answer, served on the client port or, with WSGATE_METRICS_PORT,
// on a listener of its own that the adapter opens (see adapters/metrics-listener.ts).
import type { Gateway } from "../core/gateway.ts";
import { renderGroupMetrics } from "../groups/setup.ts";

const HEADERS = { "content-type": "text/plain; version=0.0.4; charset=utf-8" };

export function metricsResponse(gw: Gateway): Response {
  const groups = gw.groups ? renderGroupMetrics(gw.groups.stats) : "";
  return new Response(gw.metrics.render(gw.config.nodeId, gw.transport.runtime, gw.transport.processStats?.()) + groups, { headers: HEADERS });
}

/** The separate listener's whole surface: /metrics and nothing else. */
export function metricsFetch(gw: Gateway): (req: Request) => Response {
  return (req) => {
    const path = new URL(req.url).pathname;
    if (path !== "/metrics") return new Response("not found: this listener serves /metrics only\n", { status: 404 });
    if (req.method !== "GET" && req.method !== "HEAD") return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
    return metricsResponse(gw);
  };
}
