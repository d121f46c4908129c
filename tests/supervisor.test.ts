// WSGATE_WORKERS under the supervisor: a crashed worker comes back, a hopeless one is given up.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, type Nats, ROOT, startGateway, startNats, stopNatsAndClean, waitFor } from "./helpers/procs.ts";

let nats: Nats;
beforeAll(async () => {
  nats = await startNats();
});
afterAll(async () => {
  if (nats) await stopNatsAndClean(nats);
});

function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    const kids = readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim();
    if (kids) out.push(...kids.split(/\s+/).map(Number));
  }
  return out;
}

const lines = (out: string) =>
  out
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

test("a worker killed with -9 is restarted and logged; every line names node and worker", async () => {
  const gw = await startGateway("bun", { port: await freePort(), env: { NATS_URL: nats.url, WSGATE_MAILBOX: "off", WSGATE_WORKERS: "2" } });
  try {
    await waitFor("both workers listening", () => lines(gw.output()).filter((l) => l.msg === "wsgate listening").length === 2, 30_000);
    const workers = childPids(gw.proc.pid);
    expect(workers).toHaveLength(2);
    process.kill(workers[0], "SIGKILL");
    const died = await waitFor("the death logged", () => lines(gw.output()).find((l) => l.msg === "worker died; restarting"));
    expect(died.signal).toBe("SIGKILL");
    expect(died.node).toBe(gw.nodeId);
    await waitFor("the worker back", () => lines(gw.output()).filter((l) => l.msg === "wsgate listening").length === 3, 30_000);
    const back = lines(gw.output()).filter((l) => l.msg === "wsgate listening")[2];
    expect(back.worker).toBe(died.worker);
    expect(back.node).toBe(`${gw.nodeId}-w${died.worker}`);
    expect(childPids(gw.proc.pid)).toHaveLength(2);
    await waitFor("ready", async () => (await gw.fetch("/readyz")).status === 200);
    for (const l of lines(gw.output())) {
      expect(l.node).toBeDefined();
      if (!l.supervisor) expect([1, 2]).toContain(l.worker as number);
    }
    expect(await gw.stop("SIGTERM")).toBe(0);
    expect(lines(gw.output()).filter((l) => l.msg === "worker stopped").map((l) => l.code)).toEqual([0, 0]);
  } finally {
    await gw.stop("SIGKILL");
  }
}, 90_000);

test("a worker that dies at once every time is given up with a log line", async () => {
  const proc = Bun.spawn(["node_modules/.bin/bun", "scripts/supervise.ts", "sh", "-c", "exit 3"], {
    cwd: ROOT,
    env: { ...process.env, WSGATE_WORKERS: "1", WSGATE_NODE_ID: "sup-test" },
    stdout: "pipe",
    stderr: "pipe",
  });
  expect(await proc.exited).toBe(1);
  const out = lines((await new Response(proc.stdout).text()) + (await new Response(proc.stderr).text()));
  expect(out.filter((l) => l.msg === "worker died; restarting")).toHaveLength(4);
  const gaveUp = out.find((l) => l.msg === "worker keeps dying at start; giving up on it");
  expect(gaveUp).toMatchObject({ node: "sup-test", worker: 1, code: 3, deaths: 5 });
}, 60_000);

test("a worker with a bad configuration is not restarted", async () => {
  const proc = Bun.spawn(["sh", join(ROOT, "scripts", "start.sh"), "bun"], {
    cwd: ROOT,
    env: { ...process.env, WSGATE_WORKERS: "2", NATS_URL: nats.url, WSGATE_LOG_LEVEL: "loud" },
    stdout: "pipe",
    stderr: "pipe",
  });
  expect(await proc.exited).toBe(2);
  const text = (await new Response(proc.stdout).text()) + (await new Response(proc.stderr).text());
  expect(text).toContain("WSGATE_LOG_LEVEL");
  expect(lines(text).filter((l) => l.msg === "worker refused its configuration; not restarting it")).toHaveLength(2);
}, 60_000);
