// Benchmark: per-user steady cost with the mailbox (issue 3), next to the mailbox off.
//
// Per target, on a fresh nats-server and a fresh gateway (scripts/start.sh bun, NATS mode):
//   base      after a 200-connection warm-up, a full GC of the gateway (gc-hook.ts) and a pause:
//             gateway RSS and nats-server RSS
//   steady    --users distinct users connected (one connection each), every user's interest
//             in NATS, catch-ups done; then each user gets one message (live), so with the
//             mailbox each has a kept message and a delivery cursor, as users in steady state do;
//             RSS once stable (< 0.5% over 2 s), then the gateway's after a full GC
// Figures: bytes per user = RSS growth / users, for the gateway (settled and after GC) and for
// nats-server (settled; a Go process cannot be told to collect from outside), mailbox on next to
// mailbox off.
//
//   bun scripts/bench/mailbox-steady.ts [--users 19000] [--repeat 1]
import { parseArgs } from "node:util";
import {
  argInt, fmt, installCleanup, Loadgen, log, median, MiB, publishToUsers, ratio, rssBytes, runDir, settleOn, sleep,
  startGateway, startNats, streamMessages, table, users as userNames, waitCatchups, waitMetrics, warnIfBusy,
} from "./lib.ts";

export const STEADY_TARGETS = ["mailbox", "nomailbox"] as const;
type Target = (typeof STEADY_TARGETS)[number];
export type SteadyOptions = { users: number; repeat: number; workers: number; targets: Target[] };

const LABEL: Record<Target, string> = { mailbox: "wsgate, mailbox on", nomailbox: "ref: wsgate, mailbox off" };
const SVC = "st";

type Run = {
  target: Target;
  users: number;
  gwBase: number;
  gwSettled: number;
  gwAfterGc: number;
  natsBase: number;
  natsSettled: number;
  heapBase: number | null;
  heapAfter: number | null;
  natsSubs: number;
  stored: number;
  cursors: number;
  errors: Record<string, number>;
};

async function once(t: Target, o: SteadyOptions, i: number): Promise<Run> {
  const mailbox = t === "mailbox";
  const nats = await startNats();
  const gw = await startGateway(`steady-${t}`, nats.url, mailbox ? {} : { WSGATE_MAILBOX: "off" }).catch(async (e) => {
    await nats.stop();
    throw e;
  });
  try {
    const warm = Loadgen.start(`steady-${t}-r${i}-warmup`, ["--url", gw.wsUrl, "-n", "200", "--svc", SVC, "--user-prefix", "warm", "--mode", "idle", "-d", "1", "--max-seconds", "60", "-q"]);
    await warm.done(60_000);
    await waitMetrics(gw, (m) => m.wsgate_connections === 0, 10_000, "warm-up connections closed");
    await sleep(1000);
    const heap0 = await gw.gc();
    await sleep(1000);
    const gwBase = gw.rss();
    const natsBase = rssBytes(nats.pid);
    const subs0 = await nats.subscriptions();

    const lg = Loadgen.start(`steady-${t}-r${i}`, ["--url", gw.wsUrl, "-n", String(o.users), "-w", String(o.workers), "--svc", SVC, "--mode", "recv", "-d", "0", "--max-seconds", "600", "-q"]);
    const ready = await lg.ready(180_000);
    const n = ready.open;
    await waitMetrics(gw, (m) => m.wsgate_connections >= n && m.wsgate_users >= n, 30_000, `${n} users`);
    const until = Date.now() + 30_000;
    let subs = 0;
    while ((subs = await nats.subscriptions()) < subs0 + n && Date.now() < until) await sleep(200);
    await waitCatchups(gw, n);
    // one message per user, delivered live (and kept, with a cursor, when the mailbox is on)
    const out0 = (await gw.metrics()).wsgate_messages_out_total ?? 0;
    await publishToUsers(nats.url, { prefix: "ws", svc: SVC, users: userNames(o.users), perUser: 1, size: 64, stream: mailbox ? "WSGATE" : undefined });
    await waitMetrics(gw, (m) => (m.wsgate_messages_out_total ?? 0) - out0 >= n, 30_000, "one message per user delivered");
    let stored = 0, cursors = 0;
    if (mailbox) {
      await sleep(1500); // a cursor flush interval (1 s) and its writes
      stored = await streamMessages(nats.url, "WSGATE");
      cursors = await streamMessages(nats.url, "WSGATE_CURSORS");
    }
    const [g, ns] = await Promise.all([settleOn(() => gw.rss()), settleOn(() => rssBytes(nats.pid))]);
    const heap1 = await gw.gc();
    await sleep(1000);
    const gwAfterGc = gw.rss();
    const sum = await lg.stop();
    return {
      target: t, users: n, gwBase, gwSettled: g.value, gwAfterGc, natsBase, natsSettled: ns.value,
      heapBase: heap0?.heapSize ?? null, heapAfter: heap1?.heapSize ?? null, natsSubs: subs - subs0, stored, cursors, errors: sum.errors ?? {},
    };
  } finally {
    await gw.stop();
    await nats.stop();
  }
}

