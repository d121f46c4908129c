// The load on the servers as child processes: the load generator, the publisher and the
// NATS subscriber, each with its summary line read back.
import type { Subprocess } from "bun";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { track } from "../harness/procs.ts";
import { BUN, ROOT, runDir, sleep } from "./base.ts";

// ───────────────────────── load client and publisher ─────────────────────────

export type LoadgenSummary = any;

export class Loadgen {
  private out: Promise<string>;
  private readyFile: string;
  constructor(
    readonly name: string,
    private proc: Subprocess<"pipe", "pipe", any>,
    readyFile: string,
    readonly logFile: string,
  ) {
    this.readyFile = readyFile;
    this.out = new Response(proc.stdout).text();
  }

  static start(name: string, args: string[]): Loadgen {
    const dir = runDir();
    const readyFile = join(dir, `${name}.ready.json`);
    const logFile = join(dir, `${name}.log`);
    rmSync(readyFile, { force: true });
    const proc = Bun.spawn({
      cmd: [BUN, join(ROOT, "scripts/loadgen.ts"), ...args, "--control", "stdin", "--ready-file", readyFile],
      cwd: ROOT,
      stdin: "pipe",
      stdout: "pipe",
      stderr: Bun.file(logFile),
    });
    track(proc);
    return new Loadgen(name, proc, readyFile, logFile);
  }

  /** Waits until every connection is open (or given up); returns the loadgen's ready line. */
  async ready(ms: number): Promise<{ open: number; dead: number; ms: number; src: string }> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      if (existsSync(this.readyFile)) return JSON.parse(readFileSync(this.readyFile, "utf8"));
      if (this.proc.exitCode !== null) throw new Error(`${this.name} exited before all connections were open; see ${this.logFile}`);
      await sleep(100);
    }
    throw new Error(`${this.name}: connections not open after ${ms / 1000} s; see ${this.logFile}`);
  }

  get pid() {
    return this.proc.pid;
  }

  phase(name: string) {
    this.proc.stdin.write(`phase ${name}\n`);
    this.proc.stdin.flush();
  }

  async stop(ms = 30_000): Promise<LoadgenSummary> {
    try {
      this.proc.stdin.write("stop\n");
      this.proc.stdin.flush();
    } catch {}
    const done = await Promise.race([this.proc.exited.then(() => true), sleep(ms).then(() => false)]);
    if (!done) {
      this.proc.kill("SIGKILL");
      throw new Error(`${this.name} did not stop in ${ms / 1000} s; see ${this.logFile}`);
    }
    const text = await this.out;
    const line = text.trim().split("\n").pop() ?? "";
    try {
      return JSON.parse(line);
    } catch {
      throw new Error(`${this.name}: no summary line (exit ${this.proc.exitCode}); see ${this.logFile}`);
    }
  }

  /** Runs to completion (modes with a duration): returns the summary. */
  async done(ms: number): Promise<LoadgenSummary> {
    const ok = await Promise.race([this.proc.exited.then(() => true), sleep(ms).then(() => false)]);
    if (!ok) return this.stop();
    return JSON.parse((await this.out).trim().split("\n").pop() ?? "{}");
  }
}

export type PublisherSummary = { published: number; seconds: number; ratePerS: number; stalls: number; inFlightAtEnd: number; polls: number; cpuSeconds: number };

export async function runPublisher(name: string, args: string[], ms: number): Promise<PublisherSummary> {
  const logFile = join(runDir(), `${name}.log`);
  const proc = Bun.spawn({
    cmd: [BUN, join(import.meta.dir, "publisher.ts"), ...args],
    cwd: ROOT,
    stdout: "pipe",
    stderr: Bun.file(logFile),
  });
  track(proc);
  const out = new Response(proc.stdout).text();
  const ok = await Promise.race([proc.exited.then(() => true), sleep(ms).then(() => false)]);
  if (!ok) {
    proc.kill("SIGKILL");
    throw new Error(`${name} did not finish in ${ms / 1000} s`);
  }
  const line = (await out).trim().split("\n").pop() ?? "";
  let sum: PublisherSummary;
  try {
    sum = JSON.parse(line);
  } catch {
    throw new Error(`${name} failed (exit ${proc.exitCode}); see ${logFile}`);
  }
  const ru = proc.resourceUsage();
  sum.cpuSeconds = ru ? (Number(ru.cpuTime.user) + Number(ru.cpuTime.system)) / 1e6 : NaN;
  return sum;
}

/** scripts/bench/subscriber.ts as a child: a NATS subscriber counting messages and their latency. */
export class Subscriber {
  private lines: string[] = [];
  private reader: Promise<void>;
  private constructor(
    readonly name: string,
    private proc: Subprocess<"pipe", "pipe", any>,
    readonly logFile: string,
  ) {
    this.reader = (async () => {
      const dec = new TextDecoder();
      let buf = "";
      for await (const chunk of proc.stdout as unknown as AsyncIterable<Uint8Array>) {
        buf += dec.decode(chunk, { stream: true });
        let i: number;
        while ((i = buf.indexOf("\n")) >= 0) {
          this.lines.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      }
      if (buf.trim()) this.lines.push(buf);
    })();
  }

  static async start(name: string, natsUrl: string, subject: string): Promise<Subscriber> {
    const logFile = join(runDir(), `${name}.log`);
    const proc = Bun.spawn({
      cmd: [BUN, join(import.meta.dir, "subscriber.ts"), "--nats", natsUrl, "--subject", subject, "--max-seconds", "600"],
      cwd: ROOT,
      stdin: "pipe",
      stdout: "pipe",
      stderr: Bun.file(logFile),
    });
    track(proc);
    const s = new Subscriber(name, proc, logFile);
    const until = Date.now() + 10_000;
    let line: string | undefined;
    while (!(line = s.lines.find((l) => l.includes('"ready"')))) {
      if (proc.exitCode !== null || Date.now() > until) throw new Error(`${name} did not start; see ${logFile}`);
      await sleep(20);
    }
    s.metricsUrl = `http://127.0.0.1:${JSON.parse(line).port}/metrics`;
    return s;
  }

  /** Its running count, for loadgen --feedback-url (metric wsgate_bench_sub_messages_total). */
  metricsUrl = "";

  get pid() {
    return this.proc.pid;
  }

  async stop(ms = 15_000): Promise<any> {
    try {
      this.proc.stdin.write("stop\n");
      this.proc.stdin.flush();
      this.proc.stdin.end();
    } catch {}
    const ok = await Promise.race([this.proc.exited.then(() => true), sleep(ms).then(() => false)]);
    if (!ok) {
      this.proc.kill("SIGKILL");
      throw new Error(`${this.name} did not stop; see ${this.logFile}`);
    }
    await this.reader;
    return JSON.parse(this.lines.filter((l) => l.startsWith('{"tool"')).pop() ?? "{}");
  }
}
