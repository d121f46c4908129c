// Two gateway nodes on one NATS: interest routing sends each message only to the
// sockets of its user, on whichever nodes hold them.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { bunClient, cookie, wsPackageClient } from "./helpers/clients.ts";
import { type Gateway, type Nats, startGateway, startNats, stopNatsAndClean, waitFor } from "./helpers/procs.ts";

let nats: Nats;
let nc: NatsConnection;
let a: Gateway;
let b: Gateway;

beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  [a, b] = await Promise.all([startGateway("bun", { env: { NATS_URL: nats.url, WSGATE_MAILBOX: "off" } }), startGateway("bun", { env: { NATS_URL: nats.url, WSGATE_MAILBOX: "off" } })]);
});

afterAll(async () => {
  await Promise.all([a?.stop("SIGKILL"), b?.stop("SIGKILL")]);
  await nc?.close();
  if (nats) await stopNatsAndClean(nats);
});

test("a publish reaches exactly the right sockets across two nodes", async () => {
  const u1a = await bunClient(a.ws, { Cookie: cookie("multi", "u1") });
  const u1b = await wsPackageClient(b.ws, { Cookie: cookie("multi", "u1") });
  const u2a = await bunClient(a.ws, { Cookie: cookie("multi", "u2") });
  await waitFor("subscriptions on both nodes", async () => {
    const sa = await nats.subsOf(a.nodeId);
    const sb = await nats.subsOf(b.nodeId);
    return sa.includes("ws.recv.multi.u1") && sa.includes("ws.recv.multi.u2") && sb.includes("ws.recv.multi.u1");
  });
  // Node b never serves u2, so it must not even be subscribed to it.
  expect(await nats.subsOf(b.nodeId)).not.toContain("ws.recv.multi.u2");

  for (let i = 0; i < 50; i++) nc.publish("ws.recv.multi.u1", new TextEncoder().encode(`u1-${i}`));
  nc.publish("ws.recv.multi.u2", new TextEncoder().encode("u2-only"));
  const want = Array.from({ length: 50 }, (_, i) => `u1-${i}`);
  expect((await u1a.waitFor(50)).map((m) => m.data)).toEqual(want);
  expect((await u1b.waitFor(50)).map((m) => m.data)).toEqual(want);
  expect((await u2a.waitFor(1)).map((m) => m.data)).toEqual(["u2-only"]);
  // Sentinel: an end mark on each subject from the same connection; a repeat would come before it.
  nc.publish("ws.recv.multi.u1", new TextEncoder().encode("u1-end"));
  nc.publish("ws.recv.multi.u2", new TextEncoder().encode("u2-end"));
  await waitFor("the end marks", () => [u1a, u1b, u2a].every((c) => c.received.some((m) => m.data === "u1-end" || m.data === "u2-end")));
  expect(u1a.received.map((m) => m.data)).toEqual([...want, "u1-end"]);
  expect(u1b.received.map((m) => m.data)).toEqual([...want, "u1-end"]);
  expect(u2a.received.map((m) => m.data)).toEqual(["u2-only", "u2-end"]);
  // Node b delivered only u1's messages: u2's never crossed to it.
  expect(await b.metric("wsgate_messages_out_total")).toBe(51);
  expect(await a.metric("wsgate_messages_out_total")).toBe(53);
  for (const c of [u1a, u1b, u2a]) c.close();
});
