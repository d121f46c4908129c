// Benchmark publisher: a service pushing messages to users through NATS.
//
// Publishes on <prefix>.recv.<svc>.<user> for --users distinct users (u<offset + i*stride>),
// round-robin, each payload starting with the send time in wall-clock ms
// (performance.timeOrigin + performance.now(), 3 decimals) so the loadgen can measure latency.
//
//   --mode max    as fast as the server keeps up: at most --window messages in flight,
//                 in flight = published − (server's wsgate_messages_out_total − start value),
//                 read from --feedback-url (the gateway's /metrics, or ref-bun's)
//   --mode rate   a fixed --rate msgs/s (open loop); --feedback-url, when given, only pauses
//                 publishing if more than --window messages are in flight (counted as stalls),
//                 so an overloaded server is not pushed into a slow-consumer disconnect
//
// Ends after --duration seconds (hard stop --max-seconds) and prints one JSON line.
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";

const { values: o } = parseArgs({
  args: Bun.argv.slice(2),
  strict: true,
  options: {
    nats: { type: "string" },
    prefix: { type: "string", default: "ws" },
    svc: { type: "string", default: "s1" },
    "user-prefix": { type: "string", default: "u" },
    users: { type: "string", default: "1000" },
    "user-stride": { type: "string", default: "1" },
    "user-offset": { type: "string", default: "0" },
    mode: { type: "string", default: "max" },
    rate: { type: "string", default: "10000" },
    duration: { type: "string", default: "10" },
    size: { type: "string", default: "32" },
    "feedback-url": { type: "string" },
    "feedback-metric": { type: "string", default: "wsgate_messages_out_total" },
    window: { type: "string", default: "20000" },
    "max-seconds": { type: "string", default: "120" },
  },
});

function die(msg: string): never {
  console.error(`publisher: ${msg}`);
  process.exit(2);
}
const num = (k: keyof typeof o, min: number, max: number) => {
  const n = Number(o[k]);
  if (!Number.isFinite(n) || n < min || n > max) die(`--${k} must be a number from ${min} to ${max}`);
  return n;
};
if (!o.nats) die("--nats URL is required");
for (const u of o.nats.split(",")) {
  const h = new URL(u.includes("://") ? u : `nats://${u}`).hostname;
  if (!/^127\.|^localhost$|^\[?::1\]?$/.test(h)) die(`refusing NATS server ${h}: loopback only`);
}
if (o["feedback-url"] && !/^http:\/\/(127\.[\d.]+|localhost|\[::1\])(:\d+)?\//.test(o["feedback-url"])) die("--feedback-url must be on loopback");
const mode = o.mode;
if (mode !== "max" && mode !== "rate") die("--mode must be max or rate");
const users = num("users", 1, 10_000_000);
const stride = num("user-stride", 1, 1_000_000);
const offset = num("user-offset", 0, 1e12);
const rate = num("rate", 1, 100_000_000);
const duration = num("duration", 0.1, 3600);
const size = num("size", 20, 1024 * 1024);
const window = num("window", 1, 10_000_000);
const maxSeconds = num("max-seconds", 1, 7200);
if (mode === "max" && !o["feedback-url"]) die("--mode max needs --feedback-url (the server's /metrics)");

const hard = setTimeout(() => {
  console.error("publisher: --max-seconds reached");
  process.exit(3);
}, maxSeconds * 1000);

const subjects = Array.from({ length: users }, (_, i) => `${o.prefix}.recv.${o.svc}.${o["user-prefix"]}${offset + i * stride}`);
const pad = "x".repeat(size);
const ORIGIN = performance.timeOrigin;
const now = () => ORIGIN + performance.now();

const metricRe = new RegExp(`^${o["feedback-metric"]}(?:\\{[^}]*\\})? (\\d+(?:\\.\\d+)?(?:e\\+?\\d+)?)$`, "m");
async function delivered(): Promise<number> {
  const res = await fetch(o["feedback-url"]!);
  const text = await res.text();
  const m = metricRe.exec(text);
  if (!m) die(`metric ${o["feedback-metric"]} not found at ${o["feedback-url"]}`);
  return Number(m[1]);
}

const nc = await connect({ servers: o.nats.split(","), name: "wsgate-bench-publisher" });
let published = 0;
let j = 0;
let polls = 0;
let stalls = 0;
function publishN(n: number) {
  for (let i = 0; i < n; i++) {
    const ts = now().toFixed(3) + " ";
    nc.publish(subjects[j], ts + pad.slice(ts.length));
    if (++j === users) j = 0;
  }
  published += n;
}

const base = o["feedback-url"] ? await delivered() : 0;
const t0 = now();
const tEnd = t0 + duration * 1000;
let inFlight = 0;

if (mode === "max") {
  while (now() < tEnd) {
    const d = (await delivered()) - base;
    polls++;
    inFlight = published - d;
    const room = window - inFlight;
    if (room <= 0) {
      stalls++;
      await Bun.sleep(1);
      continue;
    }
    publishN(room);
  }
} else {
  let lastPoll = 0;
  let blocked = false;
  while (now() < tEnd) {
    const t = now();
    if (o["feedback-url"] && t - lastPoll > 50) {
      lastPoll = t;
      inFlight = published - ((await delivered()) - base);
      polls++;
      blocked = inFlight > window;
      if (blocked) stalls++;
    }
    if (!blocked) {
      const due = Math.floor(((now() - t0) / 1000) * rate) - published;
      if (due > 0) publishN(Math.min(due, Math.max(1, Math.ceil(rate / 100))));
    }
    await Bun.sleep(1);
  }
}
const t1 = now();
await nc.flush();
let settled = -1;
if (o["feedback-url"]) {
  // how long until the server has sent everything out (bounded)
  for (let i = 0; i < 100; i++) {
    inFlight = published - ((await delivered()) - base);
    if (inFlight <= 0) break;
    await Bun.sleep(50);
  }
  settled = inFlight;
}
await nc.close();
clearTimeout(hard);
const secs = (t1 - t0) / 1000;
console.log(
  JSON.stringify({
    tool: "publisher",
    mode,
    users,
    published,
    seconds: Math.round(secs * 1000) / 1000,
    ratePerS: Math.round(published / secs),
    targetRate: mode === "rate" ? rate : null,
    polls,
    stalls,
    inFlightAtEnd: settled,
  }),
);
process.exit(0);
