// Benchmark subscriber: a service consuming what clients send, straight from NATS.
//
// Subscribes to --subject (default ws.send.>) and counts messages, bytes and, for payloads that
// start with a wall-clock send time in ms (as the loadgen's send mode writes them), the latency
// from the client's send to here (log-bucketed histogram, ~1% precision).
// Payloads whose timestamp is followed by a sequence number ("<ms> <seq> ...", the loadgen's
// send mode: 1, 2, 3... per connection) are checked per subject (one connection per user in
// the benchmarks): a number that skips ahead counts the skipped ones as missing, one at or
// below the last seen counts as out of order (a repeat or a reordering).
// It also serves GET /metrics on 127.0.0.1 (a free port) with the running count as
// wsgate_bench_sub_messages_total, so a closed-loop load client (loadgen --window) can send as fast
// as messages really arrive here.
// Prints {"ready":true,"port":P} on stdout once the subscription is registered on the server; reads
// "phase <name>" and "stop" lines on stdin (counters per phase); ends with one JSON line.
// Every loop is bounded: --max-seconds is a hard stop. Loopback NATS only.
//
//   bun scripts/bench/subscriber.ts --nats nats://127.0.0.1:4222 [--subject ws.send.>]
import { parseArgs } from "node:util";
import { leadingTimestampMs } from "../timestamp.ts";
import { connect } from "@nats-io/transport-node";

const { values: o } = parseArgs({
  args: Bun.argv.slice(2),
  strict: true,
  options: {
    nats: { type: "string" },
    subject: { type: "string", default: "ws.send.>" },
    "max-seconds": { type: "string", default: "600" },
  },
});
function die(msg: string): never {
  console.error(`subscriber: ${msg}`);
  process.exit(2);
}
if (!o.nats) die("--nats URL is required");
for (const u of o.nats.split(",")) {
  const h = new URL(u.includes("://") ? u : `nats://${u}`).hostname;
  if (!/^127\.|^localhost$|^\[?::1\]?$/.test(h)) die(`refusing NATS server ${h}: loopback only`);
}
const maxSeconds = Number(o["max-seconds"]);
if (!Number.isFinite(maxSeconds) || maxSeconds < 1 || maxSeconds > 7200) die("--max-seconds must be 1..7200");

const ORIGIN = performance.timeOrigin;
const now = () => ORIGIN + performance.now();
const HB = 2400;
const LOG_STEP = Math.log(1.01);
const bucketMs = (i: number) => (i === 0 ? 0.0005 : Math.pow(1.01, i - 0.5) / 1000);

type Phase = { name: string; msgs: number; bytes: number; first: number; last: number; noTs: number; lat: Uint32Array; latN: number; latMax: number; sequenced: number; missing: number; outOfOrder: number };
const newPhase = (name: string): Phase => ({ name, msgs: 0, bytes: 0, first: 0, last: 0, noTs: 0, lat: new Uint32Array(HB), latN: 0, latMax: 0, sequenced: 0, missing: 0, outOfOrder: 0 });
/** last sequence number seen per subject, over the whole run (a sender's numbering does not restart per phase) */
const lastSeq = new Map<string, number>();

/** The decimal number after the first space within the first 40 bytes, or -1. */
function seqAfterTimestamp(d: Uint8Array): number {
  const end = Math.min(d.length, 40);
  let i = d.indexOf(32);
  if (i < 0 || i >= end) return -1;
  let v = 0;
  let digits = 0;
  for (i++; i < end && d[i] >= 48 && d[i] <= 57; i++, digits++) v = v * 10 + (d[i] - 48);
  return digits > 0 && digits < 16 && (i === d.length || d[i] === 32) ? v : -1;
}
const done: Phase[] = [];
let ph = newPhase("main");
const slow: string[] = [];
let total = 0;

const nc = await connect({ servers: o.nats.split(","), name: "wsgate-bench-subscriber" });
(async () => {
  for await (const s of nc.status()) if (s.type === "error" || s.type === "disconnect") slow.push(`${s.type}: ${String((s as any).error ?? (s as any).server ?? "")}`.slice(0, 200));
})().catch(() => {});
nc.subscribe(o.subject!, {
  callback: (_e, m) => {
    const t = now();
    const d = m.data;
    total++;
    ph.msgs++;
    ph.bytes += d.length;
    if (ph.first === 0) ph.first = t;
    ph.last = t;
    const s = leadingTimestampMs(d);
    if (s < 0) {
      ph.noTs++;
      return;
    }
    const seq = seqAfterTimestamp(d);
    if (seq > 0) {
      ph.sequenced++;
      const prev = lastSeq.get(m.subject) ?? 0;
      if (seq <= prev) ph.outOfOrder++;
      else {
        ph.missing += seq - prev - 1;
        lastSeq.set(m.subject, seq);
      }
    }
    const lat = Math.max(0, t - s);
    const us = lat * 1000;
    ph.lat[us < 1 ? 0 : Math.min(HB - 1, 1 + Math.floor(Math.log(us) / LOG_STEP))]++;
    ph.latN++;
    if (lat > ph.latMax) ph.latMax = lat;
  },
});
await nc.flush();
const http = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  fetch: () => new Response(`wsgate_bench_sub_messages_total ${total}\n`),
});
console.log(JSON.stringify({ ready: true, port: http.port }));

function pct(h: Uint32Array, n: number, p: number) {
  const rank = Math.max(1, Math.ceil(p * n));
  let acc = 0;
  for (let i = 0; i < HB; i++) if ((acc += h[i]) >= rank) return Math.round(bucketMs(i) * 1000) / 1000;
  return NaN;
}
function report(p: Phase) {
  const span = (p.last - p.first) / 1000;
  return {
    name: p.name,
    messages: p.msgs,
    bytes: p.bytes,
    spanS: Math.round(span * 1000) / 1000,
    ratePerS: span > 0 ? Math.round(p.msgs / span) : 0,
    noTimestamp: p.noTs,
    sequence: { checked: p.sequenced, missing: p.missing, outOfOrder: p.outOfOrder, subjects: lastSeq.size },
    latencyMs: p.latN ? { count: p.latN, p50: pct(p.lat, p.latN, 0.5), p90: pct(p.lat, p.latN, 0.9), p99: pct(p.lat, p.latN, 0.99), p999: pct(p.lat, p.latN, 0.999), max: Math.round(p.latMax * 1000) / 1000 } : null,
  };
}
let ended = false;
async function end(why: string) {
  if (ended) return;
  ended = true;
  done.push(ph);
  const out = { tool: "subscriber", stopped: why, phases: done.map(report), statusEvents: slow.slice(0, 20) };
  try {
    await nc.close();
  } catch {}
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(0);
}
setTimeout(() => void end("max-seconds"), maxSeconds * 1000);
process.on("SIGTERM", () => void end("signal"));
process.on("SIGINT", () => void end("signal"));
for await (const raw of console) {
  const [cmd, name] = raw.trim().split(/\s+/);
  if (cmd === "stop") break;
  if (cmd === "phase" && name) {
    done.push(ph);
    ph = newPhase(name.slice(0, 64));
  }
}
await end("control");
