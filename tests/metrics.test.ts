// WSGATE_METRICS_PORT: /metrics on a listener of its own, with process metrics and the build.
import { expect, test } from "bun:test";
import { freePort, RUNTIMES, startGateway } from "./helpers/procs.ts";
import { SECRET } from "./helpers/security.ts";

const value = (text: string, series: string) => {
  const line = text.split("\n").find((l) => l.startsWith(series + " ") || l.startsWith(series + "{"));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
};

for (const runtime of RUNTIMES) {
  test(`${runtime}: WSGATE_METRICS_PORT moves /metrics off the client port and adds process and build series`, async () => {
    const metricsPort = await freePort();
    const gw = await startGateway(runtime, { env: { WSGATE_METRICS_PORT: String(metricsPort) } });
    try {
      await gw.fetch("/metrics").then(async (r) => expect(r.status).toBe(404));
      const r = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      expect(r.status).toBe(200);
      const text = await r.text();
      expect(text).toContain(`wsgate_build_info{version="`);
      expect(text).toContain(`runtime="${runtime}"} 1`);
      expect(value(text, "wsgate_connections")).toBe(0);
      expect(value(text, "process_resident_memory_bytes")).toBeGreaterThan(1_000_000);
      expect(value(text, "process_cpu_seconds_total")).toBeGreaterThan(0);
      const started = value(text, "process_start_time_seconds")!;
      expect(Math.abs(started - Date.now() / 1000)).toBeLessThan(300);
      if (runtime !== "deno") expect(value(text, "process_open_fds")).toBeGreaterThan(2);
      expect((await fetch(`http://127.0.0.1:${metricsPort}/ws`)).status).toBe(404);
      expect(gw.output()).toContain(`"msg":"metrics listening","node":"${gw.nodeId}","host":"127.0.0.1","port":${metricsPort}`);
    } finally {
      await gw.stop();
    }
  }, 90_000);
}

test("in production mode the metrics listener is on loopback unless WSGATE_METRICS_HOST says otherwise", async () => {
  const metricsPort = await freePort();
  const gw = await startGateway("bun", { env: { HOST: "0.0.0.0", WSGATE_JWT_SECRET: SECRET, WSGATE_METRICS_PORT: String(metricsPort) } });
  try {
    expect(gw.output()).toContain(`"msg":"metrics listening","node":"${gw.nodeId}","host":"127.0.0.1"`);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).status).toBe(200);
  } finally {
    await gw.stop();
  }
});

test("without WSGATE_METRICS_PORT /metrics stays on the client port, with the build series", async () => {
  const gw = await startGateway("bun");
  try {
    const text = await (await gw.fetch("/metrics")).text();
    expect(text).toContain(`wsgate_build_info{version="`);
    expect(value(text, "process_open_fds")).toBeGreaterThan(2);
  } finally {
    await gw.stop();
  }
});
