// The nats.js fast paths (app/broker/nats-internals.ts) are the ones running on the
// installed client: lean subscriptions instead of stock ones, header blocks read from the
// raw bytes. Both fall back quietly at run time when nats.js changes shape; these tests
// are what fails loudly instead, after an upgrade of @nats-io/*.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import type { BrokerHooks, FrameHint } from "../app/broker/broker.ts";
import { NatsBroker } from "../app/broker/nats.ts";
import { LeanSub } from "../app/broker/nats-internals.ts";
import { loadNatsLink } from "../app/broker/nats-link.ts";
import { loadConfig } from "../app/ops/config.ts";
import { type Nats, startNats, stopNatsAndClean, waitFor } from "./helpers/procs.ts";

type Delivered = { subject: string; data: string; hint: FrameHint; seq: number; prev: number };

let nats: Nats;
let nc: NatsConnection;
let broker: NatsBroker;
const delivered: Delivered[] = [];
const NAME = `wsgate internals-${process.pid}`;

beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  const hooks: BrokerHooks = {
    deliver: (subject, data, hint, seq, prev) => delivered.push({ subject, data: new TextDecoder().decode(data), hint, seq, prev }),
    rewatchAll: () => {},
    onState: () => {},
  };
  broker = new NatsBroker(loadNatsLink(loadConfig({ NATS_URL: nats.url }).nats!), NAME, hooks);
  await broker.start();
  await waitFor("the broker connected", () => broker.state() === "connected");
});

afterAll(async () => {
  await broker?.close();
  await nc?.close();
  if (nats) await stopNatsAndClean(nats);
});

describe("nats.js internals on the installed client", () => {
  test("user subscriptions are lean ones, registered with the server and dropped by unwatch", async () => {
    expect(broker.internals().leanSubscriptions).toBe(true);
    const handle = broker.watch("ws.recv.s1.lean");
    expect(handle).toBeInstanceOf(LeanSub);
    await waitFor("the SUB at the server", async () => (await nats.subsOf(NAME)).includes("ws.recv.s1.lean"));
    nc.publish("ws.recv.s1.lean", "hello");
    await waitFor("the message delivered through the lean subscription", () => delivered.find((d) => d.subject === "ws.recv.s1.lean"));
    broker.unwatch(handle);
    await waitFor("the UNSUB at the server", async () => !(await nats.subsOf(NAME)).includes("ws.recv.s1.lean"));
  });

  test("a subscription given its subject again as a fresh string (Users.renewKeys) still delivers and unwatches", async () => {
    const handle = broker.watch("ws.recv.s1.renew") as LeanSub;
    await waitFor("the SUB at the server", async () => (await nats.subsOf(NAME)).includes("ws.recv.s1.renew"));
    broker.renewed(handle, new TextDecoder().decode(new TextEncoder().encode("ws.recv.s1.renew")));
    expect(handle.subject).toBe("ws.recv.s1.renew");
    nc.publish("ws.recv.s1.renew", "after");
    await waitFor("delivered under the renewed subject", () => delivered.find((d) => d.subject === "ws.recv.s1.renew" && d.data === "after"));
    broker.unwatch(handle);
    await waitFor("the UNSUB at the server", async () => !(await nats.subsOf(NAME)).includes("ws.recv.s1.renew"));
  });

  test("headers are read from the raw message bytes: sequences and frame hint, no fallback", async () => {
    broker.watch("ws.recv.s1.raw");
    await waitFor("the SUB at the server", async () => (await nats.subsOf(NAME)).includes("ws.recv.s1.raw"));
    const h = natsHeaders();
    h.set("Ws-Frame", "binary");
    h.set("Nats-Sequence", "42");
    h.set("Nats-Last-Sequence", "40");
    nc.publish("ws.recv.s1.raw", "with headers", { headers: h });
    nc.publish("ws.recv.s1.raw", "without");
    await waitFor("both messages", () => delivered.filter((d) => d.subject === "ws.recv.s1.raw").length === 2);
    expect(delivered.filter((d) => d.subject === "ws.recv.s1.raw")).toEqual([
      { subject: "ws.recv.s1.raw", data: "with headers", hint: "binary", seq: 42, prev: 40 },
      { subject: "ws.recv.s1.raw", data: "without", hint: undefined, seq: 0, prev: 0 },
    ]);
    expect(broker.internals()).toEqual({ leanSubscriptions: true, headerFallbacks: 0, rawPublish: true });
  });

  test("client frames written into the outbound queue arrive whole, in order, with their headers, among other publishes", async () => {
    expect(broker.internals().rawPublish).toBe(true);
    const got: { subject: string; data: string; conn?: string; node?: string; frame?: string }[] = [];
    const sub = nc.subscribe("ws.send.>", {
      callback: (_e, m) => void got.push({ subject: m.subject, data: m.string(), conn: m.headers?.get("Ws-Conn"), node: m.headers?.get("Ws-Node"), frame: m.headers?.get("Ws-Frame") }),
    });
    await nc.flush();
    const big = "y".repeat(100_000); // larger than the batch: a command of its own
    broker.publishFrame("ws.send.s1.a", "hello", "n1", 7, false);
    broker.publishFrame("ws.send.s1.a", new Uint8Array([0, 1, 2]), "n1", 7, true);
    broker.publishFrame("ws.send.s1.b", "żółw ✓ 🐢", "node-2", 1234567, false);
    broker.publish("ws.send.s1.a", new TextEncoder().encode("plain publish"));
    broker.publishFrame("ws.send.s1.a", big, "n1", 7, false);
    broker.publishFrame("ws.send.s1.a", "", "n1", 7, false);
    for (let i = 0; i < 3000; i++) broker.publishFrame("ws.send.s1.c", `m${i}`, "n1", 9, false);
    await waitFor("every frame at the subscriber", () => got.length === 3006);
    sub.unsubscribe();
    expect(got.slice(0, 6)).toEqual([
      { subject: "ws.send.s1.a", data: "hello", conn: "n1.7", node: "n1", frame: "text" },
      { subject: "ws.send.s1.a", data: "\u0000\u0001\u0002", conn: "n1.7", node: "n1", frame: "binary" },
      { subject: "ws.send.s1.b", data: "żółw ✓ 🐢", conn: "node-2.1234567", node: "node-2", frame: "text" },
      { subject: "ws.send.s1.a", data: "plain publish", conn: undefined, node: undefined, frame: undefined },
      { subject: "ws.send.s1.a", data: big, conn: "n1.7", node: "n1", frame: "text" },
      { subject: "ws.send.s1.a", data: "", conn: "n1.7", node: "n1", frame: "text" },
    ]);
    expect(got.slice(6).map((g) => g.data)).toEqual(Array.from({ length: 3000 }, (_, i) => `m${i}`));
  });

  test("a client frame over the server's max_payload is refused at once, and the connection stays usable", async () => {
    expect(() => broker.publishFrame("ws.send.s1.a", new Uint8Array(2 * 1024 * 1024), "n1", 7, true)).toThrow(/max_payload/);
    const got: string[] = [];
    const sub = nc.subscribe("ws.send.s1.after", { callback: (_e, m) => void got.push(m.string()) });
    await nc.flush();
    broker.publishFrame("ws.send.s1.after", "still fine", "n1", 7, false);
    await waitFor("the next frame", () => got.length === 1);
    sub.unsubscribe();
    expect(got).toEqual(["still fine"]);
  });
});
