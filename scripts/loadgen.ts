#!/usr/bin/env bun
// WebSocket load client for wsgate (or any WebSocket server on loopback).
//
// Built so that the client is never the bottleneck: raw TCP through Bun.connect, a
// hand-written client handshake and frame codec, no WebSocket objects, no per-message
// allocation beyond what the socket hands us. N connections are spread over W worker
// processes (each below the 20k open-files limit), and every worker binds its own source
// addresses 127.A.B.2, 127.A.B.3, ... (`--per-addr` connections each), so neither the
// descriptor limit nor the ephemeral port range stops it.
//
// Source binding: Bun.connect takes an undeclared `localAddress` option (Bun 1.4; not in
// bun-types). Measured against node:net `net.connect({localAddress})` under Bun, 10k
// connections: Bun.connect ~1.45 KB RSS and ~50 µs CPU per connection, node:net ~3.9 KB
// and ~80 µs, so Bun.connect is used. `--src auto` picks a fresh 127.A.B.0/24 per run:
// bind() to a source address still holding earlier runs' TIME_WAIT sockets was 5-40x
// slower.
//
// Modes
//   idle   open N connections and hold them for --duration seconds
//   recv   like idle, and count received messages; if a message starts with a wall-clock
//          time in ms (Date.now() or performance.timeOrigin + performance.now(), as text,
//          optionally with a fraction), its latency is recorded
//   send   each connection sends --rate messages/s of --size bytes (timestamp first); with
//          --window N and --feedback-url, closed loop instead: at most N messages in flight,
//          counted against a Prometheus counter at that URL (--feedback-metric: the server's
//          messages-in counter, or a downstream subscriber's), so clients send exactly as fast
//          as the other end takes them and nothing piles up in socket buffers
//   storm  open, hold --hold s, drop every connection (--drop close|abort) and reconnect
//          each after a uniform random delay in [0, --jitter] ms; --rounds times; reports
//          the time until all are back
//
// --count-to N (any mode): per connection, the time from the start of its connect (the
// first attempt, retries included; in storm mode the reconnect) to its N-th received
// message, as a histogram, plus when the first connection started and the last one got
// there, so "every backlog delivered after X ms" can be read off one run (a mailbox
// catch-up). --until-counted ends the run as soon as every connection that opened got N.
//
// Output: progress on stderr every second; at the end one JSON line on stdout and a
// human table on stderr. With `--control stdin`, lines "phase <name>" split the counters
// into named phases and "stop" ends the run. SIGINT/SIGTERM end the run with a summary.
// Every loop is bounded; --max-seconds is a hard stop; only loopback targets are accepted.
//
//   bun scripts/loadgen.ts --url ws://127.0.0.1:8080/ws -n 10000 --mode recv -d 30
import { parseArgs } from "node:util";
import { leadingTimestampMs } from "./timestamp.ts";
import { writeFileSync, renameSync } from "node:fs";
import type { Socket, Subprocess } from "bun";

// ───────────────────────── shared: time, histogram, stats ─────────────────────────

const ORIGIN = performance.timeOrigin;
/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes. */
const now = () => ORIGIN + performance.now();

/** Log-bucketed histogram of milliseconds: ~1% relative precision from 1 µs up to hours. */
const HB = 2400;
const LOG_STEP = Math.log(1.01);
function hAdd(h: Uint32Array, ms: number) {
  const us = ms * 1000;
  h[us < 1 ? 0 : Math.min(HB - 1, 1 + Math.floor(Math.log(us) / LOG_STEP))]++;
}
function hBucketMs(i: number) {
  return i === 0 ? 0.0005 : Math.pow(1.01, i - 0.5) / 1000;
}
type Sparse = [number, number][];
function hSparse(h: Uint32Array): Sparse {
  const out: Sparse = [];
  for (let i = 0; i < HB; i++) if (h[i]) out.push([i, h[i]]);
  return out;
}
function hMergeSparse(h: Uint32Array, s: Sparse) {
  for (const [i, n] of s) h[i] += n;
}
function hPercentiles(h: Uint32Array, ps: number[]): number[] {
  let total = 0;
  for (let i = 0; i < HB; i++) total += h[i];
  if (total === 0) return ps.map(() => NaN);
  return ps.map((p) => {
    const rank = Math.max(1, Math.ceil(p * total));
    let acc = 0;
    for (let i = 0; i < HB; i++) {
      acc += h[i];
      if (acc >= rank) return hBucketMs(i);
    }
    return hBucketMs(HB - 1);
  });
}

/** Counters for one phase of one worker (or merged). Gauges (open, peak) live elsewhere. */
type PhaseStats = {
  attempts: number;
  opened: number;
  errors: Record<string, number>;
  closes: Record<string, number>;
  hs: Sparse; // handshake time histogram (connect start → 101)
  recvMsgs: number;
  recvBytes: number;
  firstRecv: number;
  lastRecv: number;
  noTs: number;
  negLat: number;
  latCount: number;
  latSum: number;
  latMin: number;
  latMax: number;
  lat: Sparse;
  sentMsgs: number;
  sentBytes: number;
  sendSkips: number;
  pings: number;
  /** --count-to: connections that reached N messages, their time-to-N histogram (session start → N-th message) */
  nthCount: number;
  nth: Sparse;
  /** wall ms: the latest time a connection reached N, the earliest session start of this phase */
  nthLast: number;
  startMin: number;
  /** wall ms of the latest handshake completed in this phase */
  lastOpen: number;
};

type StormRound = { round: number; at: number; dropped: number; back: number; failed: number; lastBackAt: number; hist: Sparse };

