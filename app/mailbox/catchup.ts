// Schedules the mailbox reads of catch-ups and resumes. One user's next message by subject
// costs nats-server 2.9 a scan past every other user's messages in between (about 1 ms a
// get with 10k users' messages interleaved), so a reconnect storm of per-user reads grows
// with the square of the users. When many reads wait at once, one ordered read of the
// stream range they need is shared by all of them instead (about 200k messages a second),
// and each user's read ends with only its held live messages left to join.
import { type Limiter, ScanUnavailable } from "./store.ts";
import type { MailboxStoreApi } from "./store-api.ts";
import { replay, type ReplayTarget } from "./replay.ts";

/** Below this many waiting reads, per-user gets cost less than a shared pass. */
export const PASS_MIN = 8;
/** Stream messages a pass may read per user it serves: ~10 ms of reading, the cost of ~10 gets. */
const PASS_SPAN_PER_USER = 2_000;
/** Most stream messages one pass reads; users further behind read on their own. */
const PASS_SPAN_MAX = 1_000_000;
/** How long reads arriving during others gather before they are decided together. */
const GATHER_MS = 20;

type Job = {
  svcUser: string;
  t: ReplayTarget;
  gone: () => boolean;
  /** messages sent to this target by a pass */
  read: number;
  /** settled, or handed to a per-user read */
  done: boolean;
  resolve: (read: number) => void;
  reject: (err: unknown) => void;
};

export type PassStats = { users: number; read: number; ms: number };

export class CatchupReader {
  private waiting: Job[] = [];
  private passing = false;
  private scheduled = false;

  constructor(
    private store: MailboxStoreApi,
    private limiter: Limiter,
    private onPass: (s: PassStats) => void = () => {},
  ) {}

  /**
   * Brings one target up to date from the stream (see replay). Resolves with the number of
   * messages read from the stream, -1 when `gone()` turned true; rejects when the stream
   * could not be read (the caller retries).
   */
  read(svcUser: string, t: ReplayTarget, gone: () => boolean): Promise<number> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ svcUser, t, gone, read: 0, done: false, resolve, reject });
      this.schedule();
    });
  }

  /** No read is waiting or running. */
  idle(): boolean {
    return !this.passing && this.waiting.length === 0 && this.limiter.idle();
  }

  /**
   * A read that finds nothing else going on starts at once (a lone reconnect waits for
   * nothing); reads arriving while others run gather for a moment, or until the running
   * pass ends, and are decided together.
   */
  private schedule() {
    if (this.scheduled || this.passing) return;
    this.scheduled = true;
    const quiet = this.waiting.length === 1 && this.limiter.idle();
    setTimeout(() => {
      this.scheduled = false;
      const jobs = this.waiting;
      this.waiting = [];
      // Per-user streams (Redis) have nothing to share: each read is already cheap.
      if (jobs.length < PASS_MIN || !this.store.shared) {
        for (const j of jobs) this.alone(j, 0);
        return;
      }
      this.passing = true;
      this.pass(jobs).finally(() => {
        this.passing = false;
        if (this.waiting.length > 0) this.schedule();
      });
    }, quiet ? 0 : GATHER_MS);
  }

  /** A per-user read under the concurrency limit; `scanned`: the stream is known read up to it. */
  private alone(j: Job, scanned: number) {
    j.done = true;
    void this.limiter.acquire().then(async () => {
      try {
        if (j.gone()) return j.resolve(-1);
        const n = await replay(this.store, j.svcUser, j.t, j.gone, scanned);
        j.resolve(n < 0 ? -1 : j.read + n);
      } catch (err) {
        j.reject(err);
      } finally {
        this.limiter.release();
      }
    });
  }

  private async pass(jobs: Job[]) {
    const shared = this.store.shared!;
    const started = performance.now();
    let first: number, last: number;
    try {
      ({ first, last } = await shared.bounds());
    } catch (err) {
      for (const j of jobs) j.reject(err);
      return;
    }
    const live: Job[] = [];
    for (const j of jobs) {
      if (j.gone()) j.resolve(-1);
      else live.push(j);
    }
    // The furthest-behind users decide where the pass starts: take as many as keep the span
    // within what their per-user reads would have cost; the rest read on their own.
    live.sort((a, b) => b.t.floor() - a.t.floor());
    let taken = 0;
    for (let i = 0; i < live.length; i++) {
      const span = last - Math.max(live[i].t.floor(), first - 1);
      if (span <= Math.min(PASS_SPAN_PER_USER * (i + 1), PASS_SPAN_MAX)) taken = i + 1;
    }
    if (taken < PASS_MIN) taken = 0;
    for (const j of live.slice(taken)) this.alone(j, 0);
    if (taken === 0) return;
    const members = live.slice(0, taken);
    const byUser = new Map<string, Job[]>();
    for (const j of members) {
      const list = byUser.get(j.svcUser);
      if (list) list.push(j);
      else byUser.set(j.svcUser, [j]);
    }
    const from = Math.max(members[taken - 1].t.floor() + 1, first);
    let read = 0;
    try {
      if (from <= last) {
        read = await shared.scan(from, last, (svcUser, data, hint, seq) => {
          const list = byUser.get(svcUser);
          if (!list) return;
          for (const j of list) {
            if (j.done) continue;
            if (j.gone()) {
              j.done = true;
              j.resolve(-1);
            } else if (seq > j.t.floor()) {
              // A pass cannot wait for one slow reader: that user goes on alone, paced.
              if (j.t.backedUp()) this.alone(j, 0);
              else {
                j.t.send(data, hint, seq, seq);
                j.read++;
              }
            }
          }
        });
      }
    } catch (err) {
      for (const j of members) if (!j.done) err instanceof ScanUnavailable ? this.alone(j, 0) : j.reject(err);
      return;
    }
    this.onPass({ users: taken, read, ms: performance.now() - started });
    // Everything up to `last` is read; what follows arrived live (each user's subscription
    // predates the bounds), so only the held messages are left to join.
    for (const j of members) if (!j.done) this.alone(j, last);
  }
}
