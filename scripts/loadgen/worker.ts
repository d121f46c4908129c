// A worker process: opens its share of the connections (bounded handshakes in flight, an
// optional open rate, retries with backoff), reads every frame, and reports to the parent
// over IPC. Runs until the parent says exit, the parent is gone, or its deadline passes.
import type { Socket } from "bun";
import { acceptFor, encodeFrame, indexOfCrlf2, wsKey } from "./codec.ts";
import { Conn, S_CLOSED, S_CLOSING, S_CONNECTING, S_DEAD, S_HANDSHAKE, S_IDLE, S_OPEN, withCarry } from "./conn.ts";
import { type FromWorker, now, srcAddr, type Tick, type ToWorker, type WorkerConfig } from "./messages.ts";
import { Reader } from "./reader.ts";
import { Recorder } from "./recorder.ts";
import { Sender } from "./send.ts";
import { Storm } from "./storm.ts";

const dec = new TextDecoder();
const send = (m: FromWorker) => process.send!(m);

class Worker {
  readonly conns: Conn[];
  readonly rec: Recorder;
  open = 0;
  finishing = false;
  private peak = 0;
  private openedTotal = 0;
  private settled = 0;
  private dead = 0;
  private inflight = 0;
  private readySent = false;
  private tokens: number;
  private queue: Conn[] = [];
  private qHead = 0;
  private draining: { sock: Socket<Conn>; at: number }[] = [];
  readonly sender = new Sender(this);
  private readonly reader: Reader;
  readonly storm: Storm;
  private readonly ppid = process.ppid;

  private readonly handlers = {
    binaryType: "uint8array" as const,
    data: (sock: Socket<Conn>, chunk: Uint8Array) => {
      const c = sock.data;
      if (sock !== c.sock) return;
      if (c.st === S_HANDSHAKE) this.handshakeData(c, chunk);
      else if (c.st === S_OPEN || c.st === S_CLOSING) this.reader.frames(c, chunk, now());
    },
    drain: (sock: Socket<Conn>) => {
      const c = sock.data;
      if (sock !== c.sock || !c.out) return;
      const n = sock.write(c.out);
      if (n >= c.out.length) c.out = null;
      else if (n > 0) c.out = c.out.slice(n);
    },
    close: (sock: Socket<Conn>) => {
      const c = sock.data;
      if (sock !== c.sock) return;
      c.sock = null;
      c.buf = null;
      c.out = null;
      if (c.st === S_CONNECTING || c.st === S_HANDSHAKE) {
        this.fail(c, c.st === S_HANDSHAKE ? "closed_in_handshake" : "closed_connecting");
      } else if (c.st === S_OPEN || c.st === S_CLOSING) {
        this.open--;
        this.rec.close(c.closeCode ? `ws_${c.closeCode}` : "tcp_closed");
        c.st = S_CLOSED;
      }
    },
    error: (_sock: Socket<Conn>, e: Error) => {
      this.rec.err(`socket_${(e as any)?.code ?? "error"}`);
    },
    connectError: () => {
      // handled through the rejected promise, which carries the attempt number
    },
  };

  constructor(readonly cfg: WorkerConfig) {
    this.rec = new Recorder(cfg.countTo);
    this.reader = new Reader(this.rec, cfg.countTo);
    this.storm = new Storm((r, done) => send({ t: "round", w: cfg.id, r, done }));
    this.tokens = cfg.openRate > 0 ? Math.max(1, cfg.openRate / 4) : Infinity;
    this.conns = new Array(cfg.count);
    for (let i = 0; i < cfg.count; i++) {
      const g = cfg.first + i;
      const src = cfg.srcNet ? srcAddr(cfg.srcNet, Math.floor(g / cfg.perAddr)) : null;
      this.conns[i] = new Conn(g, cfg.userPrefix + (cfg.userOffset + Math.floor(g / cfg.perUser)), src);
    }
    for (const c of this.conns) this.queue.push(c);
    setInterval(() => this.everyTick(), 250);
    if (cfg.count === 0) this.checkReady();
    this.pump();
  }

