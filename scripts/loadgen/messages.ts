// What the parent and its workers tell each other over IPC, and the counters they share.
import type { Sparse } from "./histogram.ts";

const ORIGIN = performance.timeOrigin;
/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes. */
export const now = () => ORIGIN + performance.now();

/** Counters for one phase of one worker (or merged). Gauges (open, peak) live elsewhere. */
export type PhaseStats = {
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

export function newPhase(): PhaseStats {
  return {
    attempts: 0, opened: 0, errors: {}, closes: {}, hs: [], recvMsgs: 0, recvBytes: 0, firstRecv: 0, lastRecv: 0,
    noTs: 0, negLat: 0, latCount: 0, latSum: 0, latMin: Infinity, latMax: -Infinity, lat: [], sentMsgs: 0, sentBytes: 0,
    sendSkips: 0, pings: 0, nthCount: 0, nth: [], nthLast: 0, startMin: 0, lastOpen: 0,
  };
}

export type StormRound = { round: number; at: number; dropped: number; back: number; failed: number; lastBackAt: number; hist: Sparse };

export type Mode = "idle" | "recv" | "send" | "storm";

export type WorkerConfig = {
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

export type ToWorker =
  | { t: "start"; cfg: WorkerConfig }
  | { t: "go" }
  | { t: "credit"; n: number }
  | { t: "snap"; id: number }
  | { t: "drop"; round: number; at: number }
  | { t: "round-status"; round: number }
  | { t: "finish"; id: number }
  | { t: "exit" };

export type Tick = { open: number; peak: number; opened: number; settled: number; dead: number; recv: number; sent: number; counted: number; errors: Record<string, number> };

export type FromWorker =
  | { t: "tick"; w: number; tick: Tick }
  | { t: "ready"; w: number; at: number; tick: Tick }
  | { t: "snap"; w: number; id: number; stats: PhaseStats; tick: Tick }
  | { t: "round"; w: number; r: StormRound; done: boolean }
  | { t: "fatal"; w: number; error: string };

/** Source address number k (0-based) within 127.A.B.0/24, spilling into B+1, B+2... */
export function srcAddr(net: [number, number], k: number): string {
  return `127.${net[0]}.${net[1] + Math.floor(k / 253)}.${2 + (k % 253)}`;
}