type WorkerConfig = {
  id: number;
  host: string;
  port: number;
  path: string;
  hostHeader: string;
  svc: string;
  userPrefix: string;
  userOffset: number;
  perUser: number;
  first: number; // global index of this worker's first connection
  count: number;
  srcNet: [number, number] | null;
  perAddr: number;
  mode: Mode;
  concurrency: number;
  openRate: number; // per worker, per second; 0 = unlimited
  timeoutMs: number;
  retries: number;
  rate: number;
  size: number;
  binary: boolean;
  jitterMs: number;
  drop: "close" | "abort";
  countTo: number; // 0 = off
  windowed: boolean; // send mode: only what the parent grants (--window)
  deadlineAt: number; // wall ms: the worker exits by itself past this
  extraHeaders: string;
};

type Mode = "idle" | "recv" | "send" | "storm";

type ToWorker =
  | { t: "start"; cfg: WorkerConfig }
  | { t: "go" }
  | { t: "credit"; n: number }
  | { t: "snap"; id: number }
  | { t: "drop"; round: number; at: number }
  | { t: "round-status"; round: number }
  | { t: "finish"; id: number }
  | { t: "exit" };

type Tick = { open: number; peak: number; opened: number; settled: number; dead: number; recv: number; sent: number; counted: number; errors: Record<string, number> };

type FromWorker =
  | { t: "tick"; w: number; tick: Tick }
  | { t: "ready"; w: number; at: number; tick: Tick }
  | { t: "snap"; w: number; id: number; stats: PhaseStats; tick: Tick }
  | { t: "round"; w: number; r: StormRound; done: boolean }
  | { t: "fatal"; w: number; error: string };

/** Source address number k (0-based) within 127.A.B.0/24, spilling into B+1, B+2... */
function srcAddr(net: [number, number], k: number): string {
  return `127.${net[0]}.${net[1] + Math.floor(k / 253)}.${2 + (k % 253)}`;
}

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

// ─────────────────────────────────── worker ───────────────────────────────────

const S_IDLE = 0,
  S_CONNECTING = 1,
  S_HANDSHAKE = 2,
  S_OPEN = 3,
  S_CLOSING = 4,
  S_CLOSED = 5,
  S_DEAD = 6;

class Conn {
  sock: Socket<Conn> | null = null;
  st = S_IDLE;
  gen = 0;
  tries = 0;
  t0 = 0;
  buf: Uint8Array | null = null;
  out: Uint8Array | null = null;
  key = "";
  fragOp = 0;
  fragLen = 0;
  fragTs = -1;
  closeCode = 0;
  dropAt = 0;
  /** --count-to: data messages in this session, and when the session's first attempt started */
  got = 0;
  tStart = 0;
  everOpen = false;
  constructor(
    readonly idx: number,
    readonly user: string,
    readonly src: string | null,
  ) {}
}

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const MAX_FRAME = 64 * 1024 * 1024;
const MAX_OUT = 1 << 20;