export async function runMailboxSteady(o: SteadyOptions) {
  installCleanup();
  log(`mailbox steady cost: ${fmt(o.users)} users, targets ${o.targets.join(", ")}, ${o.repeat} run(s) each; logs in ${runDir()}`);
  await warnIfBusy("the mailbox steady-cost runs");
  const runs: Run[] = [];
  for (let i = 1; i <= o.repeat; i++) {
    for (const t of o.targets) {
      const r = await once(t, o, i);
      runs.push(r);
      log(
        `  ${t} run ${i}: ${fmt(r.users)} users; gateway ${fmt(r.gwBase / MiB, 1)} → ${fmt(r.gwSettled / MiB, 1)} MiB settled → ${fmt(r.gwAfterGc / MiB, 1)} MiB after GC; ` +
          `nats-server ${fmt(r.natsBase / MiB, 1)} → ${fmt(r.natsSettled / MiB, 1)} MiB; ${fmt(r.natsSubs)} new subscriptions` +
          (t === "mailbox" ? `; stream ${fmt(r.stored)} messages, ${fmt(r.cursors)} cursors` : "") +
          (Object.keys(r.errors).length ? `; client errors ${JSON.stringify(r.errors)}` : ""),
      );
    }
  }
  const per = (t: Target, f: (r: Run) => number) => median(runs.filter((r) => r.target === t).map(f));
  const fig = (t: Target) => ({
    gwSettled: per(t, (r) => (r.gwSettled - r.gwBase) / r.users),
    gwAfterGc: per(t, (r) => (r.gwAfterGc - r.gwBase) / r.users),
    heap: per(t, (r) => (r.heapAfter !== null && r.heapBase !== null ? (r.heapAfter - r.heapBase) / r.users : NaN)),
    nats: per(t, (r) => (r.natsSettled - r.natsBase) / r.users),
    total: per(t, (r) => (r.gwAfterGc - r.gwBase + r.natsSettled - r.natsBase) / r.users),
  });
  const rows: string[][] = [];
  const result: Record<string, unknown> = {};
  for (const t of o.targets) {
    const f = fig(t);
    rows.push([LABEL[t], fmt(per(t, (r) => r.users)), fmt(f.gwSettled), fmt(f.gwAfterGc), fmt(f.heap), fmt(f.nats), fmt(f.total)]);
    result[t] = { gatewayBytesPerUserSettled: Math.round(f.gwSettled), gatewayBytesPerUserAfterGc: Math.round(f.gwAfterGc), gatewayHeapPerUser: Math.round(f.heap), natsBytesPerUser: Math.round(f.nats), runs: runs.filter((r) => r.target === t) };
  }
  if (o.targets.includes("mailbox") && o.targets.includes("nomailbox")) {
    const a = fig("mailbox"), b = fig("nomailbox");
    rows.push(["ratio on / off", "", ratio(a.gwSettled, b.gwSettled), ratio(a.gwAfterGc, b.gwAfterGc), ratio(a.heap, b.heap), ratio(a.nats, b.nats), ratio(a.total, b.total)]);
  }
  console.log(
    `\nPer-user steady cost with the mailbox (${fmt(o.users)} connected users, one connection each, one message delivered to each; medians of ${o.repeat})\n` +
      table(["", "users", "gateway B/user settled", "gateway B/user after GC", "JS heap B/user", "nats-server B/user", "gateway (GC) + nats B/user"], rows) +
      `\nRSS growth over a warmed-up baseline, per user; nats-server is read settled (no GC from outside), each target on its own fresh nats-server.\n`,
  );
  return result;
}

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      users: { type: "string", default: "19000" },
      repeat: { type: "string", default: "1" },
      workers: { type: "string", default: "2" },
      targets: { type: "string", default: STEADY_TARGETS.join(",") },
    },
  });
  const targets = v.targets!.split(",").map((s) => s.trim()) as Target[];
  for (const t of targets) if (!STEADY_TARGETS.includes(t)) throw new Error(`unknown target ${t}; known: ${STEADY_TARGETS.join(", ")}`);
  const t0 = Date.now();
  await runMailboxSteady({ users: argInt(v.users, "users", 1, 19_500, 19_000), repeat: argInt(v.repeat, "repeat", 1, 10, 1), workers: argInt(v.workers, "workers", 1, 16, 2), targets });
  log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  process.exit(0);
}
