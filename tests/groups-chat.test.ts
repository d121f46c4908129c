// The chat example (scripts/example/chat) end to end: two gateway nodes, the chat service,
// and two SDK clients on different nodes talking in one room.
import { afterAll, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { type Gateway, type Nats, ROOT, startGateway, startNats, stopNatsAndClean, waitFor } from "./helpers/procs.ts";

const procs: Subprocess[] = [];
let nats: Nats | null = null;
let nodes: Gateway[] = [];

afterAll(async () => {
  for (const p of procs) if (p.exitCode === null) p.kill();
  await Promise.all(nodes.map((n) => n.stop("SIGKILL")));
  if (nats) await stopNatsAndClean(nats);
});

function run(args: string[]) {
  const p = Bun.spawn([process.execPath, ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  procs.push(p);
  let out = "";
  void (async () => {
    for await (const c of p.stdout as ReadableStream<Uint8Array>) out += new TextDecoder().decode(c);
  })();
  return { proc: p, output: () => out };
}

test("chat example - users on two nodes talk in a room through the chat service", async () => {
  nats = await startNats({ jetstream: true });
  nodes = await Promise.all([0, 1].map(() => startGateway("bun", { env: { NATS_URL: nats!.url, WSGATE_MAILBOX: "off" } })));
  const service = run(["scripts/example/chat/service.ts", "--nats", nats.url]);
  await waitFor("chat service ready", () => service.output().includes("ready"), 20_000);
  const bob = run(["scripts/example/chat/client.ts", "--url", nodes[1].ws, "--user", "bob", "--until", "alice: hi bob"]);
  await waitFor("bob joined", () => bob.output().includes("joined lobby"), 20_000);
  await waitFor("node 1 subscribed to the room", async () => (await nats!.subsOf(nodes[1].nodeId)).includes("ws.group.chat.lobby"));
  const alice = run(["scripts/example/chat/client.ts", "--url", nodes[0].ws, "--user", "alice", "--say", "hi bob", "--until", "[lobby] alice: hi bob"]);
  expect(await alice.proc.exited).toBe(0);
  expect(await bob.proc.exited).toBe(0);
  expect(bob.output()).toContain("[lobby] *: alice joined");
  expect(bob.output()).toContain("[lobby] alice: hi bob");
});
