// The command line: every option checked, with a message naming the option and its rule.
import { parseArgs } from "node:util";
import { idError, isId } from "../../protocol/ids.ts";
import type { Mode } from "./messages.ts";

const USAGE = `usage: bun scripts/loadgen.ts [options]
  --url URL            ws://127.0.0.1:8080/ws (loopback only: 127.x.x.x, localhost, ::1)
  -n, --conns N        connections (default 1000)
  -w, --workers W      worker processes (default ceil(N/10000); at most 19000 sockets each)
  --mode M             idle | recv | send | storm (default idle)
  -d, --duration S     seconds to hold/measure after all are open (default 10; 0 = until stopped)
  --max-seconds S      hard stop for the whole run (default 300)
  --svc NAME           service cookie (default s1)
  --user-prefix P      user cookie is P<i> (default u)
  --user-offset I      first user number (default 0)
  -k, --per-user K     K consecutive connections share one user (default 1)
  --src SRC            auto | none | 127.A.B   source addresses 127.A.B.2, .3, ... (default auto)
  --per-addr N         connections per source address (default 1000)
  --concurrency C      handshakes in flight per worker (default 256)
  --open-rate R        total new connections per second (default 0 = unlimited)
  --timeout MS         connect + handshake timeout (default 10000)
  --retries N          retries per connection after a failed attempt (default 3)
  --rate R             send mode: messages per second per connection (default 1)
  --size B             send mode: payload bytes (default 32)
  --binary             send mode: binary frames instead of text
  --rounds N           storm: rounds (default 1)
  --hold S             storm: seconds to hold before each drop (default 2)
  --jitter MS          storm: reconnect delay is uniform in [0, MS] (default 1000)
  --drop close|abort   storm: WebSocket close handshake or plain TCP close (default close)
  --round-timeout S    storm: give up waiting for a round after S seconds (default 60)
  --window N           send mode: closed loop, at most N messages in flight (needs --feedback-url)
  --feedback-url URL   send mode: Prometheus text on loopback whose counter says how many arrived
  --feedback-metric M  that counter (default wsgate_messages_in_total)
  --count-to N         per connection, time from connect start to its N-th message (default 0 = off)
  --until-counted      stop once every opened connection received --count-to messages
  --until-idle S       stop once messages were received and none came for S seconds
  --control stdin      read "phase <name>" and "stop" lines from stdin
  --ready-file PATH    write a JSON line there once every connection is open or given up
  --origin ORIGIN      send an Origin header
  --header "K: V"      extra request header (repeatable)
  -q, --quiet          no per-second progress lines
`;

export function fail(msg: string): never {
  console.error(`loadgen: ${msg}`);
  process.exit(2);
}

function intOpt(v: string | undefined, name: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) fail(`--${name} must be a number from ${min} to ${max} (got ${JSON.stringify(v)})`);
  return n;
}

export type Options = ReturnType<typeof parseOptions>;