function runWorker() {
  let cfg!: WorkerConfig;
  let conns: Conn[] = [];
  let ph = newPhase();
  let hsH = new Uint32Array(HB);
  let latH = new Uint32Array(HB);
  let nthH = new Uint32Array(HB);
  const cum = { recv: 0, sent: 0, counted: 0, errors: {} as Record<string, number> };
  let open = 0,
    peak = 0,
    openedTotal = 0,
    settled = 0,
    dead = 0,
    inflight = 0;
  let readySent = false;
  let finishing = false;
  let sending = false;
  let tokens = Infinity;
  const queue: Conn[] = [];
  let qHead = 0;
  let round: StormRound | null = null;
  let roundHist = new Uint32Array(HB);
  let roundPending = 0;
  let roundReported = false;
  const draining: { sock: Socket<Conn>; at: number }[] = [];
  const ppid = process.ppid;
  const send = (m: FromWorker) => process.send!(m);

  function newPhase(): PhaseStats {
    return {
      attempts: 0, opened: 0, errors: {}, closes: {}, hs: [], recvMsgs: 0, recvBytes: 0, firstRecv: 0, lastRecv: 0,
      noTs: 0, negLat: 0, latCount: 0, latSum: 0, latMin: Infinity, latMax: -Infinity, lat: [], sentMsgs: 0, sentBytes: 0,
      sendSkips: 0, pings: 0, nthCount: 0, nth: [], nthLast: 0, startMin: 0, lastOpen: 0,
    };
  }
  function err(kind: string) {
    ph.errors[kind] = (ph.errors[kind] ?? 0) + 1;
    cum.errors[kind] = (cum.errors[kind] ?? 0) + 1;
  }
  function tick(): Tick {
    return { open, peak, opened: openedTotal, settled, dead, recv: cum.recv, sent: cum.sent, counted: cum.counted, errors: cum.errors };
  }
  function snapshot(): PhaseStats {
    const s = ph;
    s.hs = hSparse(hsH);
    s.lat = hSparse(latH);
    s.nth = hSparse(nthH);
    ph = newPhase();
    hsH = new Uint32Array(HB);
    latH = new Uint32Array(HB);
    nthH = new Uint32Array(HB);
    return s;
  }

  // Random bytes for keys and masks, refilled in bulk.
  const rnd = new Uint8Array(65536);
  let rndPos = rnd.length;
  function rand4(): number {
    if (rndPos + 4 > rnd.length) {
      crypto.getRandomValues(rnd);
      rndPos = 0;
    }
    rndPos += 4;
    return rndPos - 4;
  }
  function wsKey(): string {
    const a = rand4(), b = rand4(), c = rand4(), d = rand4();
    const k = new Uint8Array(16);
    k.set(rnd.subarray(a, a + 4), 0);
    k.set(rnd.subarray(b, b + 4), 4);
    k.set(rnd.subarray(c, c + 4), 8);
    k.set(rnd.subarray(d, d + 4), 12);
    return Buffer.from(k).toString("base64");
  }

  /** One masked client frame. */
  function frame(op: number, payload: Uint8Array): Uint8Array {
    const len = payload.length;
    const hl = len < 126 ? 2 : len < 65536 ? 4 : 10;
    const f = new Uint8Array(hl + 4 + len);
    f[0] = 0x80 | op;
    if (len < 126) f[1] = 0x80 | len;
    else if (len < 65536) {
      f[1] = 0x80 | 126;
      f[2] = len >>> 8;
      f[3] = len & 255;
    } else {
      f[1] = 0x80 | 127;
      const hi = Math.floor(len / 4294967296), lo = len >>> 0;
      f[2] = hi >>> 24; f[3] = (hi >>> 16) & 255; f[4] = (hi >>> 8) & 255; f[5] = hi & 255;
      f[6] = lo >>> 24; f[7] = (lo >>> 16) & 255; f[8] = (lo >>> 8) & 255; f[9] = lo & 255;
    }
    const m = rand4();
    f[hl] = rnd[m]; f[hl + 1] = rnd[m + 1]; f[hl + 2] = rnd[m + 2]; f[hl + 3] = rnd[m + 3];
    const p = hl + 4;
    for (let i = 0; i < len; i++) f[p + i] = payload[i] ^ f[hl + (i & 3)];
    return f;
  }

  /** Writes bytes, keeping what the kernel did not take for the drain callback. */
  function write(c: Conn, data: Uint8Array): boolean {
    const s = c.sock;
    if (!s) return false;
    if (c.out) {
      if (c.out.length + data.length > MAX_OUT) return false;
      const o = new Uint8Array(c.out.length + data.length);
      o.set(c.out);
      o.set(data, c.out.length);
      c.out = o;
      return true;
    }
    const n = s.write(data);
    if (n < 0) return false;
    if (n < data.length) c.out = data.slice(n);
    return true;
  }

  function srcOf(i: number): string | null {
    return cfg.srcNet ? srcAddr(cfg.srcNet, Math.floor(i / cfg.perAddr)) : null;
  }

  const handlers = {
    binaryType: "uint8array" as const,
    data(sock: Socket<Conn>, chunk: Uint8Array) {
      const c = sock.data;
      if (sock !== c.sock) return;
      if (c.st === S_HANDSHAKE) handshakeData(c, chunk);
      else if (c.st === S_OPEN || c.st === S_CLOSING) frames(c, chunk, now());
    },
    drain(sock: Socket<Conn>) {
      const c = sock.data;
      if (sock !== c.sock || !c.out) return;
      const n = sock.write(c.out);
      if (n >= c.out.length) c.out = null;
      else if (n > 0) c.out = c.out.slice(n);
    },
    close(sock: Socket<Conn>) {
      const c = sock.data;
      if (sock !== c.sock) return;
      c.sock = null;
      c.buf = null;
      c.out = null;
      if (c.st === S_CONNECTING || c.st === S_HANDSHAKE) {
        fail(c, c.st === S_HANDSHAKE ? "closed_in_handshake" : "closed_connecting");
      } else if (c.st === S_OPEN || c.st === S_CLOSING) {
        open--;
        const kind = c.closeCode ? `ws_${c.closeCode}` : "tcp_closed";
        ph.closes[kind] = (ph.closes[kind] ?? 0) + 1;
        c.st = S_CLOSED;
      }
    },
    error(sock: Socket<Conn>, e: Error) {
      err(`socket_${(e as any)?.code ?? "error"}`);
    },
    connectError() {
      // handled through the rejected promise, which carries the attempt number
    },
  };

  function connect(c: Conn) {
    c.st = S_CONNECTING;
    c.t0 = now();
    if (c.tries === 0) {
      // a new session (the first attempt, or a storm's reconnect): --count-to counts from here
      c.tStart = c.t0;
      c.got = 0;
      if (ph.startMin === 0 || c.t0 < ph.startMin) ph.startMin = c.t0;
    }
    c.tries++;
    c.closeCode = 0;
    c.fragOp = 0;
    const gen = ++c.gen;
    inflight++;
    ph.attempts++;
    const opts: any = { hostname: cfg.host, port: cfg.port, data: c, socket: handlers };
    if (c.src) opts.localAddress = c.src;
    let p: Promise<Socket<Conn>>;
    try {
      p = Bun.connect(opts) as Promise<Socket<Conn>>;
    } catch (e) {
      queueMicrotask(() => c.gen === gen && c.st === S_CONNECTING && fail(c, connectKind(e)));
      return;
    }
    p.then(
      (sock) => {
        if (c.gen !== gen || c.st !== S_CONNECTING || finishing) {
          sock.terminate();
          return;
        }
        c.sock = sock;
        c.st = S_HANDSHAKE;
        c.key = wsKey();
        const req =
          `GET ${cfg.path} HTTP/1.1\r\nHost: ${cfg.hostHeader}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${c.key}\r\nSec-WebSocket-Version: 13\r\n` +
          `Cookie: service=${cfg.svc}; user=${c.user}\r\n${cfg.extraHeaders}\r\n`;
        sock.write(req);
      },
      (e) => {
        if (c.gen === gen && c.st === S_CONNECTING) fail(c, connectKind(e));
      },
    );
  }

  function connectKind(e: unknown): string {
    const code = (e as any)?.code ?? (e as any)?.errno;
    return `connect_${code ?? "error"}`;
  }

  function leaveInflight(c: Conn) {
    if (c.st === S_CONNECTING || c.st === S_HANDSHAKE) inflight--;
  }

  /** A failed attempt: retry with backoff, or give the connection up. */
  function fail(c: Conn, kind: string, retryable = true) {
    leaveInflight(c);
    err(kind);
    const s = c.sock;
    c.sock = null;
    c.buf = null;
    c.out = null;
    if (s) s.terminate();
    if (retryable && c.tries <= cfg.retries && !finishing) {
      c.st = S_IDLE;
      const delay = Math.min(2000, 100 * 2 ** (c.tries - 1)) * (0.5 + Math.random());
      setTimeout(() => {
        if (c.st === S_IDLE && !finishing) enqueue(c);
      }, delay);
    } else {
      c.st = S_DEAD;
      if (!c.everOpen) {
        settled++;
        dead++;
      }
      if (round && c.dropAt === round.at) {
        round.failed++;
        roundPending--;
      }
      checkReady();
      checkRound();
    }
    pump();
  }

  function enqueue(c: Conn) {
    queue.push(c);
    pump();
  }

  function pump() {
    while (qHead < queue.length && inflight < cfg.concurrency && tokens >= 1 && !finishing) {
      tokens--;
      const c = queue[qHead++];
      if (qHead > 4096 && qHead * 2 > queue.length) {
        queue.splice(0, qHead);
        qHead = 0;
      }
      if (c.st === S_IDLE) connect(c);
    }
  }

  function indexOfCrlf2(b: Uint8Array): number {
    for (let i = 3; i < b.length; i++) {
      if (b[i] === 10 && b[i - 1] === 13 && b[i - 2] === 10 && b[i - 3] === 13) return i - 3;
    }
    return -1;
  }

  const dec = new TextDecoder();
  /** The bytes left over from the last read of this connection, followed by `chunk`. */
  function withCarry(c: Conn, chunk: Uint8Array): Uint8Array {
    if (!c.buf) return chunk;
    const b = new Uint8Array(c.buf.length + chunk.length);
    b.set(c.buf);
    b.set(chunk, c.buf.length);
    c.buf = null;
    return b;
  }

  function handshakeData(c: Conn, chunk: Uint8Array) {
    const b = withCarry(c, chunk);
    const end = indexOfCrlf2(b);
    if (end < 0) {
      if (b.length > 16384) fail(c, "bad_response", false);
      else c.buf = b.slice();
      return;
    }
    const head = dec.decode(b.subarray(0, end));
    const status = Number(head.slice(9, 12));
    if (!head.startsWith("HTTP/1.1 ") || !Number.isFinite(status)) return fail(c, "bad_response", false);
    if (status !== 101) {
      // 4xx are deliberate refusals (identity, origin): retrying will not help.
      return fail(c, `http_${status}`, status >= 500 || status === 429);
    }
    const m = /\r\nsec-websocket-accept:[ \t]*([^\r\n]+)/i.exec(head);
    const want = new Bun.CryptoHasher("sha1").update(c.key + WS_GUID).digest("base64");
    if (!m || m[1].trim() !== want) return fail(c, "bad_accept", false);
    leaveInflight(c);
    const t = now();
    c.st = S_OPEN;
    c.key = "";
    c.tries = 0;
    open++;
    if (open > peak) peak = open;
    openedTotal++;
    ph.opened++;
    ph.lastOpen = t;
    hAdd(hsH, t - c.t0);
    if (!c.everOpen) {
      c.everOpen = true;
      settled++;
      checkReady();
    }
    if (round && c.dropAt === round.at) {
      round.back++;
      roundPending--;
      round.lastBackAt = t;
      hAdd(roundHist, t - round.at);
      checkRound();
    }
    pump();
    if (end + 4 < b.length) frames(c, b.subarray(end + 4), t);
  }

  function frames(c: Conn, chunk: Uint8Array, t: number) {
    const d = withCarry(c, chunk);
    const n = d.length;
    let off = 0;
    while (n - off >= 2) {
      const b0 = d[off], b1 = d[off + 1];
      let len = b1 & 127, h = 2;
      if (len === 126) {
        if (n - off < 4) break;
        len = (d[off + 2] << 8) | d[off + 3];
        h = 4;
      } else if (len === 127) {
        if (n - off < 10) break;
        len = (d[off + 2] * 16777216 + (d[off + 3] << 16) + (d[off + 4] << 8) + d[off + 5]) * 4294967296 +
          (d[off + 6] * 16777216 + (d[off + 7] << 16) + (d[off + 8] << 8) + d[off + 9]);
        h = 10;
      }
      const masked = (b1 & 128) !== 0;
      if (masked) h += 4;
      if (len > MAX_FRAME) {
        err("frame_too_big");
        kill(c);
        return;
      }
      if (n - off < h + len) break;
      const ps = off + h;
      if (masked) {
        err("server_masked");
        for (let i = 0; i < len; i++) d[ps + i] ^= d[ps - 4 + (i & 3)];
      }
      frame1(c, b0, d, ps, len, t);
      if (!c.sock) return;
      off = ps + len;
    }
    if (off < n) c.buf = d.slice(off);
  }

  function kill(c: Conn) {
    const s = c.sock;
    if (s) s.terminate();
  }

  function frame1(c: Conn, b0: number, d: Uint8Array, ps: number, len: number, t: number) {
    const op = b0 & 15;
    const fin = (b0 & 128) !== 0;
    switch (op) {
      case 1:
      case 2:
        if (c.fragOp) err("protocol_interleaved");
        if (fin) message(c, len, leadingTimestampMs(d, ps, len), t);
        else {
          c.fragOp = op;
          c.fragLen = len;
          c.fragTs = leadingTimestampMs(d, ps, len);
        }
        return;
      case 0:
        if (!c.fragOp) {
          err("protocol_continuation");
          return;
        }
        c.fragLen += len;
        if (fin) {
          message(c, c.fragLen, c.fragTs, t);
          c.fragOp = 0;
        }
        return;
      case 8: {
        const code = len >= 2 ? (d[ps] << 8) | d[ps + 1] : 1005;
        if (c.st === S_OPEN) {
          c.closeCode = code;
          c.st = S_CLOSING;
          const echo = new Uint8Array(code === 1005 ? 0 : 2);
          if (echo.length) {
            echo[0] = code >> 8;
            echo[1] = code & 255;
          }
          write(c, frame(8, echo));
        } else {
          // the server's answer to our close: the TCP close is ours to finish
          c.sock?.end();
        }
        return;
      }
      case 9:
        ph.pings++;
        write(c, frame(10, d.slice(ps, ps + len)));
        return;
      case 10:
        return;
      default:
        err("protocol_opcode");
    }
  }

  function message(c: Conn, len: number, ts: number, t: number) {
    if (cfg.countTo > 0 && ++c.got === cfg.countTo) {
      ph.nthCount++;
      cum.counted++;
      hAdd(nthH, t - c.tStart);
      if (t > ph.nthLast) ph.nthLast = t;
    }
    ph.recvMsgs++;
    cum.recv++;
    ph.recvBytes += len;
    if (ph.firstRecv === 0) ph.firstRecv = t;
    ph.lastRecv = t;
    if (ts < 0) {
      ph.noTs++;
      return;
    }
    let lat = t - ts;
    if (lat < 0) {
      ph.negLat++;
      lat = 0;
    }
    ph.latCount++;
    ph.latSum += lat;
    if (lat < ph.latMin) ph.latMin = lat;
    if (lat > ph.latMax) ph.latMax = lat;
    hAdd(latH, lat);
  }

  function checkReady() {
    if (!readySent && settled >= cfg.count) {
      readySent = true;
      send({ t: "ready", w: cfg.id, at: now(), tick: tick() });
    }
  }

  function checkRound() {
    if (round && !roundReported && roundPending <= 0) {
      roundReported = true;
      round.hist = hSparse(roundHist);
      send({ t: "round", w: cfg.id, r: round, done: true });
    }
  }

  // ── send mode: one frame built per tick (same timestamp), repeated per connection ──
  let credit = 0;
  let budget = 0; // --window: messages the parent has granted and this worker has not sent yet
  let cursor = 0;
  let lastSendTick = 0;
  const enc = new TextEncoder();
  function sendTick() {
    if (!sending || finishing) return;
    const t = now();
    const dt = Math.min(1, (t - lastSendTick) / 1000);
    lastSendTick = t;
    if (open === 0) return;
    if (cfg.windowed) credit = budget; // closed loop: exactly what was granted
    else credit += cfg.rate * open * dt;
    if (!cfg.windowed && credit > cfg.rate * open) {
      // more than a second behind: do not burst to catch up, count what is skipped
      ph.sendSkips += Math.floor(credit - cfg.rate * open);
      credit = cfg.rate * open;
    }
    if (credit < 1) return;
    const payload = new Uint8Array(cfg.size);
    payload.fill(120); // 'x'
    const ts = enc.encode(t.toFixed(3) + " ");
    payload.set(ts.subarray(0, Math.min(ts.length, payload.length)));
    const one = frame(cfg.binary ? 2 : 1, payload);
    const each = Math.floor(credit / open);
    if (each >= 1) {
      let k = each;
      const many = new Uint8Array(one.length * k);
      for (let i = 0; i < k; i++) many.set(one, i * one.length);
      for (const c of conns) {
        if (c.st !== S_OPEN) continue;
        if (c.out || !write(c, many)) {
          ph.sendSkips += k;
          continue;
        }
        ph.sentMsgs += k;
        cum.sent += k;
        budget -= k;
        ph.sentBytes += k * cfg.size;
      }
      credit -= each * open;
    }
    let r = Math.floor(credit);
    credit -= r;
    for (let scanned = 0; r > 0 && scanned < conns.length; scanned++) {
      const c = conns[cursor];
      cursor = (cursor + 1) % conns.length;
      if (c.st !== S_OPEN) continue;
      r--;
      if (c.out || !write(c, one)) {
        ph.sendSkips++;
        continue;
      }
      ph.sentMsgs++;
      cum.sent++;
      budget--;
      ph.sentBytes += cfg.size;
    }
  }

  // ── storm: drop everything, reconnect each after a random delay ──
  function drop(r: number, at: number) {
    round = { round: r, at, dropped: 0, back: 0, failed: 0, lastBackAt: 0, hist: [] };
    roundHist = new Uint32Array(HB);
    roundPending = 0;
    roundReported = false;
    const closeFrame = frame(8, new Uint8Array([0x03, 0xe8])); // 1000
    for (const c of conns) {
      if (c.st !== S_OPEN) continue;
      const s = c.sock!;
      if (cfg.drop === "close") {
        s.write(closeFrame);
        draining.push({ sock: s, at });
      } else {
        s.end();
      }
      c.sock = null;
      c.buf = null;
      c.out = null;
      c.st = S_IDLE;
      c.tries = 0;
      c.dropAt = at;
      open--;
      round.dropped++;
      roundPending++;
      setTimeout(() => {
        if (c.st === S_IDLE && !finishing) enqueue(c);
      }, Math.random() * cfg.jitterMs);
    }
    checkRound();
  }

  function everyTick() {
    const t = now();
    if (t > cfg.deadlineAt || process.ppid !== ppid) {
      process.exit(4);
    }
    if (cfg.openRate > 0) tokens = Math.min(cfg.openRate, tokens + cfg.openRate / 4);
    for (const c of conns) {
      if ((c.st === S_CONNECTING || c.st === S_HANDSHAKE) && t - c.t0 > cfg.timeoutMs) fail(c, "timeout");
    }
    for (let i = draining.length - 1; i >= 0; i--) {
      const d = draining[i];
      if (d.sock.readyState <= 0) draining.splice(i, 1);
      else if (t - d.at > 3000) {
        d.sock.terminate();
        draining.splice(i, 1);
      }
    }
    pump();
    send({ t: "tick", w: cfg.id, tick: tick() });
  }

  process.on("message", (m: ToWorker) => {
    switch (m.t) {
      case "start": {
        cfg = m.cfg;
        tokens = cfg.openRate > 0 ? Math.max(1, cfg.openRate / 4) : Infinity;
        conns = new Array(cfg.count);
        for (let i = 0; i < cfg.count; i++) {
          const g = cfg.first + i;
          conns[i] = new Conn(g, cfg.userPrefix + (cfg.userOffset + Math.floor(g / cfg.perUser)), srcOf(g));
        }
        for (const c of conns) queue.push(c);
        setInterval(everyTick, 250);
        if (cfg.count === 0) checkReady();
        pump();
        break;
      }
      case "credit":
        budget += m.n;
        break;
      case "go":
        sending = true;
        lastSendTick = now();
        setInterval(sendTick, 10);
        break;
      case "snap":
        send({ t: "snap", w: cfg.id, id: m.id, stats: snapshot(), tick: tick() });
        break;
      case "drop":
        drop(m.round, m.at);
        break;
      case "round-status":
        if (round && round.round === m.round && !roundReported) {
          round.hist = hSparse(roundHist);
          send({ t: "round", w: cfg.id, r: round, done: false });
        }
        break;
      case "finish":
        finishing = true;
        sending = false;
        send({ t: "snap", w: cfg.id, id: m.id, stats: snapshot(), tick: tick() });
        break;
      case "exit":
        process.exit(0);
    }
  });
  process.on("disconnect", () => process.exit(0));
}

