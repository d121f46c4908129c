// The parent's workers: spawned with their share of the connections, heard over IPC, asked
// for their counters; each is a child process of the parent, ended by its own handle.
import type { Subprocess } from "bun";
import type { FromWorker, PhaseStats, StormRound, Tick, ToWorker, WorkerConfig } from "./messages.ts";
import type { Options } from "./options.ts";

type W = { proc: Subprocess; tick: Tick | null; ready: boolean; exited: boolean };
export type RoundMsg = { w: number; r: StormRound; done: boolean };

export class WorkerPool {
  readonly ws: W[] = [];
  readyCount = 0;
  roundMsgs: RoundMsg[] = [];
  private readyWaiters: (() => void)[] = [];
  private roundWaiter: () => void = () => {};
  private waiters = new Map<number, { need: number; got: { w: number; stats: PhaseStats }[]; resolve: (v: PhaseStats[]) => void }>();
  private nextReq = 1;
  private ending = false;

  /** `entry`: the script a worker runs with --worker. */
  constructor(o: Options, deadlineAt: number, entry: string) {
    const base = Math.floor(o.conns / o.workers);
    let first = 0;
    for (let i = 0; i < o.workers; i++) {
      const count = base + (i < o.conns % o.workers ? 1 : 0);
      const cfg: WorkerConfig = {
        id: i, host: o.host, port: o.port, path: o.url.pathname + o.url.search, hostHeader: o.url.host, svc: o.svc, userPrefix: o.userPrefix,
        userOffset: o.userOffset, perUser: o.perUser, first, count, srcNet: o.srcNet, perAddr: o.perAddr, mode: o.mode, concurrency: o.concurrency,
        openRate: o.openRate / o.workers, timeoutMs: o.timeoutMs, retries: o.retries, rate: o.rate, size: o.size, binary: o.binary, jitterMs: o.jitterMs,
        drop: o.drop, countTo: o.countTo, windowed: o.window > 0, deadlineAt: deadlineAt + 15_000, extraHeaders: o.extraHeaders,
      };
      first += count;
      const w: W = { proc: null as unknown as Subprocess, tick: null, ready: false, exited: false };
      w.proc = Bun.spawn({
        cmd: [process.execPath, entry, "--worker"],
        stdio: ["ignore", "inherit", "inherit"],
        serialization: "json",
        ipc: (m: FromWorker) => this.heard(w, m),
      });
      w.proc.send({ t: "start", cfg } satisfies ToWorker);
      w.proc.exited.then((code) => {
        w.exited = true;
        if (!this.ending) console.error(`loadgen: worker ${i} exited early (code ${code})`);
        if (!w.ready) this.markReady(w);
        for (const [, wt] of this.waiters) {
          wt.need--;
          if (wt.got.length >= wt.need) wt.resolve(wt.got.map((g) => g.stats));
        }
        this.roundWaiter();
      });
      this.ws.push(w);
    }
  }

  private heard(w: W, m: FromWorker) {
    switch (m.t) {
      case "tick":
        w.tick = m.tick;
        break;
      case "ready":
        w.tick = m.tick;
        this.markReady(w);
        break;
      case "snap": {
        w.tick = m.tick;
        const wt = this.waiters.get(m.id);
        if (wt) {
          wt.got.push({ w: m.w, stats: m.stats });
          if (wt.got.length >= wt.need) {
            this.waiters.delete(m.id);
            wt.resolve(wt.got.sort((a, b) => a.w - b.w).map((g) => g.stats));
          }
        }
        break;
      }
      case "round":
        this.roundMsgs.push(m);
        this.roundWaiter();
        break;
      case "fatal":
        console.error(`loadgen: worker ${m.w}: ${m.error}`);
    }
  }

  private markReady(w: W) {
    w.ready = true;
    this.readyCount++;
    if (this.readyCount >= this.ws.length) for (const r of this.readyWaiters.splice(0)) r();
  }

  /** Resolves once every worker has opened or given up all its connections (or exited). */
  allReady(): Promise<void> {
    return new Promise((r) => {
      if (this.readyCount >= this.ws.length) r();
      else this.readyWaiters.push(r);
    });
  }

  /** Resolves once every live worker reported the current storm round done. */
  roundDone(): Promise<void> {
    return new Promise((r) => {
      this.roundWaiter = () => this.roundComplete() && r();
      this.roundWaiter();
    });
  }

  /** A storm round starts: forget the last one's reports (`keepDone`: only its unfinished ones). */
  resetRounds(keepDone = false) {
    this.roundMsgs = keepDone ? this.roundMsgs.filter((m) => m.done) : [];
  }

  roundComplete(): boolean {
    return this.live().every((w) => this.roundMsgs.some((m) => m.w === this.ws.indexOf(w) && m.done));
  }

  live() {
    return this.ws.filter((w) => !w.exited);
  }

  broadcast(m: ToWorker) {
    for (const w of this.live()) {
      try {
        w.proc.send(m);
      } catch {}
    }
  }

  /** Asks every live worker for its counters of the current phase (and resets them). */
  collect(kind: "snap" | "finish"): Promise<PhaseStats[]> {
    const id = this.nextReq++;
    const l = this.live();
    return new Promise((resolve) => {
      if (l.length === 0) return resolve([]);
      this.waiters.set(id, { need: l.length, got: [], resolve });
      this.broadcast(kind === "snap" ? { t: "snap", id } : { t: "finish", id });
      setTimeout(() => {
        const wt = this.waiters.get(id);
        if (wt) {
          this.waiters.delete(id);
          console.error(`loadgen: ${wt.need - wt.got.length} worker(s) did not answer in time`);
          resolve(wt.got.map((g) => g.stats));
        }
      }, 5000);
    });
  }

  /** The workers' latest progress ticks, summed. */
  totals() {
    const s = { open: 0, opened: 0, settled: 0, dead: 0, recv: 0, sent: 0, counted: 0, peak: 0, errors: {} as Record<string, number> };
    for (const w of this.ws) {
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
  }

  /** From here on a worker exiting is expected. */
  expectExits() {
    this.ending = true;
  }

  kill() {
    for (const w of this.ws) w.proc.kill(9);
  }

  /** Tells the workers to exit; kills those that have not within 5 s. */
  async exit() {
    this.broadcast({ t: "exit" });
    await Promise.race([Promise.all(this.ws.map((w) => w.proc.exited)), Bun.sleep(5000)]);
    for (const w of this.ws) if (!w.exited) w.proc.kill(9);
  }
}