export function parseOptions(argv: string[]) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: "string", default: "ws://127.0.0.1:8080/ws" },
        conns: { type: "string", short: "n" },
        workers: { type: "string", short: "w" },
        mode: { type: "string", default: "idle" },
        duration: { type: "string", short: "d" },
        "max-seconds": { type: "string" },
        svc: { type: "string", default: "s1" },
        "user-prefix": { type: "string", default: "u" },
        "user-offset": { type: "string" },
        "per-user": { type: "string", short: "k" },
        src: { type: "string", default: "auto" },
        "per-addr": { type: "string" },
        concurrency: { type: "string" },
        "open-rate": { type: "string" },
        timeout: { type: "string" },
        retries: { type: "string" },
        rate: { type: "string" },
        size: { type: "string" },
        binary: { type: "boolean", default: false },
        rounds: { type: "string" },
        hold: { type: "string" },
        jitter: { type: "string" },
        drop: { type: "string", default: "close" },
        "round-timeout": { type: "string" },
        "count-to": { type: "string" },
        window: { type: "string" },
        "feedback-url": { type: "string" },
        "feedback-metric": { type: "string", default: "wsgate_messages_in_total" },
        "until-counted": { type: "boolean", default: false },
        "until-idle": { type: "string" },
        control: { type: "string", default: "none" },
        "ready-file": { type: "string" },
        origin: { type: "string" },
        header: { type: "string", multiple: true },
        quiet: { type: "boolean", short: "q", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    fail(`${(e as Error).message}\n${USAGE}`);
  }
  const o = parsed.values;
  if (o.help) {
    process.stderr.write(USAGE);
    process.exit(0);
  }

  // ── target: loopback only ──
  let url: URL;
  try {
    url = new URL(o.url!);
  } catch {
    fail(`--url ${JSON.stringify(o.url)} is not a URL`);
  }
  if (url.protocol !== "ws:") fail(`--url must be ws:// (got ${url.protocol}); TLS is not supported`);
  const hn = url.hostname.replace(/^\[|\]$/g, "");
  let host: string;
  if (hn === "localhost") host = "127.0.0.1";
  else if (hn === "::1") host = "::1";
  else if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hn) && hn.split(".").every((x) => Number(x) <= 255)) host = hn;
  else fail(`refusing target ${JSON.stringify(url.hostname)}: only loopback (127.x.x.x, localhost, ::1) is allowed`);
  const port = Number(url.port || 80);

  const mode = o.mode as Mode;
  if (!["idle", "recv", "send", "storm"].includes(mode)) fail(`--mode must be idle, recv, send or storm`);
  const conns = intOpt(o.conns, "conns", 0, 1_000_000, 1000);
  const perSocketCap = 19_000;
  let workers = intOpt(o.workers, "workers", 1, 64, Math.max(1, Math.ceil(conns / 10_000)));
  if (conns / workers > perSocketCap) {
    const w = Math.ceil(conns / perSocketCap);
    console.error(`loadgen: ${conns} connections need at least ${w} workers (≤ ${perSocketCap} sockets each); using ${w}`);
    workers = w;
  }
  workers = Math.min(workers, Math.max(1, conns));
  const duration = intOpt(o.duration, "duration", 0, 86_400, 10);
  const maxSeconds = intOpt(o["max-seconds"], "max-seconds", 1, 86_400, 300);
  const perUser = intOpt(o["per-user"], "per-user", 1, 1_000_000, 1);
  const userOffset = intOpt(o["user-offset"], "user-offset", 0, 1e12, 0);
  const perAddr = intOpt(o["per-addr"], "per-addr", 1, 28_000, 1000);
  if (!isId(o.svc)) fail(idError("--svc"));
  if (!/^[A-Za-z0-9_-]{0,40}$/.test(o["user-prefix"]!)) fail(`--user-prefix must match ^[A-Za-z0-9_-]{0,40}$`);
  let srcNet: [number, number] | null = null;
  if (host === "::1" && o.src !== "none") {
    console.error("loadgen: IPv6 target: no source address binding (127.x sources cannot reach ::1)");
  } else if (o.src === "auto") {
    srcNet = [1 + Math.floor(Math.random() * 254), Math.floor(Math.random() * 200)];
  } else if (o.src !== "none") {
    const m = /^127\.(\d{1,3})\.(\d{1,3})(\.0)?$/.exec(o.src!);
    if (!m || Number(m[1]) > 255 || Number(m[2]) > 255) fail(`--src must be auto, none or 127.A.B`);
    srcNet = [Number(m[1]), Number(m[2])];
  }
  const addrs = Math.ceil(conns / perAddr);
  if (srcNet && srcNet[1] + Math.floor(Math.max(0, addrs - 1) / 253) > 255) fail(`too many source addresses for --src 127.${srcNet[0]}.${srcNet[1]}: raise --per-addr`);
  if (!srcNet && conns > 25_000) console.error("loadgen: warning: without source binding the ephemeral port range (~28k) limits connections");
  const concurrency = intOpt(o.concurrency, "concurrency", 1, 100_000, 256);
  const openRate = intOpt(o["open-rate"], "open-rate", 0, 10_000_000, 0);
  const timeoutMs = intOpt(o.timeout, "timeout", 100, 600_000, 10_000);
  const retries = intOpt(o.retries, "retries", 0, 100, 3);
  const rate = intOpt(o.rate, "rate", 0, 1_000_000, 1);
  const size = intOpt(o.size, "size", 1, 16 * 1024 * 1024, 32);
  const rounds = intOpt(o.rounds, "rounds", 1, 1000, 1);
  const hold = intOpt(o.hold, "hold", 0, 3600, 2);
  const jitterMs = intOpt(o.jitter, "jitter", 0, 600_000, 1000);
  const roundTimeout = intOpt(o["round-timeout"], "round-timeout", 1, 3600, 60);
  const untilIdle = intOpt(o["until-idle"], "until-idle", 0, 3600, 0);
  const countTo = intOpt(o["count-to"], "count-to", 0, 1_000_000_000, 0);
  const untilCounted = o["until-counted"]!;
  if (untilCounted && countTo === 0) fail("--until-counted needs --count-to N");
  const window = intOpt(o.window, "window", 0, 100_000_000, 0);
  const feedbackUrl = o["feedback-url"];
  if (window > 0 && mode !== "send") fail("--window applies to --mode send");
  if (window > 0 && !feedbackUrl) fail("--window needs --feedback-url");
  if (feedbackUrl && !/^http:\/\/(127\.[\d.]+|localhost|\[::1\])(:\d+)?\//.test(feedbackUrl)) fail("--feedback-url must be http:// on loopback");
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(o["feedback-metric"]!)) fail("--feedback-metric must be a metric name");
  const feedbackRe = new RegExp(`^${o["feedback-metric"]}(?:\\{[^}]*\\})? (\\d+(?:\\.\\d+)?(?:e\\+?\\d+)?)$`, "m");
  if (o.drop !== "close" && o.drop !== "abort") fail(`--drop must be close or abort`);
  if (o.control !== "none" && o.control !== "stdin") fail(`--control must be none or stdin`);
  let extraHeaders = "";
  if (o.origin) {
    if (/[\r\n]/.test(o.origin)) fail("--origin must be one line");
    extraHeaders += `Origin: ${o.origin}\r\n`;
  }
  for (const h of o.header ?? []) {
    if (/[\r\n]/.test(h) || !/^[A-Za-z0-9-]+:/.test(h)) fail(`--header must look like "Name: value"`);
    extraHeaders += h + "\r\n";
  }
  const quiet = o.quiet!;

  return {
    url, host, port, mode, conns, workers, duration, maxSeconds, perUser, userOffset, perAddr, srcNet, addrs,
    svc: o.svc!, userPrefix: o["user-prefix"]!, concurrency, openRate, timeoutMs, retries, rate, size, binary: o.binary!,
    rounds, hold, jitterMs, drop: o.drop as "close" | "abort", roundTimeout, untilIdle, countTo, untilCounted, window,
    feedbackUrl, feedbackMetric: o["feedback-metric"]!, feedbackRe, control: o.control as "none" | "stdin",
    readyFile: o["ready-file"], extraHeaders, quiet,
  };
}