  tick(): Tick {
    const { cum } = this.rec;
    return { open: this.open, peak: this.peak, opened: this.openedTotal, settled: this.settled, dead: this.dead, recv: cum.recv, sent: cum.sent, counted: cum.counted, errors: cum.errors };
  }

  private connect(c: Conn) {
    const cfg = this.cfg;
    c.st = S_CONNECTING;
    c.t0 = now();
    if (c.tries === 0) {
      // a new session (the first attempt, or a storm's reconnect): --count-to counts from here
      c.tStart = c.t0;
      c.got = 0;
      this.rec.sessionStart(c.t0);
    }
    c.tries++;
    c.closeCode = 0;
    c.fragOp = 0;
    const gen = ++c.gen;
    this.inflight++;
    this.rec.ph.attempts++;
    const opts: any = { hostname: cfg.host, port: cfg.port, data: c, socket: this.handlers };
    if (c.src) opts.localAddress = c.src;
    let p: Promise<Socket<Conn>>;
    try {
      p = Bun.connect(opts) as Promise<Socket<Conn>>;
    } catch (e) {
      queueMicrotask(() => c.gen === gen && c.st === S_CONNECTING && this.fail(c, connectKind(e)));
      return;
    }
    p.then(
      (sock) => {
        if (c.gen !== gen || c.st !== S_CONNECTING || this.finishing) {
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
        if (c.gen === gen && c.st === S_CONNECTING) this.fail(c, connectKind(e));
      },
    );
  }

  private leaveInflight(c: Conn) {
    if (c.st === S_CONNECTING || c.st === S_HANDSHAKE) this.inflight--;
  }

  /** A failed attempt: retry with backoff, or give the connection up. */
  private fail(c: Conn, kind: string, retryable = true) {
    this.leaveInflight(c);
    this.rec.err(kind);
    const s = c.sock;
    c.sock = null;
    c.buf = null;
    c.out = null;
    if (s) s.terminate();
    if (retryable && c.tries <= this.cfg.retries && !this.finishing) {
      c.st = S_IDLE;
      const delay = Math.min(2000, 100 * 2 ** (c.tries - 1)) * (0.5 + Math.random());
      setTimeout(() => {
        if (c.st === S_IDLE && !this.finishing) this.enqueue(c);
      }, delay);
    } else {
      c.st = S_DEAD;
      if (!c.everOpen) {
        this.settled++;
        this.dead++;
      }
      this.storm.gaveUp(c);
      this.checkReady();
      this.storm.check();
    }
    this.pump();
  }

  private enqueue(c: Conn) {
    this.queue.push(c);
    this.pump();
  }

  private pump() {
    while (this.qHead < this.queue.length && this.inflight < this.cfg.concurrency && this.tokens >= 1 && !this.finishing) {
      this.tokens--;
      const c = this.queue[this.qHead++];
      if (this.qHead > 4096 && this.qHead * 2 > this.queue.length) {
        this.queue.splice(0, this.qHead);
        this.qHead = 0;
      }
      if (c.st === S_IDLE) this.connect(c);
    }
  }

  private handshakeData(c: Conn, chunk: Uint8Array) {
    const b = withCarry(c, chunk);
    const end = indexOfCrlf2(b);
    if (end < 0) {
      if (b.length > 16384) this.fail(c, "bad_response", false);
      else c.buf = b.slice();
      return;
    }
    const head = dec.decode(b.subarray(0, end));
    const status = Number(head.slice(9, 12));
    if (!head.startsWith("HTTP/1.1 ") || !Number.isFinite(status)) return this.fail(c, "bad_response", false);
    if (status !== 101) {
      // 4xx are deliberate refusals (identity, origin): retrying will not help.
      return this.fail(c, `http_${status}`, status >= 500 || status === 429);
    }
    const m = /\r\nsec-websocket-accept:[ \t]*([^\r\n]+)/i.exec(head);
    if (!m || m[1].trim() !== acceptFor(c.key)) return this.fail(c, "bad_accept", false);
    this.leaveInflight(c);
    const t = now();
    c.st = S_OPEN;
    c.key = "";
    c.tries = 0;
    this.open++;
    if (this.open > this.peak) this.peak = this.open;
    this.openedTotal++;
    this.rec.opened(c.t0, t);
    if (!c.everOpen) {
      c.everOpen = true;
      this.settled++;
      this.checkReady();
    }
    this.storm.back(c, t);
    this.pump();
    if (end + 4 < b.length) this.reader.frames(c, b.subarray(end + 4), t);
  }

  private checkReady() {
    if (!this.readySent && this.settled >= this.cfg.count) {
      this.readySent = true;
      send({ t: "ready", w: this.cfg.id, at: now(), tick: this.tick() });
    }
  }

  /** Storm: drop everything, reconnect each after a random delay. */
  drop(r: number, at: number) {
    this.storm.begin(r, at);
    const closeFrame = encodeFrame(8, new Uint8Array([0x03, 0xe8])); // 1000
    for (const c of this.conns) {
      if (c.st !== S_OPEN) continue;
      const s = c.sock!;
      if (this.cfg.drop === "close") {
        s.write(closeFrame);
        this.draining.push({ sock: s, at });
      } else {
        s.end();
      }
      c.sock = null;
      c.buf = null;
      c.out = null;
      c.st = S_IDLE;
      c.tries = 0;
      this.open--;
      this.storm.dropped(c);
      setTimeout(() => {
        if (c.st === S_IDLE && !this.finishing) this.enqueue(c);
      }, Math.random() * this.cfg.jitterMs);
    }
    this.storm.check();
  }

  private everyTick() {
    const t = now();
    if (t > this.cfg.deadlineAt || process.ppid !== this.ppid) {
      process.exit(4);
    }
    if (this.cfg.openRate > 0) this.tokens = Math.min(this.cfg.openRate, this.tokens + this.cfg.openRate / 4);
    for (const c of this.conns) {
      if ((c.st === S_CONNECTING || c.st === S_HANDSHAKE) && t - c.t0 > this.cfg.timeoutMs) this.fail(c, "timeout");
    }
    for (let i = this.draining.length - 1; i >= 0; i--) {
      const d = this.draining[i];
      if (d.sock.readyState <= 0) this.draining.splice(i, 1);
      else if (t - d.at > 3000) {
        d.sock.terminate();
        this.draining.splice(i, 1);
      }
    }
    this.pump();
    send({ t: "tick", w: this.cfg.id, tick: this.tick() });
  }
}

function connectKind(e: unknown): string {
  const code = (e as any)?.code ?? (e as any)?.errno;
  return `connect_${code ?? "error"}`;
}

/** The worker's side of the IPC: everything starts with the parent's "start". */
export function runWorker() {
  let w: Worker | null = null;
  process.on("message", (m: ToWorker) => {
    if (m.t === "start") {
      w = new Worker(m.cfg);
      return;
    }
    if (!w) return;
    switch (m.t) {
      case "credit":
        w.sender.grant(m.n);
        break;
      case "go":
        w.sender.start();
        break;
      case "snap":
        send({ t: "snap", w: w.cfg.id, id: m.id, stats: w.rec.snapshot(), tick: w.tick() });
        break;
      case "drop":
        w.drop(m.round, m.at);
        break;
      case "round-status":
        w.storm.status(m.round);
        break;
      case "finish":
        w.finishing = true;
        w.sender.stop();
        send({ t: "snap", w: w.cfg.id, id: m.id, stats: w.rec.snapshot(), tick: w.tick() });
        break;
      case "exit":
        process.exit(0);
    }
  });
  process.on("disconnect", () => process.exit(0));
}
