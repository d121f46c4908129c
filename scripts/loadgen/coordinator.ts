// The parent process: starts the workers, runs the mode (hold, send, storm rounds), marks
// phases, stops on the first stop condition, and prints the summary.
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { HB, hMergeSparse, hPercentiles } from "./histogram.ts";
import { now, type PhaseStats, srcAddr, type ToWorker } from "./messages.ts";
import { parseOptions } from "./options.ts";
import { WorkerPool } from "./pool.ts";
import { merge, phaseReport, printTable, r3 } from "./report.ts";
import { grantLoop, type WindowStats } from "./window.ts";

/** The entry script; workers are the same script run with --worker. */
const ENTRY = join(import.meta.dir, "..", "loadgen.ts");

export async function runParent() {
  const o = parseOptions(Bun.argv.slice(2));
  const { conns, workers, mode, countTo, quiet } = o;
  const t0 = now();
  const deadlineAt = t0 + o.maxSeconds * 1000;
  const srcDesc = o.srcNet ? `${srcAddr(o.srcNet, 0)}-${srcAddr(o.srcNet, Math.max(0, o.addrs - 1))}` : "kernel-chosen";
  const pool = new WorkerPool(o, deadlineAt, ENTRY);

  // ── stop conditions ──
  let stopReason = "";
  let stopResolve: () => void = () => {};
  const stopped = new Promise<void>((r) => (stopResolve = r));
  const stop = (why: string) => {
    if (stopReason) return;
    stopReason = why;
    stopResolve();
  };
  const isStopped = () => stopReason !== "";
  let sigs = 0;
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      if (++sigs > 1) {
        pool.kill();
        process.exit(130);
      }
      stop("signal");
    });
  }
  const hardTimer = setTimeout(() => {
    stop("max-seconds");
    // the summary normally follows within seconds; if anything hangs, leave anyway
    setTimeout(() => {
      console.error("loadgen: could not finish cleanly after --max-seconds; exiting");
      pool.kill();
      process.exit(3);
    }, 20_000).unref();
  }, o.maxSeconds * 1000);
  const sleep = (ms: number) => Promise.race([Bun.sleep(ms), stopped]);

  // ── phases ──
  const phases: { name: string; start: number; end: number; stats: PhaseStats[] }[] = [];
  let phaseName = "main";
  let phaseStart = t0;
  let phaseBusy: Promise<void> = Promise.resolve();
  function markPhase(name: string) {
    phaseBusy = phaseBusy.then(async () => {
      const stats = await pool.collect("snap");
      const t = now();
      phases.push({ name: phaseName, start: phaseStart, end: t, stats });
      phaseName = name;
      phaseStart = t;
    });
  }
  if (o.control === "stdin") {
    (async () => {
      for await (const raw of console) {
        const line = raw.trim();
        if (!line) continue;
        const [cmd, ...rest] = line.split(/\s+/);
        if (cmd === "stop") stop("control");
        else if (cmd === "phase" && rest[0]) markPhase(rest[0].slice(0, 64));
        else console.error(`loadgen: unknown control line ${JSON.stringify(line)} (expected "phase <name>" or "stop")`);
      }
    })().catch(() => {});
  }

  // ── progress ──
  let last = { t: t0, opened: 0, recv: 0, sent: 0 };
  let lastRecvChange = now();
  let lastRecvTotal = 0;
  const progress = setInterval(() => {
    const t = now();
    const s = pool.totals();
    const dt = (t - last.t) / 1000;
    if (s.recv !== lastRecvTotal) {
      lastRecvTotal = s.recv;
      lastRecvChange = t;
    }
    if (o.untilIdle > 0 && s.recv > 0 && t - lastRecvChange > o.untilIdle * 1000) stop("until-idle");
    // every connection that opened (and was not given up) has its N messages
    if (o.untilCounted && pool.readyCount >= workers && s.counted >= s.settled - s.dead && s.settled > 0) stop("until-counted");
    if (!quiet) {
      const errs = Object.entries(s.errors).map(([k, v]) => `${k}=${v}`).join(" ");
      console.error(
        `loadgen t=${((t - t0) / 1000).toFixed(1)}s open=${s.open}/${conns} (+${Math.round((s.opened - last.opened) / dt)}/s)` +
          ` recv=${s.recv} (+${Math.round((s.recv - last.recv) / dt)}/s) sent=${s.sent} (+${Math.round((s.sent - last.sent) / dt)}/s)` +
          (countTo > 0 ? ` counted=${s.counted}` : "") +
          (errs ? ` errors: ${errs}` : ""),
      );
    }
    last = { t, opened: s.opened, recv: s.recv, sent: s.sent };
  }, 1000);

  // ── open everything ──
  await Promise.race([pool.allReady(), stopped]);
  const openedAt = now();
  const openTotals = pool.totals();
  const openMs = openedAt - t0;
  if (o.readyFile) {
    const tmp = o.readyFile + ".tmp";
    writeFileSync(tmp, JSON.stringify({ open: openTotals.open, dead: openTotals.dead, ms: Math.round(openMs), src: srcDesc }) + "\n");
    renameSync(tmp, o.readyFile);
  }
  if (!quiet && !stopReason) console.error(`loadgen: ${openTotals.open}/${conns} open after ${(openMs / 1000).toFixed(2)} s (${openTotals.dead} given up)`);

  if (!stopReason && conns > 0 && openTotals.open === 0) stop("none-open");

  // ── the mode's main part ──
  const storm: any[] = [];
  let windowStats: WindowStats | null = null;
  if (!stopReason) {
    if (mode === "send") {
      pool.broadcast({ t: "go" } satisfies ToWorker);
      if (o.window > 0) windowStats = grantLoop(o, pool, stopped, isStopped, stop);
    }
    if (mode === "storm") {
      for (let r = 1; r <= o.rounds && !stopReason; r++) {
        await sleep(o.hold * 1000);
        if (stopReason) break;
        pool.resetRounds();
        const at = now();
        pool.broadcast({ t: "drop", round: r, at });
        await Promise.race([pool.roundDone(), Bun.sleep(o.roundTimeout * 1000), stopped]);
        const complete = pool.roundComplete();
        if (!complete) {
          pool.resetRounds(true);
          pool.broadcast({ t: "round-status", round: r });
          await Promise.race([Bun.sleep(1000), stopped]);
        }
        const h = new Uint32Array(HB);
        let dropped = 0, back = 0, failed = 0, lastBack = 0;
        for (const m of pool.roundMsgs) {
          dropped += m.r.dropped;
          back += m.r.back;
          failed += m.r.failed;
          if (m.r.lastBackAt > lastBack) lastBack = m.r.lastBackAt;
          hMergeSparse(h, m.r.hist);
        }
        const [p50, p99, pmax] = hPercentiles(h, [0.5, 0.99, 1]);
        const rec = { round: r, dropped, back, failed, complete, allBackMs: complete && back > 0 ? Math.round(lastBack - at) : null, reconnectMs: { p50: r3(p50), p99: r3(p99), max: r3(pmax) } };
        storm.push(rec);
        if (!quiet) console.error(`loadgen: storm round ${r}: ${back}/${dropped} back` + (rec.allBackMs !== null ? ` after ${rec.allBackMs} ms` : " (incomplete)") + (failed ? `, ${failed} gave up` : ""));
      }
      if (!stopReason) stop("rounds-done");
    } else if (o.duration > 0) {
      await sleep(o.duration * 1000);
      stop("duration");
    }
  }
  await stopped;
  pool.expectExits();
  clearTimeout(hardTimer);
  clearInterval(progress);
  await phaseBusy;

  // ── collect, report, exit ──
  const finalStats = await pool.collect("finish");
  const endAt = now();
  phases.push({ name: phaseName, start: phaseStart, end: endAt, stats: finalStats });
  await pool.exit();

  const phaseReports = phases.map((p) => phaseReport(p.name, merge(p.stats), p.start, p.end, countTo));
  const all = merge(phases.flatMap((p) => p.stats));
  const total = phaseReport("total", all, openedAt, endAt, countTo);
  const finalTicks = pool.totals();
  const summary = {
    tool: "loadgen",
    mode,
    url: o.url.href,
    conns,
    workers,
    perUser: o.perUser,
    users: Math.ceil(conns / o.perUser),
    src: srcDesc,
    stopped: stopReason,
    elapsedS: r3((endAt - t0) / 1000),
    open: {
      opened: openTotals.open,
      givenUp: openTotals.dead,
      openMs: Math.round(openMs),
      ratePerS: openMs > 0 ? Math.round(openTotals.open / (openMs / 1000)) : null,
      handshakeMs: total.handshakeMs,
      // first connect start → last handshake (storm mode: the last reconnect's; see storm[].allBackMs)
      allOpenMs: total.allOpenMs,
      attempts: total.attempts,
      atEnd: finalTicks.open,
    },
    errors: total.errors,
    closes: total.closes,
    recv: total.recv,
    send: total.send,
    ...(countTo > 0 ? { countTo: total.countTo } : {}),
    ...(o.window > 0 ? { window: { size: o.window, ...(windowStats ?? { granted: 0, delivered: 0, polls: 0, pollErrors: 0, stalls: 0 }) } } : {}),
    ...(mode === "storm" ? { storm } : {}),
    ...(phaseReports.length > 1 ? { phases: phaseReports } : {}),
  };
  process.stdout.write(JSON.stringify(summary) + "\n");
  printTable(summary, phaseReports);
  process.exit(stopReason === "max-seconds" ? 3 : openTotals.open === 0 && conns > 0 ? 1 : 0);
}
