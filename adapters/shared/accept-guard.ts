// Shared by the Bun and Node-uWS adapters (both run uSockets, and both accept Node's
// process and fs APIs). uSockets retries a failed accept() at once, so when every
// descriptor is taken the listen socket stays readable and the event loop spins a whole
// core. Notice it cheaply (CPU use), confirm by counting descriptors, and stop listening
// until enough are free again: the kernel refuses new connections meanwhile and open
// sockets carry on.
import { readFileSync } from "node:fs";
import { log } from "../../app/ops/log.ts";
import { openFdCount } from "./fd-count.ts";

const EVERY_MS = 250;

export function guardAccept(limit: number, listener: { pause(): void; resume(): boolean; stopping(): boolean }): void {
  if (limit <= 0) return;
  let paused = false;
  let mark = process.cpuUsage();
  setInterval(() => {
    if (listener.stopping()) return;
    const cpu = process.cpuUsage(mark);
    mark = process.cpuUsage();
    const busy = (cpu.user + cpu.system) / 1000 / EVERY_MS;
    if (!paused && busy < 0.5) return;
    // A busy gateway is usually just a loaded one (fan-out): the descriptor table's size is
    // one small read and bounds the count from above (fd-count.ts for the count itself).
    if (!paused && tableSize() < limit - 4) return;
    const open = openDescriptors(limit);
    if (!paused && open >= limit - 4) {
      listener.pause();
      paused = true;
      log("warn", "open-files limit reached; not accepting until descriptors free up", { open, limit });
    } else if (paused && open < limit - 24 && listener.resume()) {
      paused = false;
      log("info", "accepting connections again", { open, limit });
    }
  }, EVERY_MS).unref();
}

/** Descriptors in use; reading the count itself needs one, so failing to read means none is left. */
function openDescriptors(limit: number): number {
  try {
    return openFdCount();
  } catch {
    return limit;
  }
}

/** Slots in the process's descriptor table (FDSize; the kernel only grows it): no descriptor is numbered past it. Infinity when unknown. */
function tableSize(): number {
  try {
    const m = /^FDSize:\s*(\d+)/m.exec(readFileSync("/proc/self/status", "utf8"));
    return m ? Number(m[1]) : Infinity;
  } catch {
    return Infinity;
  }
}
