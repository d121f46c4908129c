import { expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../../app/ops/config.ts";

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
