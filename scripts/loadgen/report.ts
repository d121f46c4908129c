// Turning the workers' counters into the run's summary: merged per phase, percentiles,
// the JSON line on stdout and the human table on stderr.
import { HB, hMergeSparse, hPercentiles } from "./histogram.ts";
import { newPhase, type PhaseStats } from "./messages.ts";

export type Merged = PhaseStats & { hsH: Uint32Array; latH: Uint32Array; nthH: Uint32Array };
export function merge(list: PhaseStats[]): Merged {
  const m: Merged = { ...newPhase(), hsH: new Uint32Array(HB), latH: new Uint32Array(HB), nthH: new Uint32Array(HB) };
  for (const s of list) {
    m.attempts += s.attempts;
    m.opened += s.opened;
    for (const k in s.errors) m.errors[k] = (m.errors[k] ?? 0) + s.errors[k];
    for (const k in s.closes) m.closes[k] = (m.closes[k] ?? 0) + s.closes[k];
    hMergeSparse(m.hsH, s.hs);
    hMergeSparse(m.latH, s.lat);
    m.recvMsgs += s.recvMsgs;
    m.recvBytes += s.recvBytes;
    if (s.firstRecv && (!m.firstRecv || s.firstRecv < m.firstRecv)) m.firstRecv = s.firstRecv;
    if (s.lastRecv > m.lastRecv) m.lastRecv = s.lastRecv;
    m.noTs += s.noTs;
    m.negLat += s.negLat;
    m.latCount += s.latCount;
    m.latSum += s.latSum;
    if (s.latMin !== null && s.latMin < m.latMin) m.latMin = s.latMin;
    if (s.latMax !== null && s.latMax > m.latMax) m.latMax = s.latMax;
    m.sentMsgs += s.sentMsgs;
    m.sentBytes += s.sentBytes;
    m.sendSkips += s.sendSkips;
    m.pings += s.pings;
    m.nthCount += s.nthCount ?? 0;
    hMergeSparse(m.nthH, s.nth ?? []);
    if (s.nthLast > m.nthLast) m.nthLast = s.nthLast;
    if (s.startMin && (!m.startMin || s.startMin < m.startMin)) m.startMin = s.startMin;
    if (s.lastOpen > m.lastOpen) m.lastOpen = s.lastOpen;
  }
  return m;
}

export const r3 = (x: number) => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : null);

export function phaseReport(name: string, m: Merged, startedAt: number, endedAt: number, countTo: number) {
  const [hp50, hp99, hmax] = hPercentiles(m.hsH, [0.5, 0.99, 1]);
  const span = (m.lastRecv - m.firstRecv) / 1000;
  const [p50, p90, p99, p999] = hPercentiles(m.latH, [0.5, 0.9, 0.99, 0.999]);
  const secs = (endedAt - startedAt) / 1000;
  return {
    name,
    seconds: r3(secs),
    attempts: m.attempts,
    opened: m.opened,
    handshakeMs: { p50: r3(hp50), p99: r3(hp99), max: r3(hmax) },
    // from the earliest connect start of the phase to the last handshake completed in it
    allOpenMs: m.startMin && m.lastOpen ? r3(m.lastOpen - m.startMin) : null,
    errors: m.errors,
    closes: m.closes,
    recv: {
      messages: m.recvMsgs,
      bytes: m.recvBytes,
      // rate between the first and the last message of the phase
      ratePerS: span > 0 ? Math.round(m.recvMsgs / span) : m.recvMsgs > 0 ? null : 0,
      spanS: r3(span),
      noTimestamp: m.noTs,
      latencyMs: m.latCount
        ? { count: m.latCount, p50: r3(p50), p90: r3(p90), p99: r3(p99), p999: r3(p999), min: r3(m.latMin), max: r3(m.latMax), mean: r3(m.latSum / m.latCount), negative: m.negLat }
        : null,
      pingsAnswered: m.pings,
    },
    send: { messages: m.sentMsgs, bytes: m.sentBytes, ratePerS: secs > 0 ? Math.round(m.sentMsgs / secs) : 0, skipped: m.sendSkips },
    ...(countTo > 0 ? { countTo: countToReport(m, countTo) } : {}),
  };
}