// ─────────────────────────────────── parent ───────────────────────────────────

function fail(msg: string): never {
  console.error(`loadgen: ${msg}`);
  process.exit(2);
}

function intOpt(v: string | undefined, name: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) fail(`--${name} must be a number from ${min} to ${max} (got ${JSON.stringify(v)})`);
  return n;
}

function emptyMerged(): PhaseStats {
  return {
    attempts: 0, opened: 0, errors: {}, closes: {}, hs: [], recvMsgs: 0, recvBytes: 0, firstRecv: 0, lastRecv: 0,
    noTs: 0, negLat: 0, latCount: 0, latSum: 0, latMin: Infinity, latMax: -Infinity, lat: [], sentMsgs: 0, sentBytes: 0,
    sendSkips: 0, pings: 0, nthCount: 0, nth: [], nthLast: 0, startMin: 0, lastOpen: 0,
  };
}

type Merged = PhaseStats & { hsH: Uint32Array; latH: Uint32Array; nthH: Uint32Array };
function merge(list: PhaseStats[]): Merged {
  const m: Merged = { ...emptyMerged(), hsH: new Uint32Array(HB), latH: new Uint32Array(HB), nthH: new Uint32Array(HB) };
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

const r3 = (x: number) => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : null);

function phaseReport(name: string, m: Merged, startedAt: number, endedAt: number) {
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
    ...(countToN > 0 ? { countTo: countToReport(m) } : {}),
  };
}

