// Benchmark: mailbox reconnect storm (issue 3).
//
// --users users (distinct) each have --backlog messages kept in the mailbox while they were
// offline, and all connect at once. Per target, on a fresh nats-server:
//   1. prime     every user connects once and gets one live message, so each has a delivery
//                cursor (as a returning user does); then all disconnect (cursors are saved on
//                the last close)
//   2. backlog   a service publishes --backlog messages to every user (core publishes on
//                ws.recv.<svc>.<user>; the bench waits until the stream holds them all)
//   3. storm     one load client opens every connection at once (--concurrency handshakes in
//                flight per client process) and counts, per connection, the time from its
//                connect start to its --backlog-th message (loadgen --count-to); it stops when
//                every connection has its backlog
// Figures: time from the first connect start until every backlog is delivered; per-user
// catch-up latency p50/p99 (connect start → last backlog message); handshake latency; CPU
// seconds and peak RSS (VmHWM, reset before the storm) of the gateway and of nats-server
// over the storm; messages received against those expected (a repeat of the primed message
// would show as extra).
//
// Targets (same run, one after the other):
//   mailbox     the gateway (scripts/start.sh bun), NATS mode, defaults (mailbox on,
//               WSGATE_MAILBOX_CATCHUP_CONCURRENCY 128)
//   nomailbox   reference: the same gateway with WSGATE_MAILBOX=off and no backlog: the same
//               storm of connects, so what the catch-up adds is the difference
//   mailbox-r3  the mailbox target on a three-server cluster (scripts/nats-cluster.ts) with
//               WSGATE_MAILBOX_REPLICAS=3: nats CPU and peak RSS are the three servers' sums
//
// --concurrency 1000 handshakes in flight per client process (2 processes) is more than the
// server's listen backlog, as in a real storm: some SYNs are dropped and retried after 1 s, which
// shows in the handshake p99 at 10,000 users (the mailbox-off reference sees the same).
// --timeout S (default 900) bounds the wait for every backlog; past it the row says how many
// users had theirs.
//
// Cost on nats-server 2.9.10: reading one user's next message by subject (a direct get with
// next_by_subj) makes the server scan past every other user's messages in between, about 1 ms a
// get with 10,000 users' backlogs interleaved: per-user reads made this storm take ~4 minutes.
// The gateway now shares one ordered read of the stream among the users that wait at once
// (app/mailbox/catchup.ts); the gateway's debug log (WSGATE_LOG_LEVEL=debug) shows each shared read.
//
//   bun scripts/bench/mailbox-storm.ts [--users 10000] [--backlog 20] [--size 64] [--concurrency 1000] [--timeout 900]
import { parseArgs } from "node:util";
import {
  argInt, fmt, installCleanup, Loadgen, log, machineBusySeconds, MiB, publishToUsers, ratio, ResourceWatch, rssBytes, runDir,
  type Server, sleep, startGateway, startNats, streamMessages, table, users as userNames, waitCatchups, waitMetrics, warnIfBusy,
} from "./lib.ts";
import { natsPids, startClusterNats } from "./cluster.ts";

export const STORM_TARGETS = ["mailbox", "nomailbox", "mailbox-r3"] as const;
type Target = (typeof STORM_TARGETS)[number];
export type StormOptions = { users: number; backlog: number; size: number; workers: number; concurrency: number; timeoutS: number; targets: Target[] };

const SVC = "mb";
const LABEL: Record<Target, string> = {
  mailbox: "wsgate, mailbox on, backlog waiting",
  nomailbox: "ref: wsgate, mailbox off, no backlog",
  "mailbox-r3": "wsgate, mailbox on, 3 servers, replicas 3",
};

type StormRun = {
  target: Target;
  users: number;
  primeMs: number;
  backlog: { published: number; stored: number; seconds: number } | null;
  cursors: number;
  opened: number;
  allOpenMs: number | null;
  handshakeMs: { p50: number; p99: number; max: number };
  allDeliveredMs: number | null;
  /** the last delivery seen when the storm was given up (--timeout): the users left never got theirs */
  stoppedAfterMs: number | null;
  catchupMs: { p50: number; p90: number; p99: number; max: number } | null;
  reached: number;
  received: number;
  expected: number;
  gw: { cpuS: number; peakRss: number; rssBefore: number; hwm: boolean };
  nats: { cpuS: number; peakRss: number; rssBefore: number; hwm: boolean };
  machineCores: number;
  stormSeconds: number;
  server: Record<string, number>;
  errors: Record<string, number>;
  closes: Record<string, number>;
};