/** --count-to N: how long connections took from their connect start to their N-th message. */
function countToReport(m: Merged, n: number) {
  const [p50, p90, p99, max] = hPercentiles(m.nthH, [0.5, 0.9, 0.99, 1]);
  return {
    n,
    reached: m.nthCount,
    ms: m.nthCount ? { p50: r3(p50), p90: r3(p90), p99: r3(p99), max: r3(max) } : null,
    // wall-clock ms (performance.timeOrigin + now()), comparable across processes on this host
    firstStartAt: m.startMin ? r3(m.startMin) : null,
    lastReachedAt: m.nthLast ? r3(m.nthLast) : null,
    // from the earliest connect start of the phase to the last connection reaching N
    allReachedMs: m.startMin && m.nthLast ? r3(m.nthLast - m.startMin) : null,
  };
}

export function printTable(s: any, phases: any[]) {
  const L: string[] = [];
  const kv = (o: Record<string, number>) => (Object.keys(o).length ? Object.entries(o).map(([k, v]) => `${k}=${v}`).join(" ") : "none");
  const f = (x: number | null | undefined, d = 2) => (x === null || x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(d));
  L.push(`loadgen summary: mode=${s.mode} url=${s.url} conns=${s.conns} workers=${s.workers} users=${s.users} src=${s.src} stopped=${s.stopped} elapsed=${s.elapsedS}s`);
  L.push(`  opened     ${s.open.opened}/${s.conns} in ${f(s.open.openMs / 1000)} s (${s.open.ratePerS ?? "-"}/s), handshake p50 ${f(s.open.handshakeMs.p50)} ms p99 ${f(s.open.handshakeMs.p99)} ms, given up ${s.open.givenUp}, open at end ${s.open.atEnd}`);
  L.push(`  errors     ${kv(s.errors)}`);
  L.push(`  closes     ${kv(s.closes)}`);
  L.push(`  ${"phase".padEnd(12)}${"seconds".padStart(9)}${"recv".padStart(11)}${"recv/s".padStart(10)}${"p50 ms".padStart(9)}${"p99 ms".padStart(9)}${"p99.9 ms".padStart(10)}${"max ms".padStart(9)}${"sent".padStart(11)}${"sent/s".padStart(10)}`);
  for (const p of phases.length > 1 ? phases : [{ ...phases[0], name: "main" }]) {
    const l = p.recv.latencyMs;
    L.push(
      `  ${String(p.name).padEnd(12)}${f(p.seconds, 1).padStart(9)}${String(p.recv.messages).padStart(11)}${String(p.recv.ratePerS ?? "-").padStart(10)}` +
        `${f(l?.p50, 3).padStart(9)}${f(l?.p99, 3).padStart(9)}${f(l?.p999, 3).padStart(10)}${f(l?.max, 1).padStart(9)}${String(p.send.messages).padStart(11)}${String(p.send.ratePerS).padStart(10)}`,
    );
  }
  if (s.countTo) {
    const c = s.countTo;
    L.push(`  count-to   ${c.reached}/${s.conns} reached ${c.n} messages; connect start → N-th message p50 ${f(c.ms?.p50, 1)} ms p90 ${f(c.ms?.p90, 1)} ms p99 ${f(c.ms?.p99, 1)} ms max ${f(c.ms?.max, 1)} ms; all reached ${f(c.allReachedMs, 0)} ms after the first connect`);
  }
  if (s.storm) for (const r of s.storm) L.push(`  storm #${r.round}  ${r.back}/${r.dropped} back, all back after ${r.allBackMs ?? "-"} ms, reconnect p50 ${f(r.reconnectMs.p50, 1)} ms p99 ${f(r.reconnectMs.p99, 1)} ms, gave up ${r.failed}`);
  console.error(L.join("\n"));
}

