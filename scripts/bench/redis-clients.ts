// Which Redis client the gateway uses, decided by measurement on Bun:
//   publish throughput (PUBLISH of 64-byte payloads, pipelined, 200k in windows of 1,000)
//   per-subscription memory (10,000 channel subscriptions on one connection: RSS and heap per channel)
// Each candidate runs in a fresh child process against its own redis-server.
//   bun scripts/bench/redis-clients.ts            # all candidates, a table on stdout
//   bun scripts/bench/redis-clients.ts --one ioredis
import { startRedis } from "../../tests/helpers/redis.ts";

const CANDIDATES = ["ioredis", "node-redis", "bun-redis"] as const;
type Candidate = (typeof CANDIDATES)[number];
const PUBLISHES = 200_000;
const WINDOW = 1_000;
const CHANNELS = 10_000;

/** What a candidate needs to give: publish, subscribe many channels with one listener, close. */
type Client = {
  publish(channel: string, data: Uint8Array): Promise<unknown>;
  subscribe(channels: string[], onMessage: () => void): Promise<void>;
  close(): Promise<void>;
};

async function open(which: Candidate, url: string): Promise<Client> {
  if (which === "ioredis") {
    const { Redis } = await import("ioredis");
    const pub = new Redis(url, { lazyConnect: true });
    const sub = new Redis(url, { lazyConnect: true });
    await Promise.all([pub.connect(), sub.connect()]);
    return {
      publish: (ch, data) => pub.publish(ch, Buffer.from(data.buffer, data.byteOffset, data.length)),
      async subscribe(channels, onMessage) {
        sub.on("messageBuffer", onMessage);
        for (let i = 0; i < channels.length; i += 500) await sub.subscribe(...channels.slice(i, i + 500));
      },
      async close() {
        pub.disconnect();
        sub.disconnect();
      },
    };
  }
  if (which === "node-redis") {
    const { createClient } = await import("redis");
    const pub = createClient({ url });
    const sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
    return {
      publish: (ch, data) => pub.publish(ch, Buffer.from(data.buffer, data.byteOffset, data.length)),
      async subscribe(channels, onMessage) {
        for (let i = 0; i < channels.length; i += 500) await sub.subscribe(channels.slice(i, i + 500), onMessage, true);
      },
      async close() {
        await pub.quit();
        await sub.quit();
      },
    };
  }
  const { RedisClient } = await import("bun");
  const pub = new RedisClient(url);
  const sub = new RedisClient(url);
  await Promise.all([pub.connect(), sub.connect()]);
  return {
    publish: (ch, data) => pub.publish(ch, Buffer.from(data.buffer, data.byteOffset, data.length).toString("latin1")),
    async subscribe(channels, onMessage) {
      for (let i = 0; i < channels.length; i += 500) await Promise.all(channels.slice(i, i + 500).map((c) => sub.subscribe(c, onMessage)));
    },
    async close() {
      pub.close();
      sub.close();
    },
  };
}

function rss(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(require("node:fs").readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

async function heap(): Promise<number> {
  Bun.gc(true);
  await Bun.sleep(50);
  Bun.gc(true);
  const { heapStats } = await import("bun:jsc");
  return heapStats().heapSize;
}

async function one(which: Candidate, url: string) {
  const c = await open(which, url);
  const payload = new Uint8Array(64).fill(120);
  // warm-up, then the timed run
  for (let i = 0; i < 5; i++) await Promise.all(Array.from({ length: WINDOW }, () => c.publish("bench.warm", payload)));
  const t0 = performance.now();
  for (let sent = 0; sent < PUBLISHES; sent += WINDOW) {
    const batch: Promise<unknown>[] = new Array(WINDOW);
    for (let i = 0; i < WINDOW; i++) batch[i] = c.publish("bench.pub", payload);
    await Promise.all(batch);
  }
  const publishPerS = Math.round(PUBLISHES / ((performance.now() - t0) / 1000));
  const channels = Array.from({ length: CHANNELS }, (_, i) => `ws.recv.svc.user${i}`);
  const heap0 = await heap();
  const rss0 = rss();
  let got = 0;
  await c.subscribe(channels, () => got++);
  const heap1 = await heap();
  const rss1 = rss();
  await c.close();
  console.log(JSON.stringify({ client: which, publishPerS, rssPerSub: Math.round((rss1 - rss0) / CHANNELS), heapPerSub: Math.round((heap1 - heap0) / CHANNELS) }));
}

const argv = process.argv.slice(2);
if (argv[0] === "--one") {
  await one(argv[1] as Candidate, argv[2]);
  process.exit(0);
} else {
  const rows: Record<string, unknown>[] = [];
  for (const which of CANDIDATES) {
    const redis = await startRedis();
    try {
      const p = Bun.spawn([process.execPath, import.meta.path, "--one", which, redis.url], { stdout: "pipe", stderr: "inherit" });
      const out = await new Response(p.stdout).text();
      await p.exited;
      const line = out.trim().split("\n").pop() ?? "";
      rows.push(line.startsWith("{") ? JSON.parse(line) : { client: which, error: `exit ${p.exitCode}` });
    } finally {
      await redis.clean();
    }
  }
  console.log("| client | publish/s (pipelined) | RSS per subscription | heap per subscription |");
  console.log("|---|---|---|---|");
  for (const r of rows) console.log(`| ${r.client} | ${r.publishPerS ?? r.error} | ${r.rssPerSub ?? ""} B | ${r.heapPerSub ?? ""} B |`);
}