/** --count-to N: how long connections took from their connect start to their N-th message. */
let countToN = 0;
function countToReport(m: Merged) {
  const [p50, p90, p99, max] = hPercentiles(m.nthH, [0.5, 0.9, 0.99, 1]);
  return {
    n: countToN,
    reached: m.nthCount,
    ms: m.nthCount ? { p50: r3(p50), p90: r3(p90), p99: r3(p99), max: r3(max) } : null,
    // wall-clock ms (performance.timeOrigin + now()), comparable across processes on this host
    firstStartAt: m.startMin ? r3(m.startMin) : null,
    lastReachedAt: m.nthLast ? r3(m.nthLast) : null,
    // from the earliest connect start of the phase to the last connection reaching N
    allReachedMs: m.startMin && m.nthLast ? r3(m.nthLast - m.startMin) : null,
  };
}

async function runParent() {
  let parsed;
  try {
    parsed = parseArgs({
      args: Bun.argv.slice(2),
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
  const idRule = /^[A-Za-z0-9_-]{1,64}$/;
  if (!idRule.test(o.svc!)) fail(`--svc must match ${idRule}`);
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
  countToN = countTo;
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

  const t0 = now();
  const deadlineAt = t0 + maxSeconds * 1000;
  const srcDesc = srcNet ? `${srcAddr(srcNet, 0)}-${srcAddr(srcNet, Math.max(0, addrs - 1))}` : "kernel-chosen";

  // ── workers ──
  type W = { proc: Subprocess; tick: Tick | null; ready: boolean; exited: boolean };
  const ws: W[] = [];
  const waiters = new Map<number, { need: number; got: { w: number; stats: PhaseStats }[]; resolve: (v: PhaseStats[]) => void }>();
  let readyCount = 0;
  let onReady: () => void = () => {};
  let roundMsgs: { w: number; r: StormRound; done: boolean }[] = [];
  let onRound: () => void = () => {};
  let nextReq = 1;

  const base = Math.floor(conns / workers);
  let first = 0;
  for (let i = 0; i < workers; i++) {
    const count = base + (i < conns % workers ? 1 : 0);
    const cfg: WorkerConfig = {
      id: i, host, port, path: url.pathname + url.search, hostHeader: url.host, svc: o.svc!, userPrefix: o["user-prefix"]!,
      userOffset, perUser, first, count, srcNet, perAddr, mode, concurrency, openRate: openRate / workers, timeoutMs, retries,
      rate, size, binary: o.binary!, jitterMs, drop: o.drop as "close" | "abort", countTo, windowed: window > 0, deadlineAt: deadlineAt + 15_000, extraHeaders,
    };
    first += count;
    const w: W = { proc: null as unknown as Subprocess, tick: null, ready: false, exited: false };
    w.proc = Bun.spawn({
      cmd: [process.execPath, import.meta.path, "--worker"],
      stdio: ["ignore", "inherit", "inherit"],
      serialization: "json",
      ipc(m: FromWorker) {
        switch (m.t) {
          case "tick":
            w.tick = m.tick;
            break;
          case "ready":
            w.tick = m.tick;
            w.ready = true;
            readyCount++;
            onReady();
            break;
          case "snap": {
            w.tick = m.tick;
            const wt = waiters.get(m.id);
            if (wt) {
              wt.got.push({ w: m.w, stats: m.stats });
              if (wt.got.length >= wt.need) {
                waiters.delete(m.id);
                wt.resolve(wt.got.sort((a, b) => a.w - b.w).map((g) => g.stats));
              }
            }
            break;
          }
          case "round":
            roundMsgs.push(m);
            onRound();
            break;
          case "fatal":
            console.error(`loadgen: worker ${m.w}: ${m.error}`);
        }
      },
    });
    w.proc.send({ t: "start", cfg } satisfies ToWorker);
    w.proc.exited.then((code) => {
      w.exited = true;
      if (!stopping) console.error(`loadgen: worker ${i} exited early (code ${code})`);
      if (!w.ready) {
        w.ready = true;
        readyCount++;
        onReady();
      }
      for (const [, wt] of waiters) {
        wt.need--;
        if (wt.got.length >= wt.need) wt.resolve(wt.got.map((g) => g.stats));
      }
      onRound();
    });
    ws.push(w);
  }
  const live = () => ws.filter((w) => !w.exited);
  const broadcast = (m: ToWorker) => {
    for (const w of live()) {
      try {
        w.proc.send(m);
      } catch {}
    }
  };
  /** Asks every live worker for its counters of the current phase (and resets them). */
  function collect(kind: "snap" | "finish"): Promise<PhaseStats[]> {
    const id = nextReq++;
    const l = live();
    return new Promise((resolve) => {
      if (l.length === 0) return resolve([]);
      waiters.set(id, { need: l.length, got: [], resolve });
      broadcast(kind === "snap" ? { t: "snap", id } : { t: "finish", id });
      setTimeout(() => {
        const wt = waiters.get(id);
        if (wt) {
          waiters.delete(id);
          console.error(`loadgen: ${wt.need - wt.got.length} worker(s) did not answer in time`);
          resolve(wt.got.map((g) => g.stats));
        }
      }, 5000);
    });
  }

  // ── stop conditions ──
  let stopping = false;
  let stopReason = "";
  let stopResolve: () => void = () => {};
  const stopped = new Promise<void>((r) => (stopResolve = r));
  const stop = (why: string) => {
    if (stopReason) return;
    stopReason = why;
    stopResolve();
  };
  let sigs = 0;
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      if (++sigs > 1) {
        for (const w of ws) w.proc.kill(9);
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
      for (const w of ws) w.proc.kill(9);
      process.exit(3);
    }, 20_000).unref();
  }, maxSeconds * 1000);
  const sleep = (ms: number) => Promise.race([Bun.sleep(ms), stopped]);

  // ── phases ──
  const phases: { name: string; start: number; end: number; stats: PhaseStats[] }[] = [];
  let phaseName = "main";
  let phaseStart = t0;
  let phaseBusy: Promise<void> = Promise.resolve();
  function markPhase(name: string) {
    phaseBusy = phaseBusy.then(async () => {
      const stats = await collect("snap");
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
  const totals = () => {
    const s = { open: 0, opened: 0, settled: 0, dead: 0, recv: 0, sent: 0, counted: 0, peak: 0, errors: {} as Record<string, number> };
    for (const w of ws) {
      const k = w.tick;
      if (!k) continue;
      s.open += k.open;
      s.opened += k.opened;
      s.settled += k.settled;
      s.dead += k.dead;
      s.recv += k.recv;
      s.sent += k.sent;
      s.counted += k.counted ?? 0;
      s.peak += k.peak;
      for (const e in k.errors) s.errors[e] = (s.errors[e] ?? 0) + k.errors[e];
    }
    return s;
  };
  const progress = setInterval(() => {
    const t = now();
    const s = totals();
    const dt = (t - last.t) / 1000;
    if (s.recv !== lastRecvTotal) {
      lastRecvTotal = s.recv;
      lastRecvChange = t;
    }
    if (untilIdle > 0 && s.recv > 0 && t - lastRecvChange > untilIdle * 1000) stop("until-idle");
    // every connection that opened (and was not given up) has its N messages
    if (untilCounted && readyCount >= workers && s.counted >= s.settled - s.dead && s.settled > 0) stop("until-counted");
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

  // ── send mode with --window: grant credit as the other end reports arrivals ──
  const windowStats = { granted: 0, delivered: 0, polls: 0, pollErrors: 0, stalls: 0 };
  async function feedback(): Promise<number> {
    const text = await (await fetch(feedbackUrl!)).text();
    const m = feedbackRe.exec(text);
    if (!m) throw new Error(`${o["feedback-metric"]} not found at ${feedbackUrl}`);
    return Number(m[1]);
  }
  async function grantLoop() {
    let base: number;
    try {
      base = await feedback();
    } catch (e) {
      console.error(`loadgen: feedback: ${(e as Error).message}`);
      stop("feedback-failed");
      return;
    }
    while (!stopReason) {
      try {
        windowStats.delivered = (await feedback()) - base;
        windowStats.polls++;
      } catch {
        windowStats.pollErrors++;
        if (windowStats.pollErrors > 100 && windowStats.polls === 0) {
          stop("feedback-failed");
          return;
        }
      }
      const room = window - (windowStats.granted - windowStats.delivered);
      const l = live();
      if (room >= Math.max(1, window / 20) && l.length > 0) {
        // split by how many connections each worker has open
        const opens = l.map((w) => Math.max(1, w.tick?.open ?? 1));
        const all = opens.reduce((a, b) => a + b, 0);
        let given = 0;
        l.forEach((w, i) => {
          const n = i === l.length - 1 ? room - given : Math.floor((room * opens[i]) / all);
          given += n;
          if (n > 0) {
            try {
              w.proc.send({ t: "credit", n } satisfies ToWorker);
            } catch {}
          }
        });
        windowStats.granted += room;
      } else if (room < window / 20) windowStats.stalls++;
      await Promise.race([Bun.sleep(2), stopped]);
    }
  }

  // ── open everything ──
  await Promise.race([
    new Promise<void>((r) => {
      onReady = () => readyCount >= workers && r();
      onReady();
    }),
    stopped,
  ]);
  const openedAt = now();
  const openTotals = totals();
  const openMs = openedAt - t0;
  if (o["ready-file"]) {
    const tmp = o["ready-file"] + ".tmp";
    writeFileSync(tmp, JSON.stringify({ open: openTotals.open, dead: openTotals.dead, ms: Math.round(openMs), src: srcDesc }) + "\n");
    renameSync(tmp, o["ready-file"]);
  }
  if (!quiet && !stopReason) console.error(`loadgen: ${openTotals.open}/${conns} open after ${(openMs / 1000).toFixed(2)} s (${openTotals.dead} given up)`);

  if (!stopReason && conns > 0 && openTotals.open === 0) stop("none-open");

  // ── the mode's main part ──
  const storm: any[] = [];
  if (!stopReason) {
    if (mode === "send") {
      broadcast({ t: "go" });
      if (window > 0) void grantLoop();
    }
    if (mode === "storm") {
      for (let r = 1; r <= rounds && !stopReason; r++) {
        await sleep(hold * 1000);
        if (stopReason) break;
        roundMsgs = [];
        const at = now();
        broadcast({ t: "drop", round: r, at });
        const doneAll = () => live().every((w) => roundMsgs.some((m) => m.w === ws.indexOf(w) && m.done));
        await Promise.race([
          new Promise<void>((res) => {
            onRound = () => doneAll() && res();
            onRound();
          }),
          Bun.sleep(roundTimeout * 1000),
          stopped,
        ]);
        let complete = doneAll();
        if (!complete) {
          roundMsgs = roundMsgs.filter((m) => m.done);
          broadcast({ t: "round-status", round: r });
          await Promise.race([Bun.sleep(1000), stopped]);
        }
        const h = new Uint32Array(HB);
        let dropped = 0, back = 0, failed = 0, lastBack = 0;
        for (const m of roundMsgs) {
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
    } else if (duration > 0) {
      await sleep(duration * 1000);
      stop("duration");
    }
  }
  await stopped;
  stopping = true;
  clearTimeout(hardTimer);
  clearInterval(progress);
  await phaseBusy;

  // ── collect, report, exit ──
  const finalStats = await collect("finish");
  const endAt = now();
  phases.push({ name: phaseName, start: phaseStart, end: endAt, stats: finalStats });
  broadcast({ t: "exit" });
  await Promise.race([Promise.all(ws.map((w) => w.proc.exited)), Bun.sleep(5000)]);
  for (const w of ws) if (!w.exited) w.proc.kill(9);

  const phaseReports = phases.map((p) => phaseReport(p.name, merge(p.stats), p.start, p.end));
  const all = merge(phases.flatMap((p) => p.stats));
  const total = phaseReport("total", all, openedAt, endAt);
  const finalTicks = totals();
  const summary = {
    tool: "loadgen",
    mode,
    url: url.href,
    conns,
    workers,
    perUser,
    users: Math.ceil(conns / perUser),
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
    ...(window > 0 ? { window: { size: window, ...windowStats } } : {}),
    ...(mode === "storm" ? { storm } : {}),
    ...(phaseReports.length > 1 ? { phases: phaseReports } : {}),
  };
  process.stdout.write(JSON.stringify(summary) + "\n");
  printTable(summary, phaseReports);
  process.exit(stopReason === "max-seconds" ? 3 : openTotals.open === 0 && conns > 0 ? 1 : 0);
}

function printTable(s: any, phases: any[]) {
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

if (Bun.argv.includes("--worker")) runWorker();
else await runParent();
