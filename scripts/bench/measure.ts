// Readings from /proc: memory, CPU, kernel socket state, how busy the machine already is.
import { readFileSync, writeFileSync } from "node:fs";
import { log, sleep } from "./base.ts";

// ───────────────────────── /proc ─────────────────────────

export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

export type KernelStats = { slabBytes: number; sockUsed: number; tcpInuse: number; tcpAlloc: number; tcpTw: number; tcpMemBytes: number };
export function kernelStats(): KernelStats {
  const mi = readFileSync("/proc/meminfo", "utf8");
  const slab = Number(/^Slab:\s+(\d+) kB/m.exec(mi)?.[1] ?? NaN) * 1024;
  const ss = readFileSync("/proc/net/sockstat", "utf8");
  const used = Number(/sockets: used (\d+)/.exec(ss)?.[1] ?? NaN);
  const tcp = /TCP: inuse (\d+) orphan \d+ tw (\d+) alloc (\d+) mem (\d+)/.exec(ss);
  return {
    slabBytes: slab,
    sockUsed: used,
    tcpInuse: Number(tcp?.[1] ?? NaN),
    tcpTw: Number(tcp?.[2] ?? NaN),
    tcpAlloc: Number(tcp?.[3] ?? NaN),
    tcpMemBytes: Number(tcp?.[4] ?? NaN) * 4096, // sockstat counts pages
  };
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

/** CPU seconds of a process and its direct children (the loadgen and its workers). */
export function treeCpuSeconds(pid: number): number {
  let kids: number[] = [];
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {}
  return cpuSeconds(pid) + kids.reduce((a, k) => a + cpuSeconds(k), 0);
}

/** Busy CPU seconds of the whole machine so far (all cores), from /proc/stat. */
export function machineBusySeconds(): number {
  const l = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = l[3] + (l[4] ?? 0);
  return (l.reduce((a, b) => a + b, 0) - idle) / 100;
}

/** Cores busy on the machine over `ms` while we do nothing: other people's load skews every figure. */
export async function backgroundLoad(ms = 1000): Promise<number> {
  const a = machineBusySeconds();
  await sleep(ms);
  return (machineBusySeconds() - a) / (ms / 1000);
}

export async function warnIfBusy(what: string) {
  const busy = await backgroundLoad();
  if (busy > 0.25) log(`warning: ${busy.toFixed(2)} of 2 cores already busy before ${what}: other processes on the box will skew the figures`);
  return busy;
}

// ───────────────────────── helpers of the mailbox, workers, setup and inbound benchmarks ─────────────────────────

/** Resets a process's peak RSS (VmHWM) to its current RSS (`echo 5 > /proc/<pid>/clear_refs`); false if not allowed. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** Peak RSS (VmHWM) of a process since its start or its last resetPeakRss. */
export function peakRssBytes(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : NaN;
}

/**
 * Watches the peak RSS and CPU of some processes over a stretch of time: VmHWM after a reset
 * when the kernel allows it, and samples every `everyMs` as a floor either way (for a group of
 * processes the peak of their sum is only known from samples).
 */
export class ResourceWatch {
  private cpu0: number[];
  private peaks: number[];
  private sumPeak = 0;
  private timer: ReturnType<typeof setInterval>;
  private hwm: boolean;
  readonly t0 = performance.now();
  constructor(
    private pids: number[],
    everyMs = 100,
  ) {
    this.hwm = pids.every((p) => resetPeakRss(p));
    this.cpu0 = pids.map(cpuSeconds);
    this.peaks = pids.map(rssOrZero);
    this.sumPeak = this.peaks.reduce((a, b) => a + b, 0);
    this.timer = setInterval(() => this.sample(), everyMs);
  }
  private sample() {
    let sum = 0;
    this.pids.forEach((p, i) => {
      const r = rssOrZero(p);
      if (r > this.peaks[i]) this.peaks[i] = r;
      sum += r;
    });
    if (sum > this.sumPeak) this.sumPeak = sum;
  }
  /** Stops watching: CPU seconds used, peak RSS (sum of the processes' peaks, and the sampled peak of the sum), seconds. */
  stop(): { cpuS: number; peakRss: number; peakRssSampled: number; seconds: number; hwm: boolean } {
    this.sample();
    clearInterval(this.timer);
    const cpuS = this.pids.reduce((a, p, i) => a + cpuSeconds(p) - this.cpu0[i], 0);
    const peak = this.pids.reduce((a, p, i) => a + (this.hwm ? Math.max(peakRssOrZero(p), this.peaks[i]) : this.peaks[i]), 0);
    return { cpuS, peakRss: peak, peakRssSampled: this.sumPeak, seconds: (performance.now() - this.t0) / 1000, hwm: this.hwm };
  }
}
function rssOrZero(pid: number) {
  try {
    return rssBytes(pid);
  } catch {
    return 0;
  }
}
function peakRssOrZero(pid: number) {
  try {
    return peakRssBytes(pid);
  } catch {
    return 0;
  }
}

/** Samples `read()` until it changed by less than 0.5% over the last 2 s (at least 3 s, at most `maxS`). */
export async function settleOn(read: () => number, maxS = 20): Promise<{ value: number; seconds: number }> {
  const t0 = Date.now();
  const samples: number[] = [];
  for (;;) {
    samples.push(read());
    const n = samples.length;
    const elapsed = (Date.now() - t0) / 1000;
    if (elapsed >= 3 && n >= 5) {
      const a = samples[n - 5], b = samples[n - 1];
      if (Math.abs(b - a) / a < 0.005) return { value: b, seconds: elapsed };
    }
    if (elapsed >= maxS) return { value: samples[n - 1], seconds: elapsed };
    await sleep(500);
  }
}
