import { expect, test } from "bun:test";
import { checkConfig, ConfigError, loadConfig } from "../../app/ops/config.ts";

test("defaults", () => {
  const c = loadConfig({});
  expect(c.port).toBe(8080);
  expect(c.host).toBe("0.0.0.0");
  expect(c.natsUrl).toBeUndefined();
  expect(c.prefix).toBe("ws");
  expect(c.maxMessageBytes).toBe(65536);
  expect(c.nodeId).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
});

test("reads values and treats empty as unset", () => {
  const c = loadConfig({ PORT: "9000", NATS_URL: "nats://127.0.0.1:4222,nats://127.0.0.2:4222", WSGATE_SUBJECT_PREFIX: "app.ws", HOST: "" });
  expect(c.port).toBe(9000);
  expect(c.natsUrl).toBe("nats://127.0.0.1:4222,nats://127.0.0.2:4222");
  expect(c.prefix).toBe("app.ws");
  expect(c.host).toBe("0.0.0.0");
});

test("a bad value names the variable and the rule", () => {
  const bad: [Record<string, string>, string][] = [
    [{ PORT: "70000" }, "PORT=\"70000\" rejected: PORT must be at most 65535"],
    [{ PORT: "-1" }, "PORT must be a whole number"],
    [{ WSGATE_SUBJECT_PREFIX: "a.*" }, "WSGATE_SUBJECT_PREFIX"],
    [{ WSGATE_LOG_LEVEL: "loud" }, "WSGATE_LOG_LEVEL must be one of"],
    [{ WSGATE_NODE_ID: "a.b" }, "WSGATE_NODE_ID must match"],
  ];
  for (const [env, msg] of bad) {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(msg);
  }
});

test("every bad variable is reported at once, one line each", () => {
  let message = "";
  try {
    loadConfig({ PORT: "http", WSGATE_LOG_LEVEL: "loud", WSGATE_MAX_CONNECTIONS: "0" });
  } catch (err) {
    message = (err as Error).message;
  }
  const lines = message.split("\n");
  expect(lines).toHaveLength(3);
  expect(lines.find((l) => l.startsWith('config: PORT="http" rejected'))).toBeDefined();
  expect(lines.find((l) => l.startsWith("config: WSGATE_LOG_LEVEL="))).toBeDefined();
  expect(lines.find((l) => l.startsWith("config: WSGATE_MAX_CONNECTIONS="))).toBeDefined();
});

test("checkConfig lists errors and warnings without throwing", () => {
  const r = checkConfig({ WSGATE_JWT_SECRET: "short", WSGATE_TLS_CERT: "/etc/cert.pem", WSGATE_MAX_CONECTIONS: "5" });
  expect(r.config).toBeNull();
  expect(r.errors).toEqual([expect.stringContaining("WSGATE_JWT_SECRET=<hidden> rejected"), "config: WSGATE_TLS_KEY is required when WSGATE_TLS_CERT is set"]);
  expect(r.warnings).toEqual(["config: WSGATE_MAX_CONECTIONS is not a wsgate setting and is ignored; did you mean WSGATE_MAX_CONNECTIONS?"]);
});

test("a certificate without a key names the missing variable", () => {
  expect(() => loadConfig({ WSGATE_TLS_CERT: "/etc/cert.pem" })).toThrow("config: WSGATE_TLS_KEY is required when WSGATE_TLS_CERT is set");
  expect(() => loadConfig({ WSGATE_TLS_KEY: "/etc/key.pem" })).toThrow("config: WSGATE_TLS_CERT is required when WSGATE_TLS_KEY is set");
});

test("cross-variable rules are reported together with the rest", () => {
  const r = checkConfig({ WSGATE_WORKERS: "2", WSGATE_TLS_KEY: "/k", WSGATE_JWT_SECRET: "x".repeat(32), WSGATE_JWT_PUBLIC_KEY: "/p" });
  expect(r.errors).toHaveLength(3);
});

test("unknown WSGATE_ names far from any setting get no suggestion; launcher names are not warned about", () => {
  const r = checkConfig({ WSGATE_COLOUR: "blue", WSGATE_RUNTIMES: "bun", WSGATE_BENCH_PORTS: "1", OTHER: "x" });
  expect(r.warnings).toEqual(["config: WSGATE_COLOUR is not a wsgate setting and is ignored"]);
  expect(r.config).not.toBeNull();
});

test("the connection cap is only an operator's choice when set", () => {
  expect(loadConfig({}).maxConnectionsSet).toBe(false);
  const c = loadConfig({ WSGATE_MAX_CONNECTIONS: "5" });
  expect(c.maxConnections).toBe(5);
  expect(c.maxConnectionsSet).toBe(true);
});

test("the metrics listener is per worker and on loopback in production mode", () => {
  expect(loadConfig({}).metrics).toBeNull();
  expect(loadConfig({ WSGATE_METRICS_PORT: "9100" }).metrics).toEqual({ port: 9100, host: "0.0.0.0" });
  expect(loadConfig({ WSGATE_METRICS_PORT: "9100", WSGATE_JWT_SECRET: "s".repeat(32) }).metrics).toEqual({ port: 9100, host: "127.0.0.1" });
  expect(loadConfig({ WSGATE_METRICS_PORT: "9100", WSGATE_WORKER: "3", WSGATE_METRICS_HOST: "::1" }).metrics).toEqual({ port: 9102, host: "::1" });
});

test("a metrics port that collides with the client port is refused", () => {
  expect(() => loadConfig({ WSGATE_METRICS_PORT: "8080" })).toThrow("must not include PORT (8080)");
  expect(() => loadConfig({ PORT: "9001", WSGATE_METRICS_PORT: "9000", WSGATE_WORKERS: "2", NATS_URL: "nats://x:4222" })).toThrow("metrics ports must not include PORT");
  expect(() => loadConfig({ WSGATE_METRICS_PORT: "65535", WSGATE_WORKERS: "2", NATS_URL: "nats://x:4222" })).toThrow("past port 65535");
});
