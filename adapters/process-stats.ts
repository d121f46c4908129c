// Process metrics through node:process and node:fs, which Bun, Node and Deno all provide.
import process from "node:process";
import { openFdCount } from "./shared/fd-count.ts";
import type { ProcessStats } from "../app/ops/metrics.ts";

const startTimeSeconds = Date.now() / 1000 - process.uptime();

export function processStats(): ProcessStats {
  const cpu = process.cpuUsage();
  let openFds = -1;
  try {
    openFds = openFdCount();
  } catch {
    // not Linux, or not allowed (Deno without --allow-read=/proc/self/fd)
  }
  return { residentBytes: process.memoryUsage.rss(), cpuSeconds: (cpu.user + cpu.system) / 1e6, openFds, startTimeSeconds };
}
