import { describe, expect, test } from "bun:test";
import { explainPlacement, PlacementRefused } from "../../app/mailbox/streams.ts";
import type { MailboxConfig } from "../../app/ops/config.ts";

const config = (replicas: number) => ({ stream: "WSGATE", maxAgeS: 60, maxPerUser: 0, maxBytes: 10 * 1024 ** 3, replicas, cursorFlushMs: 1000, catchupConcurrency: 128 }) as MailboxConfig;
/** a connection that was told of three servers */
const nc = { info: { connect_urls: ["10.0.0.1:4222", "10.0.0.2:4222", "10.0.0.3:4222"] }, getServer: () => "10.0.0.1:4222" } as never;

async function refusal(text: string, replicas: number): Promise<unknown> {
  return explainPlacement(new Error(text), config(replicas), nc).catch((e) => e);
}

describe("mailbox stream placement refusals", () => {
  test("replicas on a single server: one line naming WSGATE_MAILBOX_REPLICAS and the fix", async () => {
    const e = await refusal("JetStreamApiError: replicas > 1 not supported in non-clustered mode", 3);
    expect(e).toBeInstanceOf(PlacementRefused);
    expect(String((e as Error).message)).toStartWith("WSGATE_MAILBOX_REPLICAS=3 cannot be held: JetStream runs on a single NATS server, not a cluster; set WSGATE_MAILBOX_REPLICAS=1");
    expect((e as Error).message).not.toContain("\n");
  });

  test("more replicas than servers: names the cluster's size", async () => {
    const e = (await refusal("JetStreamApiError: no suitable peers for placement", 5)) as Error;
    expect(e).toBeInstanceOf(PlacementRefused);
    expect(e.message).toContain("WSGATE_MAILBOX_REPLICAS=5 cannot be held: the NATS cluster has 3 server(s) for 5 replicas; set WSGATE_MAILBOX_REPLICAS to 3 or less");
  });

  test("not enough storage for WSGATE_MAILBOX_MAX_BYTES: says so, whatever the replica count", async () => {
    const e = (await refusal("JetStreamApiError: insufficient storage resources available", 1)) as Error;
    expect(e).toBeInstanceOf(PlacementRefused);
    expect(e.message).toContain(`WSGATE_MAILBOX_MAX_BYTES=${10 * 1024 ** 3}`);
    expect(e.message).toContain("max_file_store");
  });

  test("any other error is passed on unchanged", async () => {
    const e = await refusal("TimeoutError: timeout", 3);
    expect(e).not.toBeInstanceOf(PlacementRefused);
    expect(String(e)).toContain("timeout");
  });
});