const WATCH = [
  "wsgate_mailbox_backlog_delivered_total",
  "wsgate_mailbox_catchup_seconds_sum",
  "wsgate_mailbox_catchup_seconds_count",
  "wsgate_mailbox_catchup_errors_total",
  "wsgate_mailbox_gaps_healed_total",
  "wsgate_mailbox_duplicates_skipped_total",
  "wsgate_dropped_total",
  "wsgate_backpressure_total",
  "wsgate_slow_consumers_total",
];

async function once(t: Target, o: StormOptions): Promise<StormRun> {
  const mailbox = t !== "nomailbox";
  const nats = t === "mailbox-r3" ? await startClusterNats() : await startNats();
  let gw: Server | null = null;
  try {
    const env: Record<string, string> = mailbox ? { WSGATE_LOG_LEVEL: process.env.WSGATE_LOG_LEVEL ?? "info", ...(t === "mailbox-r3" ? { WSGATE_MAILBOX_REPLICAS: "3" } : {}) } : { WSGATE_MAILBOX: "off" };
    gw = await startGateway(`storm-${t}`, nats.url, env);
    const lgArgs = (extra: string[]) => [
      "--url", gw!.wsUrl, "-n", String(o.users), "-w", String(o.workers), "--mode", "recv", "--svc", SVC, "--concurrency", String(o.concurrency), "-q", ...extra,
    ];

    // 1. prime: every user once, one live message each, so each has a cursor
    const tp = Date.now();
    const prime = Loadgen.start(`storm-${t}-prime`, lgArgs(["-d", "0", "--max-seconds", "300"]));
    const pr = await prime.ready(120_000);
    await waitMetrics(gw, (m) => m.wsgate_connections >= pr.open && m.wsgate_users >= pr.open, 30_000, `${pr.open} connections`);
    await waitCatchups(gw, pr.open);
    let cursors = 0;
    if (mailbox) {
      const out0 = (await gw.metrics()).wsgate_messages_out_total ?? 0;
      await publishToUsers(nats.url, { prefix: "ws", svc: SVC, users: userNames(o.users), perUser: 1, size: o.size, stream: "WSGATE", tag: "prime" });
      await waitMetrics(gw, (m) => (m.wsgate_messages_out_total ?? 0) - out0 >= pr.open, 30_000, "primed messages delivered");
    }
    await prime.stop();
    await waitMetrics(gw, (m) => m.wsgate_connections === 0 && m.wsgate_users === 0, 30_000, "primed connections closed");
    if (mailbox) {
      const until = Date.now() + 10_000;
      while ((cursors = await streamMessages(nats.url, "WSGATE_CURSORS")) < o.users && Date.now() < until) await sleep(200);
    }
    const primeMs = Date.now() - tp;

    // 2. backlog, published while every user is offline
    let backlog: StormRun["backlog"] = null;
    if (mailbox) {
      backlog = await publishToUsers(nats.url, { prefix: "ws", svc: SVC, users: userNames(o.users), perUser: o.backlog, size: o.size, stream: "WSGATE", tag: "b" });
      log(`  ${t}: backlog ${fmt(backlog.stored)}/${fmt(backlog.published)} stored in ${backlog.seconds.toFixed(1)} s (${fmt(backlog.published / backlog.seconds)}/s), ${fmt(cursors)} cursors`);
    }
    await sleep(1000); // let nats-server and the gateway go quiet before the clocks start

    // 3. storm
    const m0 = await gw.metrics();
    const rssGw0 = gw.rss();
    const rssNats0 = natsPids(nats).reduce((a, p) => a + rssBytes(p), 0);
    const gwW = new ResourceWatch(gw.pids);
    const natsW = new ResourceWatch(natsPids(nats));
    const mc0 = machineBusySeconds();
    const storm = Loadgen.start(
      `storm-${t}-storm`,
      lgArgs(mailbox ? ["--count-to", String(o.backlog), "--until-counted", "-d", String(o.timeoutS), "--max-seconds", String(o.timeoutS + 60)] : ["-d", "0", "--max-seconds", "200"]),
    );
    let sum: any;
    if (mailbox) {
      sum = await storm.done((o.timeoutS + 90) * 1000);
      await waitCatchups(gw, o.users, 10_000);
    } else {
      const r = await storm.ready(120_000);
      await waitMetrics(gw, (m) => m.wsgate_connections >= r.open && m.wsgate_users >= r.open, 30_000, `${r.open} connections`);
    }
    const g = gwW.stop();
    const n = natsW.stop();
    const machineCores = (machineBusySeconds() - mc0) / g.seconds;
    const m1 = await gw.metrics();
    if (!mailbox) sum = await storm.stop();
    const server: Record<string, number> = {};
    for (const k of WATCH) if (k in m1) server[k] = (m1[k] ?? 0) - (m0[k] ?? 0);
    const c = sum.countTo;
    return {
      target: t,
      users: o.users,
      primeMs,
      backlog,
      cursors,
      opened: sum.open.opened,
      allOpenMs: sum.open.allOpenMs,
      handshakeMs: sum.open.handshakeMs,
      // only when every user got the whole backlog within --timeout
      allDeliveredMs: c && c.reached >= sum.open.opened ? c.allReachedMs : null,
      stoppedAfterMs: c?.allReachedMs ?? null,
      catchupMs: c?.ms ?? null,
      reached: c?.reached ?? 0,
      received: sum.recv.messages,
      expected: mailbox ? o.users * o.backlog : 0,
      gw: { cpuS: g.cpuS, peakRss: g.peakRss, rssBefore: rssGw0, hwm: g.hwm },
      nats: { cpuS: n.cpuS, peakRss: n.peakRss, rssBefore: rssNats0, hwm: n.hwm },
      machineCores,
      stormSeconds: g.seconds,
      server,
      errors: sum.errors ?? {},
      closes: sum.closes ?? {},
    };
  } finally {
    await gw?.stop();
    await nats.stop();
  }
}

export async function runMailboxStorm(o: StormOptions) {
  installCleanup();
  log(`mailbox storm: ${fmt(o.users)} users × ${o.backlog} messages, targets ${o.targets.join(", ")}; logs in ${runDir()}`);
  await warnIfBusy("the mailbox storm");
  const runs: StormRun[] = [];
  for (const t of o.targets) {
    const r = await once(t, o);
    runs.push(r);
    const errs = Object.entries(r.errors).map(([k, v]) => `${k}=${v}`).join(" ");
    log(
      `  ${t}: ${fmt(r.opened)}/${fmt(r.users)} open, all connected ${fmt(r.allOpenMs)} ms` +
        (r.target !== "nomailbox" ? `, all backlogs delivered ${fmt(r.allDeliveredMs)} ms (${fmt(r.reached)} users reached ${o.backlog}; ${fmt(r.received)}/${fmt(r.expected)} messages)` : "") +
        `; gateway ${r.gw.cpuS.toFixed(2)} CPU s, peak ${fmt(r.gw.peakRss / MiB, 1)} MiB; nats-server ${r.nats.cpuS.toFixed(2)} CPU s, peak ${fmt(r.nats.peakRss / MiB, 1)} MiB` +
        `; server counters ${JSON.stringify(r.server)}` +
        (errs ? `; client errors: ${errs}` : ""),
    );
  }
  const on = runs.find((r) => r.target === "mailbox");
  const off = runs.find((r) => r.target === "nomailbox");
  const row = (r: StormRun): string[] => [
    LABEL[r.target],
    `${fmt(r.opened)}/${fmt(r.users)}`,
    fmt(r.allOpenMs),
    r.target !== "nomailbox" ? (r.allDeliveredMs !== null ? fmt(r.allDeliveredMs) : `> ${fmt(r.stoppedAfterMs)} (${fmt(r.reached)} users)`) : fmt(r.allOpenMs),
    r.catchupMs ? fmt(r.catchupMs.p50, 1) : fmt(r.handshakeMs.p50, 1),
    r.catchupMs ? fmt(r.catchupMs.p99, 1) : fmt(r.handshakeMs.p99, 1),
    `${fmt(r.handshakeMs.p50, 1)} / ${fmt(r.handshakeMs.p99, 1)}`,
    fmt(r.gw.cpuS, 2),
    fmt(r.gw.peakRss / MiB, 1),
    fmt(r.nats.cpuS, 2),
    fmt(r.nats.peakRss / MiB, 1),
    r.target !== "nomailbox" ? `${fmt(r.received)}/${fmt(r.expected)}` : "-",
  ];
  const rows = runs.map(row);
  if (on && off) {
    rows.push([
      "ratio on / off",
      "",
      ratio(on.allOpenMs ?? NaN, off.allOpenMs ?? NaN),
      ratio(on.allDeliveredMs ?? NaN, off.allOpenMs ?? NaN),
      ratio(on.catchupMs?.p50 ?? NaN, off.handshakeMs.p50),
      ratio(on.catchupMs?.p99 ?? NaN, off.handshakeMs.p99),
      "",
      ratio(on.gw.cpuS, off.gw.cpuS),
      ratio(on.gw.peakRss, off.gw.peakRss),
      ratio(on.nats.cpuS, off.nats.cpuS),
      ratio(on.nats.peakRss, off.nats.peakRss),
      "",
    ]);
  }
  const r3 = runs.find((r) => r.target === "mailbox-r3");
  if (on && r3) {
    rows.push([
      "ratio 3 servers / 1",
      "",
      ratio(r3.allOpenMs ?? NaN, on.allOpenMs ?? NaN),
      ratio(r3.allDeliveredMs ?? NaN, on.allDeliveredMs ?? NaN),
      ratio(r3.catchupMs?.p50 ?? NaN, on.catchupMs?.p50 ?? NaN),
      ratio(r3.catchupMs?.p99 ?? NaN, on.catchupMs?.p99 ?? NaN),
      "",
      ratio(r3.gw.cpuS, on.gw.cpuS),
      ratio(r3.gw.peakRss, on.gw.peakRss),
      ratio(r3.nats.cpuS, on.nats.cpuS),
      ratio(r3.nats.peakRss, on.nats.peakRss),
      "",
    ]);
  }
  const mean = on && on.server.wsgate_mailbox_catchup_seconds_count ? (on.server.wsgate_mailbox_catchup_seconds_sum / on.server.wsgate_mailbox_catchup_seconds_count) * 1000 : NaN;
  console.log(
    `\nMailbox reconnect storm: ${fmt(o.users)} users, each with ${o.backlog} messages (${o.size} B) kept while offline, all connecting at once (≤ ${fmt(o.concurrency * o.workers)} handshakes in flight)\n` +
      table(
        ["", "open", "all connected ms", "all delivered ms", "per user p50 ms", "p99 ms", "handshake p50 / p99 ms", "gw CPU s", "gw peak MiB", "nats CPU s", "nats peak MiB", "messages"],
        rows,
      ) +
      `\nall connected / all delivered: from the first connect start to the last handshake / the last user's ${o.backlog}th message (mailbox off: all connected).` +
      `\nper user: connect start → the user's ${o.backlog}th message (mailbox off: → handshake done). CPU and peak RSS over the storm (VmHWM reset before it).` +
      (on ? `\ngateway's own catch-up time (wsgate_mailbox_catchup_seconds, includes waiting for the ${"catch-up"} limit): mean ${fmt(mean, 1)} ms over ${fmt(on.server.wsgate_mailbox_catchup_seconds_count)} catch-ups; ` +
        `backlog delivered ${fmt(on.server.wsgate_mailbox_backlog_delivered_total)}, catch-up errors ${fmt(on.server.wsgate_mailbox_catchup_errors_total ?? 0)}.` : "") +
      "\n",
  );
  const result: Record<string, unknown> = {};
  for (const r of runs) result[r.target] = r;
  return result;
}

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      users: { type: "string", default: "10000" },
      backlog: { type: "string", default: "20" },
      size: { type: "string", default: "64" },
      workers: { type: "string", default: "2" },
      concurrency: { type: "string", default: "1000" },
      timeout: { type: "string", default: "900" },
      targets: { type: "string", default: STORM_TARGETS.join(",") },
    },
  });
  const targets = v.targets!.split(",").map((s) => s.trim()) as Target[];
  for (const t of targets) if (!STORM_TARGETS.includes(t)) throw new Error(`unknown target ${t}; known: ${STORM_TARGETS.join(", ")}`);
  const t0 = Date.now();
  await runMailboxStorm({
    users: argInt(v.users, "users", 1, 19_000, 10_000),
    backlog: argInt(v.backlog, "backlog", 1, 1000, 20),
    size: argInt(v.size, "size", 8, 65536, 64),
    workers: argInt(v.workers, "workers", 1, 16, 2),
    concurrency: argInt(v.concurrency, "concurrency", 1, 10_000, 1000),
    timeoutS: argInt(v.timeout, "timeout", 10, 3600, 900),
    targets,
  });
  log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  process.exit(0);
}
